"""tools/demo.py: the command line end to end (tiny random model) and its error messages."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from groupvit.class_names import VOC_CLASSES

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tools" / "demo.py"


def _load_demo():
    spec = importlib.util.spec_from_file_location("groupvit_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    two_tone = np.zeros((72, 96, 3), dtype=np.uint8)
    two_tone[:36] = (200, 60, 40)
    two_tone[36:] = (40, 160, 60)
    Image.fromarray(two_tone).save(folder / "scene.png")
    noise = np.random.default_rng(0).integers(0, 256, (80, 60, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "noise.jpg")
    (folder / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    return folder


def test_cli_writes_every_mode(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable, str(DEMO), str(images / "scene.png"), str(images / "noise.jpg"),
        "--vocab", "sky,grass", "--dataset", "voc", "--model", "groupvit_tiny", "--random-init",
        "--vis", *demo.MODES, "--out", str(out), "--device", "cpu", "--bg-thresh", "0.5",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2/2" in proc.stderr  # the progress bar reached the end
    names = ["input", "pred", "input_pred", "input_pred_label", "stage1", "stage2"]
    names += ["first_group", "final_group", "overview"]
    expected = {f"{stem}_{name}.png" for stem in ("scene", "noise") for name in names}
    assert {p.name for p in out.iterdir()} == expected
    for stem, size in (("scene", (96, 72)), ("noise", (60, 80))):
        for name in names:
            with Image.open(out / f"{stem}_{name}.png") as picture:
                if name == "overview":
                    assert picture.height > size[1] and picture.width > 4 * size[0]
                else:
                    assert picture.size == size, (stem, name)
        with Image.open(out / f"{stem}_pred.png") as pred:
            assert pred.mode == "P" and np.asarray(pred).max() < len(VOC_CLASSES) + 2


def test_folder_input_and_default_modes(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = demo.main(
        [str(images), "--vocab", "cat", "--model", "groupvit_tiny", "--random-init"] + ["--out", str(out)]
    )
    assert code == 0
    got = sorted(p.name for p in out.iterdir())
    assert got == sorted(
        f"{s}_{n}.png"
        for s in ("noise", "scene")
        for n in ("input_pred_label", "stage1", "stage2", "overview")
    )


def test_unreadable_image_is_named(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = images / "broken.png"
    bad.write_bytes(b"this is not a png")
    code = demo.main(
        [str(bad), "--vocab", "cat", "--model", "groupvit_tiny", "--random-init", "--out", str(tmp_path)]
    )
    assert code == 1
    assert f"cannot read image {bad}" in capsys.readouterr().err


def test_missing_image_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = demo.main([str(tmp_path / "nope.jpg"), "--vocab", "cat", "--random-init", "--out", str(tmp_path)])
    assert code == 1 and "image not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--vocab", " , ,", "--random-init"], "empty vocabulary"),
        (["--vocab", "background", "--random-init"], "empty vocabulary"),
        (["--random-init"], "--vocab and/or"),
        (["--vocab", "cat"], "--checkpoint is required"),
        (
            ["--vocab", "cat", "--checkpoint", "missing/weights.pth"],
            "checkpoint not found: missing/weights.pth",
        ),
    ],
)
def test_usage_errors(extra: list[str], message: str, images: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args([str(images), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_vocabulary_adds_to_or_replaces_dataset() -> None:
    assert demo.build_class_names("cat, dog ,grass", None) == ["background", "cat", "dog", "grass"]
    assert demo.build_class_names("cat,dog", None, background=False) == ["cat", "dog"]
    voc_plus = demo.build_class_names("grass, Cat", "voc")
    assert voc_plus == [*VOC_CLASSES, "grass"]  # "Cat" is already there
    assert demo.build_class_names(None, "voc") == list(VOC_CLASSES)


def test_output_stems_are_unique() -> None:
    paths = [Path("a/x.jpg"), Path("b/x.png"), Path("c/y.jpg"), Path("d/x.jpg")]
    assert demo.output_stems(paths) == ["x", "x_2", "y", "x_3"]


def test_preprocess_short_side() -> None:
    image = Image.fromarray(np.full((30, 60, 3), 255, dtype=np.uint8))
    pixels = demo.preprocess(image, 64)
    assert pixels.shape == (1, 3, 64, 128)
    assert pixels[0, 0].mean().item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-4)


def test_synthetic_class_list() -> None:
    from groupvit.data.synthetic import CLASSES

    assert demo.build_class_names(None, "synthetic") == list(CLASSES)
    from mmengine.config import Config

    config = Config.fromfile(str(ROOT / "configs" / "groupvit" / "groupvit_tiny_synthetic.py"))
    # the pictures use the threshold and the test size the shipped model is scored with
    assert demo.BG_THRESH["synthetic"] == config.model.bg_thresh == 0.95
    assert demo.TEST_SCALE["synthetic"] * config.image_size == config.test_size == 320


def test_default_short_side_is_a_multiple_of_the_training_size() -> None:
    args = demo.parse_args(["x.png", "--vocab", "cat", "--model", "groupvit_tiny", "--random-init"])
    args.device = "cpu"
    segmenter, short_side = demo.build_segmenter(args)
    assert segmenter.model.config.vision.image_size == 64
    assert short_side == 128 and segmenter.window == (128, 128) and segmenter.stride == (64, 64)
    # the synthetic scenes are scored at the config's test size, five times the training size
    args = demo.parse_args(["x.png", "--dataset", "synthetic", "--model", "groupvit_tiny", "--random-init"])
    args.device = "cpu"
    assert demo.build_segmenter(args)[1] == 320

"""groupvit-demo (groupvit.cli.demo): the command line end to end (tiny random model) and its error messages."""

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupvit
from groupvit.class_names import VOC_CLASSES
from groupvit.cli import demo
from groupvit.config import RefineConfig
from groupvit.errors import InputError
from groupvit.presets import get_model_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth"


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


def test_cli_writes_every_mode(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    argv = [
        str(images / "scene.png"), str(images / "noise.jpg"),
        "--vocab", "sky,grass", "--dataset", "voc", "--model", "groupvit_tiny", "--random-init",
        "--vis", *demo.MODES, "--out", str(out), "--device", "cpu", "--bg-thresh", "0.5",
    ]  # fmt: skip
    assert demo.main(argv) == 0
    err = capsys.readouterr().err
    assert "2/2" in err  # the progress bar reached the end
    names = ["input", "pred", "input_pred", "input_pred_label", "stage1", "stage2"]
    names += ["first_group", "final_group", "overview"]
    expected = {f"{stem}_{name}.png" for stem in ("scene", "noise") for name in names}
    assert {p.name for p in out.iterdir()} == expected | {"scene.json", "noise.json"}
    record = json.loads((out / "scene.json").read_text())
    with Image.open(out / "scene_pred.png") as pred:
        ids, counts = np.unique(np.asarray(pred), return_counts=True)
    class_names = record["classes"]
    assert record["pixel_share"] == {
        class_names[str(i)]: round(int(n) / (96 * 72), 4) for i, n in zip(ids.tolist(), counts.tolist())
    }  # the same labels as the pred picture
    assert len(record["groups_per_stage"]) == 2 and record["short_side"] == 128 and record["mode"] == "slide"
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
        [
            f"{s}_{n}.png"
            for s in ("noise", "scene")
            for n in ("input_pred_label", "stage1", "stage2", "overview")
        ]
        + ["noise.json", "scene.json"]
    )


TINY = ["--vocab", "cat", "--model", "groupvit_tiny", "--random-init", "--device", "cpu"]


def _one_error_line(err: str, prog: str = "groupvit-demo") -> str:
    """The error line of a run that stopped on bad input: no traceback, nothing but that line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def test_unreadable_image_is_named(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = images / "broken.png"
    bad.write_bytes(b"this is not a png")
    out = tmp_path / "out"
    assert demo.main([str(bad), *TINY, "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"groupvit-demo: error: cannot read image {bad}: cannot identify image file '{bad}'"
    assert not out.exists()  # stopped before the model was built


def test_missing_image_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert demo.main([str(tmp_path / "nope.jpg"), *TINY, "--out", str(tmp_path)]) == 2
    assert (
        _one_error_line(capsys.readouterr().err)
        == f"groupvit-demo: error: image not found: {tmp_path / 'nope.jpg'}"
    )


def _truncated_jpeg(path: Path) -> Path:
    noise = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def test_truncated_and_broken_images_are_skipped_and_the_run_goes_on(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    truncated = _truncated_jpeg(images / "a_truncated.jpg")  # sorted first: the images after it still run
    with Image.open(truncated) as header:
        assert header.size == (96, 64)  # the header alone parses
    (images / "b_broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert demo.main([str(images), *TINY, "--vis", "input_pred_label", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"skipping {images / 'b_broken.png'}: cannot identify image file" in err
    assert re.search(
        rf"skipping {re.escape(str(truncated))}: image file is truncated \(\d+ bytes not processed\)", err
    )
    assert f"pictures of 2 images written to {out}; 2 skipped (named above)" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "noise.json",
        "noise_input_pred_label.png",
        "scene.json",
        "scene_input_pred_label.png",
    ]


@pytest.mark.parametrize("kind", ["zero-byte", "text", "empty dict", "foreign dict"])
def test_bad_checkpoint_file_is_one_line(
    kind: str, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = tmp_path / "weights.pth"
    if kind == "zero-byte":
        checkpoint.write_bytes(b"")
    elif kind == "text":
        checkpoint.write_text("these are not weights\n")
    else:
        torch.save({} if kind == "empty dict" else {"head.weight": torch.zeros(2)}, checkpoint)
    argv = [str(images), "--vocab", "cat", "--model", "groupvit_tiny", "--checkpoint", str(checkpoint)]
    out = tmp_path / "out"
    assert demo.main([*argv, "--device", "cpu", "--out", str(out)]) == 2
    assert str(checkpoint) in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_checkpoint_of_another_preset_is_one_line(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = tmp_path / "tiny.pth"
    torch.save(groupvit.create_model("groupvit_tiny").state_dict(), checkpoint)
    argv = [
        str(images),
        "--vocab",
        "cat",
        "--model",
        "groupvit_tiny_synthetic",
        "--checkpoint",
        str(checkpoint),
    ]
    assert demo.main([*argv, "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(checkpoint) in line and "does not fit model 'groupvit_tiny_synthetic'" in line


def test_elongated_image_groups_at_a_smaller_size(
    tmp_path: Path, capsys: pytest.CaptureFixture, one_thread: None
) -> None:
    # 4000 x 50 at short side 64 is 8 x 640 = 5,120 patch tokens: over the whole-image limit
    path = tmp_path / "strip.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (50, 4000, 3), dtype=np.uint8)).save(path)
    out = tmp_path / "out"
    start = time.perf_counter()
    argv = [str(path), *TINY, "--short-side", "64", "--vis", "input_pred_label", "all_groups"]
    assert demo.main([*argv, "--out", str(out)]) == 0
    assert time.perf_counter() - start < 30  # 2-3 s on one core; uncapped the groups pass grows quadratically
    err = capsys.readouterr().err
    assert (
        f"{path}: groups computed at short side 58, not 64 (a whole-image pass is limited to 4096 patch tokens)"
        in err
    )
    for name in ("input_pred_label", "stage1", "stage2"):
        with Image.open(out / f"strip_{name}.png") as picture:
            assert picture.size == (4000, 50)


def test_whole_image_side() -> None:
    assert demo.MAX_WHOLE_TOKENS == 4096
    assert demo.whole_image_side((480, 640), 448, 16) == 448  # 28 x 37 tokens: unchanged
    # 58 x 4640 px is 7 x 580 = 4,060 tokens; 59 px would be 7 x 590 = 4,130
    assert demo.whole_image_side((50, 4000), 448, 8) == 58
    assert demo.whole_image_side((50, 4000), 64, 8) == 58
    assert demo.whole_image_side((10, 100_000), 64, 8) == 0  # one patch row is 10,000 tokens


def test_far_too_elongated_image_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "line.png"
    Image.new("RGB", (40_000, 4), (90, 120, 30)).save(path)
    (tmp_path / "out").mkdir()
    assert (
        demo.main(
            [str(path), *TINY, "--short-side", "8", "--vis", "all_groups", "--out", str(tmp_path / "out")]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert f"skipping {path}: 40000x4 is too elongated for a whole-image pass (over 4096 patch tokens)" in err
    assert not any((tmp_path / "out").iterdir())


def test_image_modes_become_rgb(tmp_path: Path) -> None:
    ramp = (np.arange(8 * 16).reshape(8, 16) * 512).astype(np.uint16)  # 0 .. 65024
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as opened:
        assert opened.mode == "I;16"
    grey = np.asarray(demo.load_image(tmp_path / "deep.png"))
    assert grey.shape == (8, 16, 3) and (grey[..., 0] == grey[..., 2]).all()
    assert grey[..., 0].tolist() == np.rint(ramp / 257.0).astype(np.uint8).tolist()  # scaled, not clipped
    assert grey.max() == 253 and len(np.unique(grey)) == 128

    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    pixels = np.asarray(demo.load_image(tmp_path / "alpha.png"))
    assert pixels[0, 0].tolist() == [200, 0, 0] and pixels[3, 3].tolist() == [255, 255, 255]

    Image.fromarray(np.stack([np.full((4, 4), 50, np.uint8), rgba[..., 3]], -1), "LA").save(
        tmp_path / "la.png"
    )
    pixels = np.asarray(demo.load_image(tmp_path / "la.png"))
    assert pixels[0, 0].tolist() == [50, 50, 50] and pixels[3, 3].tolist() == [255, 255, 255]

    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    assert np.asarray(demo.load_image(tmp_path / "palette.png"))[0, 0].tolist() == [10, 200, 30]

    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    red = np.asarray(demo.load_image(tmp_path / "cmyk.jpg"))[0, 0]
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--vocab", " , ,", "--random-init"], "empty vocabulary: --vocab ' , ,' holds no class name"),
        (["--vocab", "background", "--random-init"], "empty vocabulary: no class name besides 'background'"),
        (["--random-init"], "give a vocabulary with --vocab and/or a class list with --dataset"),
        (["--vocab", "cat"], "--checkpoint is required (or pass --random-init to try the pipeline without weights)"),
        (["--vocab", "cat", "--checkpoint", "missing/weights.pth"], "checkpoint not found: missing/weights.pth"),
        (["--vocab", "cat", "--random-init", "--bg-thresh", "2"], "argument --bg-thresh: must be a number in [0, 1], got 2"),
        (["--vocab", "cat", "--random-init", "--bg-thresh", "-0.1"], "argument --bg-thresh: must be a number in [0, 1], got -0.1"),
        (["--vocab", "cat", "--random-init", "--bg-thresh", "nan"], "argument --bg-thresh: must be a number in [0, 1], got nan"),
        (["--vocab", "cat", "--random-init", "--bg-thresh", "high"], "argument --bg-thresh: not a number: 'high'"),
        (
            ["--vocab", "cat", "--random-init", "--no-background", "--bg-thresh", "0.5"],
            "--bg-thresh has no effect with --no-background",
        ),
        (["--vocab", "cat", "--random-init", "--model", "groupvit_tiny", "--short-side", "-5"],
         "--short-side -5: must be at least groupvit_tiny's patch size, 8 px"),
        (["--vocab", "cat", "--random-init", "--model", "groupvit_tiny", "--short-side", "0"],
         "--short-side 0: must be at least groupvit_tiny's patch size, 8 px"),
        (["--vocab", "cat", "--random-init", "--model", "groupvit_tiny", "--short-side", "4"],
         "--short-side 4: must be at least groupvit_tiny's patch size, 8 px"),
        (["--vocab", "cat", "--random-init", "--short-side", "8"], "--short-side 8: must be at least groupvit_s's patch size, 16 px"),
        (
            ["--vocab", "cat", "--random-init", "--templates", "fancy"],
            "argument --templates: invalid choice: 'fancy' (choose from 'imagenet', 'simple', 'subset')",
        ),
        (["--vocab", "cat", "--random-init", "--model", "groupvit_xl"], "argument --model: invalid choice: 'groupvit_xl'"),
        (["--vocab", "cat", "--random-init", "--shifts", "0", "-4"], "refine shifts must be pixel counts >= 0, got (0, -4)"),
        (["--vocab", "cat", "--random-init", "--device", "gpu0"], "--device gpu0: not a device (use cpu or cuda)"),
        (["--vocab", "cat", "--checkpoint", "w.pth", "--override", "vision.width=64"], "--override needs --model, the preset it changes"),
        (["--vocab", "cat", "--random-init", "--override", "vision.width=64"],
         "--override: width 64 must be divisible by every num_heads (6, 6, 6)"),
        (["--vocab", "cat", "--random-init", "--model", "groupvit_tiny", "--override", "vision.widht=64"],
         "--override: unknown config key 'vision.widht' (valid keys for VisionConfig:"),
        (["--vocab", "cat", "--random-init", "--model", "groupvit_tiny", "--override", "width"],
         "argument --override: 'width': expected KEY=VALUE, e.g. vision.num_group_tokens=[32]"),
        (["--vocab", "cat", "--random-init", "--model", "groupvit_tiny", "--override", "vision.patch_size=16",
          "--short-side", "8"], "--short-side 8: must be at least groupvit_tiny's patch size, 16 px"),
    ],
)  # fmt: skip
def test_usage_errors(extra: list[str], message: str, images: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args([str(images), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("usage: groupvit-demo")
        and f"groupvit-demo: error: {message}" in err
        and "Traceback" not in err
    )


def test_refinement_options_reach_the_refine_config() -> None:
    args = demo.parse_args(["x.png", "--vocab", "cat", "--random-init", "--flip", "--shifts", "0", "4"])
    assert args.refine.flip and args.refine.shifts == (0, 4) and args.refine.scales == (1.0,)
    assert demo.parse_args(["x.png", "--vocab", "cat", "--random-init"]).refine == RefineConfig()


def test_out_must_not_be_a_file(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    picture = images / "scene.png"
    before = picture.read_bytes()
    for out, message in (
        (picture, f"--out {picture} is a file, not a folder"),
        (picture / "sub", f"--out {picture / 'sub'}: {picture} is a file, not a folder"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            demo.parse_args([str(images), *TINY, "--out", str(out)])
        assert exit_info.value.code == 2
        assert f"groupvit-demo: error: {message}\n" in capsys.readouterr().err
    assert picture.read_bytes() == before


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
    preset = get_model_config("groupvit_tiny_synthetic").inference
    # no copy of the preset's threshold in the demo or the config: both read config.inference
    assert "synthetic" not in demo.BG_THRESH and "bg_thresh" not in config.model and preset.bg_thresh == 0.95
    assert preset.short_side == 320
    assert config.test_dataloader.dataset.pipeline[1] == dict(
        type="PresetResize", model_name=config.model_name
    )


def test_default_short_side_is_the_presets() -> None:
    args = demo.parse_args(["x.png", "--vocab", "cat", "--model", "groupvit_tiny", "--random-init"])
    args.device = "cpu"
    segmenter, short_side = demo.build_segmenter(args)
    assert short_side == 128 == segmenter.model.config.inference.short_side
    assert segmenter.window == (128, 128) and segmenter.stride == (64, 64)
    # the synthetic model's evaluation size comes with the preset, whatever --dataset says
    args = demo.parse_args(["x.png", "--vocab", "cat", "--model", "groupvit_tiny_synthetic", "--random-init"])
    args.device = "cpu"
    assert demo.build_segmenter(args)[1] == 320


def test_preset_is_read_off_the_checkpoint(capsys) -> None:
    args = demo.parse_args(["x.png", "--vocab", "cat", "--checkpoint", str(SHIPPED)])
    args.device = "cpu"
    segmenter, short_side = demo.build_segmenter(args)
    assert segmenter.model.config == get_model_config("groupvit_tiny_synthetic") and short_side == 320
    assert "model groupvit_tiny_synthetic (read off the checkpoint), short side 320, mode slide" in (
        capsys.readouterr().err
    )


def test_override_loads_a_checkpoint_trained_with_model_overrides(tmp_path: Path, capsys) -> None:
    """A checkpoint of a config's ``model.model_overrides`` fits no preset as it stands; ``--override``
    rebuilds the preset it was trained from, with the weights bit for bit."""
    overrides = {"vision.num_group_tokens": [16], "vision.num_output_groups": [16]}
    torch.manual_seed(0)
    trained = groupvit.create_model("groupvit_tiny_synthetic_shapes", **overrides).eval()
    checkpoint = tmp_path / "g16.pth"
    torch.save(trained.state_dict(), checkpoint)
    base = [
        "x.png",
        "--vocab",
        "cat",
        "--checkpoint",
        str(checkpoint),
        "--model",
        "groupvit_tiny_synthetic_shapes",
    ]
    args = demo.parse_args(base)
    args.device = "cpu"
    with pytest.raises(InputError, match="does not fit model 'groupvit_tiny_synthetic_shapes'"):
        demo.build_segmenter(args)
    args = demo.parse_args(
        [*base, "--override", "vision.num_group_tokens=[16]", "vision.num_output_groups=[16]"]
    )
    args.device = "cpu"
    segmenter, short_side = demo.build_segmenter(args)
    assert segmenter.model.config.vision.num_group_tokens == (16,)
    assert short_side == 64  # the preset's inference size, untouched by the overrides
    loaded = segmenter.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained.state_dict().items())

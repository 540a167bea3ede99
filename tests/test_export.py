"""groupvit-export: the ONNX graph of the shipped synthetic model against PyTorch in onnxruntime,
the input it refuses, and the output file it never overwrites without --force."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import groupvit
from groupvit.app.examples import SYNTHETIC_VOCABULARY, write_examples
from groupvit.cli.export import main
from groupvit.cli.models import load_model
from groupvit.errors import InputError
from groupvit.preprocess import EvalTransform

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth"
MISSING = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{', '.join(MISSING)} not installed (requirements-dev.txt)"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "synthetic.onnx"
    assert main(["--vocab", SYNTHETIC_VOCABULARY, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_onnxruntime_labels_equal_pytorch(exported: Path, tmp_path: Path) -> None:
    import onnxruntime

    from groupvit.export import check_onnx_input, read_spec

    spec = read_spec(exported)
    assert (spec.preset, spec.min_side, spec.traced_size) == ("groupvit_tiny_synthetic", 8, [320, 320])
    assert (spec.bg_thresh, spec.top_k) == (0.95, 5)
    assert spec.class_names == ["background", *SYNTHETIC_VOCABULARY.split(", ")]
    scenes = write_examples(tmp_path, count=8)  # val scenes 0-7
    images = torch.cat([EvalTransform(320)(s.path)[None] for s in scenes])  # [8, 3, 320, 320]
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    labels, rows = session.run(None, {"images": check_onnx_input(images.numpy(), spec)})  # a batch of 8
    model = load_model(SHIPPED)
    segmenter = groupvit.ZeroShotSegmenter(model, spec.class_names[1:], bg_thresh=0.95)
    expected = segmenter.predict(images).labels.numpy()
    assert labels.shape == (8, 320, 320) and labels.dtype == np.int64
    assert (labels == expected).mean() >= 0.999  # measured: all 819,200 pixels equal
    with torch.no_grad():
        features = model.forward_segmentation(images)
        assert np.allclose(rows, segmenter._group_scores(features).numpy(), atol=1e-4)
    # other sizes than the traced one: the grid, the pos-embed resample and the resize follow the input
    for size in [(320, 480), (333, 401), (64, 64)]:
        resized = torch.nn.functional.interpolate(images[:4], size=size, mode="bilinear", align_corners=False)
        labels, _ = session.run(None, {"images": check_onnx_input(resized.numpy(), spec)})
        assert (labels == segmenter.predict(resized).labels.numpy()).mean() >= 0.999, size  # measured: 1.0


def test_refuses_malformed_input(exported: Path, tmp_path: Path) -> None:
    from groupvit.export import check_onnx_input, read_spec

    spec = read_spec(exported)
    with pytest.raises(InputError, match=r"^images of 4 x 480 \(H x W\) are smaller than one 8 x 8 patch"):
        check_onnx_input(np.zeros((1, 3, 4, 480), np.float32), spec)
    with pytest.raises(
        InputError, match=r"^images must be a float array \[B, 3, H, W\], got \[320, 320, 3\]"
    ):
        check_onnx_input(np.zeros((320, 320, 3), np.float32), spec)
    with pytest.raises(InputError, match=r"^images must be float \(ImageNet-normalised\), got uint8"):
        check_onnx_input(np.zeros((1, 3, 320, 320), np.uint8), spec)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(InputError, match=r"junk.onnx is not an ONNX file"):
        read_spec(junk)


def test_never_overwrites_without_force(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    before = exported.read_bytes()
    with pytest.raises(SystemExit) as stop:
        main(["--vocab", "car", "--out", str(exported)])
    assert stop.value.code == 2
    assert f"--out {exported} exists; pass --force to overwrite it" in capsys.readouterr().err
    assert exported.read_bytes() == before
    assert main(["--vocab", "car", "--size", "4", "4", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--size 4 4: both sides must be at least the patch size, 8 px" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(SystemExit):
        main(["--vocab", " , ", "--out", str(tmp_path / "y.onnx")])
    assert "empty vocabulary" in capsys.readouterr().err

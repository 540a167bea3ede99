"""groupvit.group_analysis on hand-built maps, and groupvit-analyze on the shipped model."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from groupvit.data.synthetic import CLASSES, render_scene
from groupvit.group_analysis import (
    assignment_entropy,
    confusion_matrix,
    grid_oracle_labels,
    group_label_counts,
    groups_used,
    iou_per_class,
    mean_iou,
    oracle_background_labels,
    purity_oracle_labels,
)
from groupvit.sliding_window import resize_scores

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth"

# one 2 x 4 image: labels 0 = background, 1, 2; 255 ignored
LABELS = torch.tensor([[[0, 0, 1, 1], [0, 2, 2, 255]]])
# group 0 holds three background pixels and one of class 2, group 3 holds both class-1 pixels,
# group 1 one class-2 pixel and the ignored one; group 2 owns nothing
GROUPS = torch.tensor([[[0, 0, 3, 3], [0, 0, 1, 1]]])


def test_confusion_matrix_and_iou() -> None:
    pred = torch.tensor([[[0, 1, 1, 1], [0, 2, 0, 2]]])
    cm = confusion_matrix(pred, LABELS, num_classes=3)
    # rows: truth, columns: prediction; the ignored pixel is not counted
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    iou = iou_per_class(cm)
    assert iou.tolist() == pytest.approx([100 * 2 / 4, 100 * 2 / 3, 100 * 1 / 2])
    assert mean_iou(cm) == pytest.approx((50 + 200 / 3 + 50) / 3)
    # a class in neither map is left out of the mean, as mmseg's IoUMetric does
    assert math.isnan(iou_per_class(confusion_matrix(pred, LABELS, num_classes=4))[3])
    assert mean_iou(confusion_matrix(pred, LABELS, num_classes=4)) == pytest.approx(mean_iou(cm))


def test_group_label_counts_and_usage() -> None:
    counts = group_label_counts(GROUPS, LABELS, num_groups=4, num_classes=3)
    assert counts.shape == (1, 4, 3)
    assert counts[0].tolist() == [[3, 0, 1], [0, 0, 1], [0, 0, 0], [0, 2, 0]]
    assert groups_used(GROUPS, num_groups=4).tolist() == [3]


def test_assignment_entropy() -> None:
    G = 4
    even = torch.full((2, 6, G), 1 / G)  # [B, N, G]
    token, usage = assignment_entropy(even)
    assert token.tolist() == pytest.approx([math.log(G)] * 2) and usage.tolist() == pytest.approx(
        [math.log(G)] * 2
    )
    one_hot = torch.eye(G)[torch.tensor([[0, 0, 1, 1, 2, 3]])]  # [1, 6, G]: decided, 4 groups used
    token, usage = assignment_entropy(one_hot)
    shares = torch.tensor([2, 2, 1, 1]) / 6
    assert token.item() == pytest.approx(0.0, abs=1e-6)
    assert usage.item() == pytest.approx(float(-(shares * shares.log()).sum()))


def test_purity_oracle_labels() -> None:
    counts = group_label_counts(GROUPS, LABELS, num_groups=4, num_classes=3)
    oracle = purity_oracle_labels(GROUPS, counts)
    assert oracle.tolist() == [[[0, 0, 1, 1], [0, 0, 2, 2]]]
    # only the class-2 pixel inside the background group is lost
    cm = confusion_matrix(oracle, LABELS, num_classes=3)
    assert iou_per_class(cm).tolist() == pytest.approx([75.0, 100.0, 50.0])


def test_oracle_background_labels_keep_model_names() -> None:
    counts = group_label_counts(GROUPS, LABELS, num_groups=4, num_classes=3)
    # the model calls group 0 "2" (ignored: ground truth says background), group 1 "1" (wrong)
    # and group 3 "1" (right)
    named = oracle_background_labels(GROUPS, counts, torch.tensor([[2, 1, 2, 1]]))
    assert named.tolist() == [[[0, 0, 1, 1], [0, 0, 1, 1]]]


def test_grid_oracle_labels() -> None:
    # a 2 x 2 object in the corner of a 4 x 4 map lies on one cell of a 2 x 2 grid: recovered exactly
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2, :2] = 1
    assert torch.equal(grid_oracle_labels(labels, (2, 2), 3), labels)
    # one cell for the whole map: its majority everywhere, ignored pixels left out of the fractions
    labels = torch.tensor([[[2, 2], [255, 0]]])
    assert torch.equal(grid_oracle_labels(labels, (1, 1), 3), torch.full((1, 2, 2), 2))
    # a one-pixel object in a 4 x 4 cell is lost to the cell's background
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 1, 2] = 1
    assert grid_oracle_labels(labels, (1, 1), 2).eq(0).all()
    # a cell split down the middle: the bilinear resize keeps the split on a 2 x 2 grid of 2-px cells
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :, 2:] = 1
    assert torch.equal(grid_oracle_labels(labels, (2, 2), 2), labels)
    assert torch.equal(grid_oracle_labels(labels, (1, 1), 2), torch.zeros(1, 4, 4, dtype=torch.long))


def test_group_label_counts_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        group_label_counts(GROUPS, LABELS[:, :1], num_groups=4, num_classes=3)


def _load_tool():
    from groupvit.cli import analyze

    return analyze


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("val")
    (root / "img").mkdir()
    (root / "ann").mkdir()
    rng = np.random.default_rng(7)
    for i in range(12):
        image, mask, _ = render_scene(rng)
        image.save(root / "img" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "ann" / f"{i:03d}.png")
    return root


@pytest.mark.slow  # 48-98 s
def test_tool_on_the_shipped_model(val_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tool = _load_tool()
    out = tmp_path / "groups.json"
    argv = [str(val_dir / "img"), "--ann-dir", str(val_dir / "ann"), "--dataset", "synthetic"]
    argv += ["--model", "groupvit_tiny_synthetic", "--checkpoint", str(CHECKPOINT), "--json", str(out)]
    assert tool.main(argv + ["--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "purity oracle, stage 1" in printed
    entropy = result["assignment_entropy"]["stage 1"]
    assert f"stage 1 {entropy['token']:.3f} / {entropy['usage']:.3f} / {math.log(16):.3f}" in printed
    # scored at the config's test size, five times the 64-px training size
    assert result["images"] == 12 and result["short_side"] == 320 and result["bg_thresh"] == 0.95
    assert result["classes"] == list(CLASSES)
    miou = result["miou"]
    # one grouping stage of 16 groups (groupvit/model_configs/groupvit_tiny_synthetic.json)
    assert list(miou) == ["protocol", "oracle background", "purity oracle, stage 1", "token-grid oracle"]
    # at 320 px a token of the 40 x 40 grid covers 1.6 px of the 64-px label maps: hardly any limit
    assert miou["token-grid oracle"] > 95
    # True names can only help groups whose majority is already right. The shipped model names its
    # object groups right (every one in these 12 scenes; 88% on the val set), so what the protocol loses
    # against the purity oracle is the background threshold (README, "Synthetic data").
    assert miou["purity oracle, stage 1"] >= miou["oracle background"] >= miou["protocol"] > 45
    assert result["object_groups_named_right"] > 0.85
    assert result["iou"]["protocol"][0] > 50  # background
    assert 1 <= result["groups_used_per_image"]["stage 1"] <= 16
    assert entropy["uniform"] == pytest.approx(math.log(16), abs=1e-3)
    # the shipped colour model's soft maps lean towards their groups (a patch 2.17 nats, the image's
    # usage 2.63, of ln 16 = 2.77): below the even spread that the hard argmax would draw from ties
    assert 0 <= entropy["token"] < entropy["usage"] < entropy["uniform"]
    assert entropy["token"] == pytest.approx(2.165, abs=0.05) and entropy["usage"] == pytest.approx(
        2.628, abs=0.05
    )
    assert 0 <= result["object_groups_named_right"] <= 1 and result["object_groups"] > 0

    # The protocol row equals groupvit-demo's labels scored by the same confusion matrix.
    demo = tool.demo
    args = demo.parse_args(argv[:1] + argv[3:9] + ["--device", "cpu"])
    segmenter, short_side = demo.build_segmenter(args)
    total = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.long)
    for i in range(12):
        image = demo.load_image(val_dir / "img" / f"{i:03d}.png")
        target = torch.from_numpy(np.asarray(Image.open(val_dir / "ann" / f"{i:03d}.png"), dtype=np.int64))
        with torch.no_grad():
            scores = segmenter.predict(demo.preprocess(image, short_side)).scores
        labels = resize_scores(scores, (64, 64)).argmax(dim=1)[0]
        total += confusion_matrix(labels, target, len(CLASSES))
    assert miou["protocol"] == pytest.approx(mean_iou(total), abs=0.01)


def test_tool_names_a_missing_label_map(val_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tool = _load_tool()
    ann = tmp_path / "ann"
    ann.mkdir()
    argv = [str(val_dir / "img"), "--ann-dir", str(ann), "--dataset", "synthetic"]
    argv += ["--model", "groupvit_tiny_synthetic", "--checkpoint", str(CHECKPOINT), "--device", "cpu"]
    assert tool.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"groupvit-analyze: error: 12 label maps are missing, e.g. {ann / '000.png'}\n"


def test_tool_names_a_mis_sized_or_unreadable_label_map(
    val_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tool = _load_tool()
    ann = tmp_path / "ann"
    ann.mkdir()
    argv = [str(val_dir / "img" / "000.png"), str(val_dir / "img" / "001.png"), "--ann-dir", str(ann)]
    argv += ["--dataset", "synthetic", "--model", "groupvit_tiny_synthetic"]
    argv += ["--checkpoint", str(CHECKPOINT), "--device", "cpu"]
    Image.fromarray(np.zeros((32, 48), dtype=np.uint8)).save(ann / "000.png")
    (ann / "001.png").write_bytes(b"not a png")
    assert tool.main(argv) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"groupvit-analyze: error: {ann / '000.png'} is 48x32, its image 64x64\n")
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(ann / "000.png")
    assert tool.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"groupvit-analyze: error: cannot read label map {ann / '001.png'}: cannot identify image file" in err
    )
    assert "Traceback" not in err


@pytest.mark.parametrize("limit, scored", [(5, 5), (12, 12), (100, 12)])
def test_tool_scores_exactly_max_images(
    limit: int, scored: int, val_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    tool = _load_tool()
    out = tmp_path / "groups.json"
    argv = [str(val_dir / "img"), "--ann-dir", str(val_dir / "ann"), "--dataset", "synthetic"]
    argv += ["--model", "groupvit_tiny_synthetic", "--checkpoint", str(CHECKPOINT), "--device", "cpu"]
    assert tool.main(argv + ["--max-images", str(limit), "--short-side", "64", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["images"] == scored


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max-images", "-1"], "argument --max-images: must be at least 1, got -1"),
        (["--max-images", "0"], "argument --max-images: must be at least 1, got 0"),
        (["--max-images", "many"], "argument --max-images: not an integer: 'many'"),
        (["--bg-thresh", "1.5"], "argument --bg-thresh: must be a number in [0, 1], got 1.5"),
    ],
)
def test_tool_usage_errors(
    extra: list[str], message: str, val_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tool = _load_tool()
    out = tmp_path / "groups.json"
    argv = [str(val_dir / "img"), "--ann-dir", str(val_dir / "ann"), "--dataset", "synthetic"]
    argv += ["--checkpoint", str(CHECKPOINT), "--json", str(out), *extra]
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"groupvit-analyze: error: {message}\n" in err and "Traceback" not in err
    assert not out.exists()

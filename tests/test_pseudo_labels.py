"""Pseudo grounding labels: the label map and kept phrases, their precision, the writer's folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from groupvit.cli import pseudo_label as cli
from groupvit.grounding import GroundedPhrase, GroundingResult
from groupvit.grounding_metric import GroundingRecord, read_grounding_jsonl
from groupvit.pseudo_labels import IGNORE, pseudo_label, score_pseudo_labels

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth"


def _result() -> GroundingResult:
    masks = torch.zeros(3, 2, 4, dtype=torch.bool)
    masks[0, 0, :2] = True  # "a red ball"
    masks[1, 1, :] = True  # "a tree", below the threshold
    phrases = [
        GroundedPhrase("a red ball", (0, 10), masks[0], 0.9),
        GroundedPhrase("a tree", (15, 21), masks[1], 0.2),
        GroundedPhrase("the wall", (25, 33), masks[2], 0.8),  # empty mask: never kept
        GroundedPhrase("the ball", (40, 48), masks[0], 0.9),  # same words as the first: same value
    ]
    return GroundingResult(phrases, torch.zeros(2, 4, dtype=torch.long))


def test_label_map_numbers_kept_masks_and_ignores_weak_ones() -> None:
    label_map, phrases = pseudo_label(_result(), threshold=0.5)
    assert label_map.tolist() == [[1, 1, 0, 0], [IGNORE] * 4]
    assert phrases == [
        {"span": [0, 10], "label": 1, "score": 0.9},
        {"span": [40, 48], "label": 1, "score": 0.9},
    ]
    label_map, phrases = pseudo_label(_result(), threshold=0.0)
    assert label_map.tolist() == [[1, 1, 0, 0], [2, 2, 2, 2]]
    assert [p["label"] for p in phrases] == [1, 2, 1]


def test_precision_at_each_threshold() -> None:
    pseudo = [pseudo_label(_result(), 0.0)]
    truth_map = np.array([[3, 3, 3, 0], [4, 4, 0, 0]])  # ball (3) has one pixel more; tree (4) half a row
    record = GroundingRecord(Path("i.png"), Path("a.png"), "caption", (((0, 10), 3), ((15, 21), 4)))
    low, high = score_pseudo_labels(pseudo, [(record, truth_map)], [0.0, 0.5])
    # "the ball" names no ground-truth phrase: kept but unmatched; ball IoU 2/3, tree 2/4
    assert (low.kept, low.matched, low.precise, low.covered) == (3, 2, 2, 2)
    assert low.pixels == 2 + 4 + 2 and low.true_pixels == 2 + 2 + 0
    assert (high.kept, high.precise, high.covered, high.truth_phrases) == (2, 1, 1, 2)
    assert high.row()["precision_at_0.5"] == 50.0 and high.row()["recall_at_0.5"] == 50.0


def test_writer_refuses_an_existing_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "captions.jsonl").write_text('{"image": "a.jpg", "caption": "a ball"}\n')
    code = cli.main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--checkpoint", str(SHIPPED)])
    assert code == 2
    assert "--out" in capsys.readouterr().err and (tmp_path / "out" / "mine.txt").read_text() == "keep me"
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "new"), "--checkpoint", str(SHIPPED)]) == 2
    assert "holds neither captions.jsonl nor grounding.jsonl" in capsys.readouterr().err


@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"{SHIPPED} not present")
def test_writer_on_generated_scenes_reads_back_as_grounding_data(tmp_path: Path, capsys) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools/make_synthetic_data.py"), "--out", str(tmp_path / "scenes"),
         "--num-train", "0", "--num-val", "4", "--seed", "3"],
        check=True, capture_output=True,
    )  # fmt: skip
    val = tmp_path / "scenes" / "val"
    out = tmp_path / "pseudo"
    args = [str(val), "--out", str(out), "--checkpoint", str(SHIPPED), "--threshold", "0.3"]
    assert cli.main([*args, "--truth", str(val / "grounding.jsonl"), "--report", "0.3", "0.9"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == 4 and summary["kept"] >= 1
    assert [row["threshold"] for row in summary["truth"]] == [0.3, 0.9]
    assert summary["truth"][0]["kept"] == summary["kept"] >= summary["truth"][1]["kept"]
    records = read_grounding_jsonl(out / "grounding.jsonl")  # the fusion reader's format
    assert len(records) == 4
    for record in records:
        values = set(np.unique(np.asarray(Image.open(record.label_map))).tolist())
        assert (
            {label for _, label in record.phrases}
            <= values
            <= {0, IGNORE} | {lab for _, lab in record.phrases}
        )
        assert record.image.is_file()
    capsys.readouterr()
    assert cli.main(args) == 2  # a second run never writes over the first
    assert "exists and is not an empty folder" in capsys.readouterr().err
    _selftrain_step_reads(out)


def _selftrain_step_reads(pseudo: Path) -> None:
    """The self-training config's dataset reads the writer's folder and its model scores the masks."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    import mmseg_plugins  # noqa: F401
    from mmseg_plugins.train_data import image_text_collate

    cfg = Config.fromfile(str(ROOT / "configs/groupvit/groupvit_tiny_synthetic_selftrain.py"))
    assert cfg.model.grounding_weight == 1.0 and cfg.model.grounding_fusion is False
    init_default_scope("mmseg")
    dataset = DATASETS.build({**cfg.train_dataloader.dataset, "data_root": str(pseudo)})
    batch = image_text_collate([dataset[i] for i in range(4)])
    torch.manual_seed(0)
    model = MODELS.build({**cfg.model, "checkpoint": str(SHIPPED)}).train()
    losses = model(batch["inputs"], batch["data_samples"], mode="loss")
    assert {"loss_itc", "loss_multi_label", "loss_grounding"} <= losses.keys()
    assert 0.0 < float(losses["loss_grounding"]) < 10.0

"""Benchmark configs: each loads, names an existing class list of the right length and spellings, and
tools/eval_all.py reports a missing data_root per config and carries on."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mmseg_plugins  # noqa: F401  (compat layer before any mmseg import)
from groupvit.class_file import read_class_file
from groupvit.class_names import CONTEXT_CLASSES, VOC_CLASSES

ROOT = Path(__file__).resolve().parents[1]

# config -> (dataset type, classes scored, some (label, word) pairs of the official spellings)
BENCHMARKS = {
    "groupvit_s_voc20": ("CheckedPascalVOC20Dataset", 20, [(0, "aeroplane"), (10, "table"), (15, "plant"), (19, "monitor")]),
    "groupvit_s_context59": ("CheckedPascalContextDataset59", 59, [(0, "airplane"), (39, "plant"), (58, "wood")]),
    "groupvit_s_coco_stuff171": ("CheckedCOCOStuffDataset", 171, [(0, "person"), (58, "potted plant"), (62, "tv"), (84, "building"), (91, "ceiling tile"), (159, "brick wall"), (170, "wood")]),
    "groupvit_s_cityscapes": ("CheckedCityscapesDataset", 19, [(0, "road"), (6, "traffic light"), (18, "bicycle")]),
    "groupvit_s_ade20k150": ("CheckedADE20KDataset", 150, [(0, "wall"), (7, "bed"), (8, "windowpane"), (149, "flag")]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_config_loads_with_its_class_list(name: str) -> None:
    from mmengine.config import Config
    from mmseg.registry import DATASETS

    cfg = Config.fromfile(str(ROOT / "configs" / "groupvit" / f"{name}.py"))
    dataset_type, num_classes, spellings = BENCHMARKS[name]
    assert cfg.test_dataloader.dataset.type == dataset_type
    assert cfg.model.type == "GroupViTSegmentor" and cfg.model.background is False
    dataset_classes = DATASETS.get(dataset_type).METAINFO["classes"]
    assert len(dataset_classes) == num_classes
    if cfg.model.get("class_file"):
        words = read_class_file(cfg.model.class_file).names
    else:  # the paper's benchmarks: the dataset's names through the benchmark's renames
        from groupvit.class_names import DATASET_CLASS_RENAMES

        words = tuple(DATASET_CLASS_RENAMES[cfg.model.benchmark].get(n, n) for n in dataset_classes)
    assert len(words) == num_classes
    for label, word in spellings:
        assert words[label] == word, (name, label)
    assert not {"pamr_iterations", "soft_groups", "scales", "flip"} & set(cfg.model.test_cfg)


def test_voc20_and_context59_words_are_the_paper_lists_without_background() -> None:
    assert read_class_file(ROOT / "configs/class_names/voc20.txt").names == VOC_CLASSES[1:]
    from mmengine.config import Config
    from mmseg.registry import DATASETS

    from groupvit.class_names import DATASET_CLASS_RENAMES

    cfg = Config.fromfile(str(ROOT / "configs/groupvit/groupvit_s_context59.py"))
    names = DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO["classes"]
    renamed = tuple(DATASET_CLASS_RENAMES["context"].get(n, n) for n in names)
    assert renamed == CONTEXT_CLASSES[1:]


def test_segmentor_scores_the_class_file_words(tmp_path: Path) -> None:
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    class_file = tmp_path / "classes.txt"
    class_file.write_text("background: sky, wall\ncat: kitten\ndog\n")
    cfg = dict(
        type="GroupViTSegmentor", model_name="groupvit_tiny", class_file=str(class_file), background=False
    )
    segmentor = MODELS.build({**cfg, "test_cfg": dict(mode="whole", soft_groups=True, flip=True)})
    segmentor.dataset_meta = {"classes": ("background", "cat", "dog")}
    assert segmentor.segmenter._synonyms == (("background", "sky", "wall"), ("cat", "kitten"), ("dog",))
    assert segmentor.segmenter.refine.soft_groups and segmentor.segmenter.refine.flip
    with_threshold = MODELS.build({**cfg, "background": True})
    with_threshold.dataset_meta = {"classes": ("background", "cat", "dog")}
    with pytest.raises(
        ValueError, match=r"gives label 0 \('background'\) synonyms.*set model.background=False"
    ):
        _ = with_threshold.segmenter
    short = MODELS.build(cfg)
    short.dataset_meta = {"classes": ("background", "cat")}
    with pytest.raises(ValueError, match=r"has 3 classes, the dataset 2: one line per label, in label order"):
        _ = short.segmenter
    with pytest.raises(ValueError, match=r"unknown test_cfg keys \['pamr'\]: valid are mode, crop_size"):
        MODELS.build({**cfg, "test_cfg": dict(mode="whole", pamr=3)})
    with pytest.raises(ValueError, match="refine scales must be positive"):
        MODELS.build({**cfg, "test_cfg": dict(mode="whole", scales=(0,))})


@pytest.mark.slow
def test_eval_all_names_each_missing_data_root(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pth"
    checkpoint.write_bytes(b"not read: no config has its data")
    configs = [
        str(ROOT / "configs/groupvit/groupvit_s_voc20.py"),
        str(ROOT / "configs/groupvit/groupvit_s_ade20k150.py"),
    ]
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools/eval_all.py"), *configs, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"),
         "--cfg-options", f"test_dataloader.dataset.data_root={tmp_path / 'nowhere'}"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    rows = json.loads((tmp_path / "out/results.json").read_text())["rows"]
    assert [row["status"] for row in rows] == [f"missing data_root {tmp_path / 'nowhere'}"] * 2
    table = (tmp_path / "out/results.md").read_text()
    assert f"| groupvit_s_ade20k150 | - | - | - | missing data_root {tmp_path / 'nowhere'} |" in table
    bad = subprocess.run(
        [sys.executable, str(ROOT / "tools/eval_all.py"), "nope.py", "--checkpoint", str(checkpoint)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip() == "eval_all.py: error: config nope.py does not exist"

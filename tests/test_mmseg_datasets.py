"""Datasets and dataset configs: class lists, metainfo, path and label-map errors, the configs' rename maps."""

# isort: off
import mmseg_plugins  # noqa: F401  (compat layer before any mmseg import; registers the datasets)

# isort: on
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS
from mmseg.utils import register_all_modules
from PIL import Image

from groupvit.class_names import COCO_OBJECT_CLASSES, CONTEXT_CLASSES, DATASET_CLASS_RENAMES, VOC_CLASSES
from groupvit.errors import InputError

register_all_modules(init_default_scope=True)  # transforms resolve in the mmseg scope, as under the Runner
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _write_pairs(img_dir: Path, ann_dir: Path, names: list[str], suffix: str, num_classes: int) -> None:
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(img_dir / f"{name}.jpg")
        label = rng.integers(0, num_classes, (12, 16), dtype=np.uint8)
        label[0] = 255
        Image.fromarray(label, mode="L").save(ann_dir / f"{name}{suffix}")


def _voc(tmp_path: Path, names=("2007_000001", "2007_000002")) -> Path:
    root = tmp_path / "VOC2012"
    _write_pairs(root / "JPEGImages", root / "SegmentationClass", list(names), ".png", 21)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def _build(config: str, data_root: Path, **dataset_overrides):
    cfg = Config.fromfile(CONFIGS / "groupvit" / config)
    dataset = dict(cfg.test_dataloader.dataset, data_root=str(data_root), **dataset_overrides)
    return cfg, DATASETS.build(dataset)


@pytest.mark.parametrize(
    "config, expected, dataset_key",
    [
        ("groupvit_s_voc.py", VOC_CLASSES, "voc"),
        ("groupvit_s_context.py", CONTEXT_CLASSES, "context"),
        ("groupvit_s_coco_object.py", COCO_OBJECT_CLASSES, "coco_object"),
    ],
)
def test_class_lists_renamed_match_groupvit(config: str, expected: tuple, dataset_key: str) -> None:
    cfg = Config.fromfile(CONFIGS / "groupvit" / config)
    classes = DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO["classes"]
    assert len(classes) == len(expected) and classes[0] == "background"
    assert cfg.model.benchmark == dataset_key  # renames and threshold: groupvit.class_names
    renames = DATASET_CLASS_RENAMES[dataset_key]
    assert tuple(renames.get(c, c) for c in classes) == expected
    assert cfg.model.background is True
    assert cfg.model.test_cfg == dict(mode="slide", crop_size=(448, 448), stride=(224, 224))
    resize = [t for t in cfg.test_dataloader.dataset.pipeline if t["type"] == "Resize"][0]
    assert resize["scale"] == (2048, 448) and resize["keep_ratio"]


def test_voc_dataset_metainfo_and_samples(tmp_path: Path) -> None:
    _, dataset = _build("groupvit_s_voc.py", _voc(tmp_path))
    assert len(dataset) == 2
    assert dataset.metainfo["classes"] == tuple(DATASETS.get("PascalVOCDataset").METAINFO["classes"])
    assert len(dataset.metainfo["classes"]) == 21 and len(dataset.metainfo["palette"]) == 21
    sample = dataset[0]
    assert sample["data_samples"].gt_sem_seg.data.shape == (1, 12, 16)
    assert sample["inputs"].shape == (3, 448, 597)  # short side 448, aspect kept


def test_context_datasets(tmp_path: Path) -> None:
    root = tmp_path / "VOC2010"
    _write_pairs(root / "JPEGImages", root / "SegmentationClassContext", ["2008_000002"], ".png", 60)
    (root / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (root / "ImageSets" / "SegmentationContext" / "val.txt").write_text("2008_000002\n")
    _, full = _build("groupvit_s_context.py", root)
    assert len(full.metainfo["classes"]) == 60 and not full.reduce_zero_label
    cfg, reduced = _build("groupvit_s_context59.py", root)
    assert len(reduced.metainfo["classes"]) == 59 and reduced.reduce_zero_label
    assert cfg.model.background is False
    raw = np.array(Image.open(root / "SegmentationClassContext" / "2008_000002.png"))
    gt = reduced[0]["data_samples"].gt_sem_seg.data[0].numpy()
    assert np.array_equal(gt, np.where((raw == 0) | (raw == 255), 255, raw - 1))


def test_coco_object_dataset(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    _write_pairs(
        root / "images/val2017", root / "annotations/val2017", ["000000000139"], "_instanceTrainIds.png", 81
    )
    _, dataset = _build("groupvit_s_coco_object.py", root)
    assert type(dataset).__name__ == "COCOObjectDataset"
    assert dataset.metainfo["classes"] == COCO_OBJECT_CLASSES
    assert len(dataset.metainfo["palette"]) == 81
    assert dataset.get_data_info(0)["seg_map_path"].endswith(
        "annotations/val2017/000000000139_instanceTrainIds.png"
    )


def test_custom_dataset(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    _write_pairs(root / "images/val", root / "annotations/val", ["a", "b", "c"], ".png", 3)
    cfg, dataset = _build("groupvit_s_custom.py", root)
    assert len(dataset) == 3 and dataset.metainfo["classes"] == ("background", "cat", "dog")
    cfg.test_dataloader.dataset.metainfo = None
    with pytest.raises(InputError, match="needs class names"):
        DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(root)))


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("data_root", "data_root .* does not exist"),
        ("images", "img_path folder .*JPEGImages.* does not exist"),
        ("split", "split file .*val.txt.* does not exist"),
        ("label", "1 of the files listed for 2 samples are missing, e.g. .*2007_000002.png"),
        ("empty", "no samples found"),
    ],
)
def test_wrong_paths_give_clear_errors(tmp_path: Path, breakage: str, message: str) -> None:
    root = _voc(tmp_path)
    overrides = {}
    if breakage == "data_root":
        root = tmp_path / "nowhere"
    elif breakage == "images":
        (root / "JPEGImages").rename(root / "Images")
    elif breakage == "split":
        (root / "ImageSets/Segmentation/val.txt").unlink()
    elif breakage == "label":
        (root / "SegmentationClass/2007_000002.png").unlink()
    elif breakage == "empty":
        (root / "ImageSets/Segmentation/val.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=message) as info:
        _build("groupvit_s_voc.py", root, **overrides)
    assert "expects images '<name>.jpg'" in str(info.value)


def _custom(tmp_path: Path, label: np.ndarray, mode: str = "L", size: tuple[int, int] = (16, 12)) -> Path:
    """One image (``size`` = W x H) and one label map in the custom config's layout."""
    root = tmp_path / "mine"
    (root / "images/val").mkdir(parents=True)
    (root / "annotations/val").mkdir(parents=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8)).save(root / "images/val/a.jpg")
    image = Image.fromarray(label, mode=mode)
    if mode == "P":
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 - 3) * 3)
    image.save(root / "annotations/val/a.png")
    return root


def test_palette_label_maps_are_single_channel(tmp_path: Path) -> None:
    label = np.tile(np.array([0, 1, 2, 255], dtype=np.uint8), (12, 4))
    _, dataset = _build("groupvit_s_custom.py", _custom(tmp_path, label, mode="P"))
    assert np.array_equal(dataset[0]["data_samples"].gt_sem_seg.data[0].numpy(), label)


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "values",
            r"label map .*a\.png holds values 3, 8 outside the 3 classes \(valid: 0\.\.2, and 255 = ignored\)",
        ),
        ("size", r"label map .*a\.png is 10x16 \(HxW\) but its image .*a\.jpg is 12x16: each label map"),
        ("rgb", r"label map .*a\.png has shape \(12, 16, 3\), not one channel: .* not RGB colours"),
    ],
)
def test_bad_label_maps_name_the_file(tmp_path: Path, case: str, message: str) -> None:
    label = np.zeros((12, 16), dtype=np.uint8)
    mode = "L"
    if case == "values":  # a 9-class map under the custom config's 3 classes
        label[0, :4] = [1, 2, 3, 8]
    elif case == "size":
        label = label[:10]
    elif case == "rgb":
        label, mode = np.zeros((12, 16, 3), dtype=np.uint8), "RGB"
    _, dataset = _build("groupvit_s_custom.py", _custom(tmp_path, label, mode))
    with pytest.raises(InputError, match=message):
        dataset[0]


def test_reduced_labels_are_reported_as_stored(tmp_path: Path) -> None:
    root = tmp_path / "VOC2010"
    _write_pairs(root / "JPEGImages", root / "SegmentationClassContext", ["2008_000002"], ".png", 60)
    label = np.zeros((12, 16), dtype=np.uint8)
    label[0, 0] = 61  # Context59 stores 0 (ignored) and 1..59
    Image.fromarray(label, mode="L").save(root / "SegmentationClassContext" / "2008_000002.png")
    (root / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (root / "ImageSets" / "SegmentationContext" / "val.txt").write_text("2008_000002\n")
    _, full = _build("groupvit_s_context.py", root)
    with pytest.raises(InputError, match=r"holds values 61 outside the 60 classes \(valid: 0\.\.59, and 255"):
        full[0]
    _, reduced = _build("groupvit_s_context59.py", root)
    with pytest.raises(
        InputError, match=r"holds values 61 outside the 59 classes \(valid: 0\.\.59 with 0 ignored"
    ):
        reduced[0]

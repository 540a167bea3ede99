"""The benchmark class names, pinned to the spellings the official GroupViT evaluation feeds its text
encoder; every config that evaluates a benchmark must produce exactly these words."""

# isort: off
import mmseg_plugins  # noqa: F401  (compat layer before any mmseg import; registers the datasets)

# isort: on
from pathlib import Path

import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

from groupvit.class_names import DATASET_CLASS_RENAMES, DATASET_CLASSES

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "groupvit"

# Written out by hand from the official evaluation's dataset files (not derived from our lists).
OFFICIAL = {
    "voc": (
        "background aeroplane bicycle bird boat bottle bus car cat chair cow table dog horse "
        "motorbike person plant sheep sofa train monitor"
    ).split(),
    "context": (
        "background airplane bag bed bedclothes bench bicycle bird boat book bottle building bus "
        "cabinet car cat ceiling chair cloth computer cow cup curtain dog door fence floor flower "
        "food grass ground horse keyboard light motorbike mountain mouse person plate platform "
        "plant road rock sheep shelves sidewalk sign sky snow sofa table track train tree truck "
        "monitor wall water window wood"
    ).split(),
    "coco_object": ["background"]
    + [
        "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
        "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
        "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
        "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
        "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
        "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
        "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
        "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
        "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
        "toothbrush",
    ],
}  # fmt: skip


@pytest.mark.parametrize("dataset", sorted(OFFICIAL))
def test_class_lists_are_the_official_spellings(dataset: str) -> None:
    assert list(DATASET_CLASSES[dataset]) == OFFICIAL[dataset]


@pytest.mark.parametrize(
    ("config", "dataset", "background"),
    [
        ("groupvit_s_voc.py", "voc", True),
        ("groupvit_s_context.py", "context", True),
        ("groupvit_s_context59.py", "context", False),
        ("groupvit_s_coco_object.py", "coco_object", True),
        ("groupvit_s_gcc_yfcc_30e.py", "voc", True),  # the training run's zero-shot validation
    ],
)
def test_every_config_feeds_the_official_words(config: str, dataset: str, background: bool) -> None:
    cfg = Config.fromfile(CONFIGS / config)
    loader = cfg.test_dataloader if cfg.get("test_dataloader") else cfg.val_dataloader
    classes = DATASETS.get(loader.dataset.type).METAINFO["classes"]
    # the config names its benchmark; the segmentor takes the renames from DATASET_CLASS_RENAMES
    assert cfg.model.benchmark == dataset and "class_renames" not in cfg.model
    renames = DATASET_CLASS_RENAMES[cfg.model.benchmark]
    fed = [renames.get(name, name) for name in classes]
    assert fed == (OFFICIAL[dataset] if background else OFFICIAL[dataset][1:])

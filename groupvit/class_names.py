"""Class-name lists of the zero-shot segmentation benchmarks (pure data, no mmseg needed).

Each list starts with ``"background"`` (label 0). Names are written the way they are
fed to the text encoder ("a photo of a {}."), so compound dataset names are spelled
out: VOC's "diningtable" is "table", "pottedplant" is "potted plant" and
"tvmonitor" is "monitor" (the names the GroupViT evaluation uses); PASCAL Context
uses the same spelling for the classes it shares with VOC.
"""

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train",
    "monitor",
)  # fmt: skip

CONTEXT_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food",
    "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse",
    "person", "plate", "platform", "potted plant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck",
    "monitor", "wall", "water", "window", "wood",
)  # fmt: skip

COCO_OBJECT_CLASSES: tuple[str, ...] = (
    "background",
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
)  # fmt: skip

DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "voc": VOC_CLASSES,
    "context": CONTEXT_CLASSES,
    "coco_object": COCO_OBJECT_CLASSES,
}

# Background threshold of the paper's evaluation for each benchmark.
DATASET_BG_THRESH: dict[str, float] = {"voc": 0.95, "context": 0.35, "coco_object": 0.95}


def get_class_names(dataset: str) -> tuple[str, ...]:
    """Class names of ``dataset`` ("voc", "context", "coco_object"), background first."""
    try:
        return DATASET_CLASSES[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(DATASET_CLASSES)}") from None

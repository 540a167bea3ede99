"""Class-name lists of the zero-shot segmentation benchmarks (pure data, no mmseg needed).

Each list starts with ``"background"`` (label 0). Names are spelled exactly as the official
GroupViT evaluation feeds them to the text encoder ("a photo of a {}."): another word changes the
text embedding, the image-level top-5 filter and so the labels (with random GroupViT-S weights on
VOC val images, "potted plant" instead of "plant" left as little as 0-4% of some images' pixels
agreeing with the paper's protocol). VOC writes "table", "plant" and "monitor" for mmseg's
"diningtable", "pottedplant" and "tvmonitor"; PASCAL Context also writes "airplane" for
"aeroplane"; COCO-Object uses COCO's own names ("potted plant", "dining table", "tv").
``DATASET_CLASS_RENAMES`` maps mmseg's dataset class names to these spellings (the configs'
``class_renames``).
"""

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "table", "dog", "horse", "motorbike", "person", "plant", "sheep", "sofa", "train",
    "monitor",
)  # fmt: skip

CONTEXT_CLASSES: tuple[str, ...] = (
    "background",
    "airplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food",
    "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse",
    "person", "plate", "platform", "plant", "road", "rock", "sheep", "shelves",
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

# mmseg's class names (PascalVOCDataset, PascalContextDataset(59)) -> the official spellings above.
DATASET_CLASS_RENAMES: dict[str, dict[str, str]] = {
    "voc": {"diningtable": "table", "pottedplant": "plant", "tvmonitor": "monitor"},
    "context": {"aeroplane": "airplane", "pottedplant": "plant", "tvmonitor": "monitor"},
    "coco_object": {},
}

# Background threshold of the paper's evaluation for each benchmark.
DATASET_BG_THRESH: dict[str, float] = {"voc": 0.95, "context": 0.35, "coco_object": 0.95}


def get_class_names(dataset: str) -> tuple[str, ...]:
    """Class names of ``dataset`` ("voc", "context", "coco_object"), background first."""
    try:
        return DATASET_CLASSES[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(DATASET_CLASSES)}") from None

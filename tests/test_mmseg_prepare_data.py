"""tools/prepare_data: COCO-Object label maps from instance annotations, PASCAL Context 60-class maps."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from groupvit.class_names import COCO_OBJECT_CLASSES, CONTEXT_CLASSES, DATASET_CLASS_RENAMES

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "prepare_data"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"prepare_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coco_object = _load("coco_object")
pascal_context = _load("pascal_context")


def _encode_rle_string(counts: list[int]) -> str:
    """COCO's compressed RLE string (the inverse of the converter's decoder), written for the test."""
    out = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            char = value & 0x1F
            value >>= 5
            more = value != -1 if char & 0x10 else value != 0
            out.append(chr(48 + (char | 0x20 if more else char)))
    return "".join(out)


def _column_major_runs(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1).astype(np.uint8)
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return runs


def test_rle_decoding_round_trip() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((7, 9)) > 0.6
    runs = _column_major_runs(mask)
    assert coco_object.rle_counts(_encode_rle_string(runs)) == runs
    assert np.array_equal(coco_object.rle_to_mask({"size": [7, 9], "counts": runs}), mask)
    assert np.array_equal(coco_object.rle_to_mask({"size": [7, 9], "counts": _encode_rle_string(runs)}), mask)


def _tiny_coco(tmp_path: Path) -> Path:
    """Two images: a person polygon over a large car box, a crowd RLE of dogs; one image without objects."""
    crowd = np.zeros((8, 10), dtype=bool)
    crowd[2:5, 6:9] = True
    annotation = {
        "images": [
            {"id": 1, "file_name": "000000000001.jpg", "height": 8, "width": 10},
            {"id": 2, "file_name": "000000000002.jpg", "height": 8, "width": 10},
            {"id": 3, "file_name": "000000000003.jpg", "height": 8, "width": 10},
        ],
        "categories": [
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
            {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
        ],
        "annotations": [
            # the small person is listed first but painted last (largest first): it stays on top
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 4.0,
             "segmentation": [[2, 2, 3, 2, 3, 3, 2, 3]]},
            {"id": 11, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 30.0,
             "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]},
            {"id": 12, "image_id": 2, "category_id": 18, "iscrowd": 1, "area": 9.0,
             "segmentation": {"size": [8, 10], "counts": _column_major_runs(crowd)}},
            {"id": 13, "image_id": 2, "category_id": 90, "iscrowd": 0, "area": 1.0,
             "segmentation": {"size": [8, 10], "counts": _encode_rle_string(_column_major_runs(
                 np.pad(np.ones((1, 1), dtype=bool), ((0, 7), (0, 9)))))}},
        ],
    }  # fmt: skip
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(annotation))
    return path


def test_coco_object_converter_on_hand_made_annotations(tmp_path: Path) -> None:
    _tiny_coco(tmp_path)
    assert coco_object.main([str(tmp_path)]) == 0
    out = tmp_path / "annotations" / "val2017"
    assert sorted(p.name for p in out.iterdir()) == [
        f"00000000000{i}_instanceTrainIds.png" for i in (1, 2, 3)
    ]

    person, car, dog, toothbrush = (
        COCO_OBJECT_CLASSES.index(n) for n in ("person", "car", "dog", "toothbrush")
    )
    assert (person, car, dog, toothbrush) == (1, 3, 17, 80)

    first = np.array(Image.open(out / "000000000001_instanceTrainIds.png"))
    assert first.shape == (8, 10) and first.dtype == np.uint8
    expected = np.zeros((8, 10), dtype=np.uint8)
    expected[1:7, 1:7] = car  # PIL fills the polygon including its outline
    expected[2:4, 2:4] = person
    assert np.array_equal(first, expected)

    second = np.array(Image.open(out / "000000000002_instanceTrainIds.png"))
    expected = np.zeros((8, 10), dtype=np.uint8)
    expected[2:5, 6:9] = dog
    expected[0, 0] = toothbrush
    assert np.array_equal(second, expected)

    assert not np.array(Image.open(out / "000000000003_instanceTrainIds.png")).any()


def test_coco_object_converter_errors(tmp_path: Path) -> None:
    assert coco_object.main([str(tmp_path)]) == 2  # no annotation file
    with pytest.raises(ValueError, match="not among the 80 COCO-Object classes"):
        coco_object.category_labels([{"id": 1, "name": "unicorn"}], COCO_OBJECT_CLASSES)


def test_pascal_context_table_and_conversion(tmp_path: Path) -> None:
    names = [name for name, _ in pascal_context.CONTEXT59_IDS]
    renamed = [DATASET_CLASS_RENAMES["context"].get(n, n) for n in names]
    assert ["background", *renamed] == list(CONTEXT_CLASSES)
    ids = [full_id for _, full_id in pascal_context.CONTEXT59_IDS]
    assert ids == sorted(ids) and len(set(ids)) == 59  # alphabetical names <-> increasing ids

    scipy_io = pytest.importorskip("scipy.io")
    voc = tmp_path / "VOC2010"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("2008_000001\n2008_000003\n")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n2008_000009\n")  # 9 has no .mat
    mats = tmp_path / "context" / "trainval"
    mats.mkdir(parents=True)
    full = np.array([[2, 9, 1], [427, 458, 0], [397, 300, 284]], dtype=np.uint16)  # 1, 300: not among the 59
    for name in ("2008_000001", "2008_000002", "2008_000003"):
        scipy_io.savemat(mats / f"{name}.mat", {"LabelMap": full})
    lines = {full_id: name for name, full_id in pascal_context.CONTEXT59_IDS}
    (tmp_path / "context" / "labels.txt").write_text(
        "".join(f"{i}: {lines.get(i, f'other{i}')}\n" for i in range(1, 460))
    )

    assert pascal_context.main([str(voc), str(mats)]) == 0
    out = np.array(Image.open(voc / "SegmentationClassContext" / "2008_000002.png"))
    label = CONTEXT_CLASSES.index
    expected = [
        [label("airplane"), label("bag"), 0],
        [label("monitor"), label("wood"), 0],
        [label("table"), 0, label("person")],
    ]
    assert out.tolist() == expected
    split = voc / "ImageSets" / "SegmentationContext"
    assert (split / "train.txt").read_text().split() == ["2008_000001", "2008_000003"]
    assert (split / "val.txt").read_text().split() == ["2008_000002"]

    (tmp_path / "context" / "labels.txt").write_text("1: accordion\n2: zebra\n")
    with pytest.raises(ValueError, match="does not match the 59-class id table"):
        pascal_context.main([str(voc), str(mats)])

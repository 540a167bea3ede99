"""tools/prepare_data: COCO-Object label maps from instance annotations, PASCAL Context 60-class maps."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from groupvit.class_names import COCO_OBJECT_CLASSES, CONTEXT_CLASSES, DATASET_CLASS_RENAMES
from groupvit.errors import InputError

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "prepare_data"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"prepare_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coco_object = _load("coco_object")
pascal_context = _load("pascal_context")


def _compressed_rle(mask: np.ndarray) -> dict:
    """COCO's compressed RLE of a bool mask [h, w], as the annotation files store it (str counts)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(n) for n in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _column_major_runs(mask: np.ndarray) -> list[int]:
    """Uncompressed RLE counts (crowd annotations): alternating 0/1 runs over the column-major mask."""
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


def _random_annotations(rng: np.random.Generator, height: int, width: int) -> list[dict]:
    """Polygons (one to three parts, some off the image), crowd RLEs and compressed RLEs, all categories 1..3."""
    anns = []
    for i in range(30):
        kind = i % 3
        if kind == 0:
            parts = [
                rng.uniform([-3, -3], [width + 3, height + 3], size=(int(rng.integers(3, 8)), 2))
                .ravel()
                .tolist()
                for _ in range(int(rng.integers(1, 4)))
            ]
            segmentation, crowd = parts, 0
        else:
            blob = np.zeros((height, width), dtype=bool)
            y, x = rng.integers(0, height - 2), rng.integers(0, width - 2)
            blob[y : y + int(rng.integers(2, 9)), x : x + int(rng.integers(2, 9))] = True
            blob &= rng.random((height, width)) > 0.2
            if kind == 1:
                segmentation, crowd = {"size": [height, width], "counts": _column_major_runs(blob)}, 1
            else:
                segmentation, crowd = _compressed_rle(blob), 0
        anns.append({"id": 100 + i, "image_id": 1 + i // 6, "category_id": 1 + i % 3, "iscrowd": crowd,
                     "area": float(rng.uniform(1, 50)), "segmentation": segmentation})  # fmt: skip
    return anns


def test_masks_equal_pycocotools_annToMask(tmp_path: Path) -> None:
    """Every generated polygon / RLE gives COCO API's annToMask mask; label maps paint them largest first."""
    coco_module = pytest.importorskip("pycocotools.coco")
    rng = np.random.default_rng(0)
    height, width = 13, 17
    annotation = {
        "images": [
            {"id": i, "file_name": f"{i:012d}.jpg", "height": height, "width": width} for i in range(1, 6)
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 3, "name": "car"}],
        "annotations": _random_annotations(rng, height, width),
    }
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(annotation))
    api = coco_module.COCO(str(path))
    kinds = {"several parts": 0, "crowd": 0, "compressed": 0}
    for ann in annotation["annotations"]:
        ours = coco_object.annotation_mask(ann["segmentation"], height, width)
        reference = api.annToMask(api.anns[ann["id"]]).astype(bool)
        assert ours.shape == (height, width) and np.array_equal(ours, reference), ann["id"]
        kinds["several parts"] += isinstance(ann["segmentation"], list) and len(ann["segmentation"]) > 1
        kinds["crowd"] += ann["iscrowd"] == 1
        kinds["compressed"] += isinstance(ann["segmentation"], dict) and isinstance(
            ann["segmentation"]["counts"], str
        )
    assert (
        min(kinds.values()) >= 3 and sum(m.any() for m in (api.annToMask(a) for a in api.anns.values())) >= 25
    )

    assert coco_object.main([str(tmp_path)]) == 0
    for image in annotation["images"]:
        expected = np.zeros((height, width), dtype=np.uint8)
        anns = sorted(api.imgToAnns[image["id"]], key=lambda a: -a["area"])
        for ann in anns:
            expected[api.annToMask(ann).astype(bool)] = ann["category_id"]  # person 1, bicycle 2, car 3
        written = np.array(
            Image.open(tmp_path / "annotations" / "val2017" / f"{image['id']:012d}_instanceTrainIds.png")
        )
        assert np.array_equal(written, expected), image["id"]


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
             "segmentation": _compressed_rle(np.pad(np.ones((1, 1), dtype=bool), ((0, 7), (0, 9))))},
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
    expected[1:6, 1:6] = car  # COCO's rasteriser: the pixels whose centres the square's edges enclose
    expected[2, 2] = person
    assert np.array_equal(first, expected)

    second = np.array(Image.open(out / "000000000002_instanceTrainIds.png"))
    expected = np.zeros((8, 10), dtype=np.uint8)
    expected[2:5, 6:9] = dog
    expected[0, 0] = toothbrush
    assert np.array_equal(second, expected)

    assert not np.array(Image.open(out / "000000000003_instanceTrainIds.png")).any()


def test_coco_object_converter_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert coco_object.main([str(tmp_path)]) == 2  # no annotation file
    missing = tmp_path / "annotations" / "instances_val2017.json"
    assert capsys.readouterr().err.startswith(f"coco_object.py: error: {missing} not found; unpack")
    with pytest.raises(InputError, match="not among the 80 COCO-Object classes"):
        coco_object.category_labels([{"id": 1, "name": "unicorn"}], COCO_OBJECT_CLASSES)


def _broken(annotation: dict, drop: str | None = None, **changes) -> str:
    broken = {key: value for key, value in annotation.items() if key != drop}
    return json.dumps({**broken, **changes})


@pytest.mark.parametrize(
    "case, message",
    [
        ("truncated", "is not valid JSON: Expecting value: line 1 column 13 (char 12)"),
        ("list", "holds a JSON list, not a COCO annotation object"),
        ("no categories", "has no 'categories' list (not COCO instances)"),
        ("no annotations", "has no 'annotations' list (not COCO instances)"),
        ("no image_id", ": an entry lacks the field 'image_id'"),
        ("unknown category", ": annotation 10 has category 7, not in 'categories'"),
        ("unicorn", ": categories not among the 80 COCO-Object classes: ['unicorn']"),
        ("bad polygon size", ": image 1: annotation 10 has size (3, 3), image 1 (8, 10)"),
        ("bad rle counts", ": image 1: annotation 10: Invalid RLE mask representation"),
    ],
)
def test_coco_object_bad_annotation_file(
    case: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _tiny_coco(tmp_path)
    good = json.loads(path.read_text())
    first = {**good["annotations"][0]}
    text = {
        "truncated": '{"images": [',
        "list": json.dumps([good]),
        "no categories": _broken(good, "categories"),
        "no annotations": _broken(good, "annotations"),
        "no image_id": _broken(good, annotations=[{k: v for k, v in first.items() if k != "image_id"}]),
        "unknown category": _broken(good, annotations=[{**first, "category_id": 7}]),
        "unicorn": _broken(good, categories=[{"id": 1, "name": "unicorn"}]),
        "bad polygon size": _broken(
            good, annotations=[{**first, "segmentation": {"size": [3, 3], "counts": [9]}}]
        ),
        "bad rle counts": _broken(
            good, annotations=[{**first, "segmentation": {"size": [8, 10], "counts": [5, 100]}}]
        ),
    }[case]
    path.write_text(text)
    assert coco_object.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"coco_object.py: error: {path}{'' if message.startswith(':') else ' '}{message}\n"
    out = tmp_path / "annotations" / "val2017"
    if not case.startswith("bad "):  # the file is checked before anything is written
        assert not out.exists()


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
    assert pascal_context.main([str(voc), str(mats)]) == 2


def _voc_splits(tmp_path: Path) -> Path:
    voc = tmp_path / "VOC2010"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("2008_000001\n")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n")
    return voc


def test_pascal_context_writes_nothing_without_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    voc = _voc_splits(tmp_path)
    split = voc / "ImageSets" / "SegmentationContext"
    split.mkdir(parents=True)
    (split / "val.txt").write_text("2008_000002\n")  # an earlier run's split file stays as it was
    mats = tmp_path / "trainval"
    mats.mkdir()
    assert pascal_context.main([str(voc), str(mats)]) == 2
    assert (
        capsys.readouterr().err
        == f"pascal_context.py: error: no PASCAL Context annotations (*.mat) in {mats}\n"
    )
    (mats / "2010_009999.mat").write_bytes(b"")  # an annotation of no split image
    assert pascal_context.main([str(voc), str(mats)]) == 2
    assert capsys.readouterr().err == (
        f"pascal_context.py: error: none of the 1 annotations in {mats} is named like an image of "
        f"{voc / 'ImageSets' / 'Main'}/{{train,val}}.txt\n"
    )
    assert not (voc / "SegmentationClassContext").exists()
    assert (
        sorted(p.name for p in split.iterdir()) == ["val.txt"]
        and (split / "val.txt").read_text() == "2008_000002\n"
    )


def test_pascal_context_names_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    voc = _voc_splits(tmp_path)
    mats = tmp_path / "trainval"
    assert pascal_context.main([str(voc), str(mats)]) == 2
    assert capsys.readouterr().err == (
        f"pascal_context.py: error: {mats} is not a folder (the PASCAL Context annotations)\n"
    )
    mats.mkdir()
    assert pascal_context.main([str(tmp_path), str(mats)]) == 2
    train = tmp_path / "ImageSets" / "Main" / "train.txt"
    assert (
        capsys.readouterr().err == f"pascal_context.py: error: {train} not found (the VOC2010 train split)\n"
    )
    assert pascal_context.main([str(voc), str(mats), "--labels", str(tmp_path / "labels.txt")]) == 2
    assert (
        capsys.readouterr().err
        == f"pascal_context.py: error: --labels {tmp_path / 'labels.txt'}: not a file\n"
    )
    (mats / "2008_000001.mat").write_text("not a mat file")
    assert pascal_context.main([str(voc), str(mats)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"pascal_context.py: error: cannot read {mats / '2008_000001.mat'}: ")
        and err.count("\n") == 1
    )
    scipy_io = pytest.importorskip("scipy.io")
    mat = mats / "2008_000001.mat"
    scipy_io.savemat(mat, {"Segmentation": np.zeros((2, 2), dtype=np.uint16)})
    assert pascal_context.main([str(voc), str(mats)]) == 2
    assert capsys.readouterr().err == (
        f"pascal_context.py: error: {mat} holds no 'LabelMap' (not a PASCAL Context annotation)\n"
    )
    scipy_io.savemat(mat, {"LabelMap": np.full((2, 2), 600, dtype=np.uint16)})
    assert pascal_context.main([str(voc), str(mats)]) == 2
    assert capsys.readouterr().err == f"pascal_context.py: error: {mat}: label ids outside 0..459: 600..600\n"

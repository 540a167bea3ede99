"""Synthetic scenes and tools/make_synthetic_data.py: layout, labels, captions, determinism."""

import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from groupvit.data import ImageTextFolder, build_webdataset, extract_nouns
from groupvit.data.synthetic import CATEGORIES, CATEGORY_SPECS, CLASSES, render_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_synthetic_data  # noqa: E402


def _words(caption: str) -> list[str]:
    return caption.lower().replace(",", " ").replace(".", " ").replace("!", " ").split()


def test_categories() -> None:
    assert len(CATEGORIES) >= 8 and len(set(CATEGORIES)) == len(CATEGORIES)
    assert CLASSES[0] == "background" and CLASSES[1:] == CATEGORIES
    hues = [Image.new("RGB", (1, 1), c.color).convert("HSV").getpixel((0, 0))[0] for c in CATEGORY_SPECS]
    # every category has its own hue (at least 1/16 of the colour wheel apart)
    gaps = np.diff(sorted(hues + [hues[0] + 256 if min(hues) == hues[0] else min(hues) + 256]))
    assert gaps.min() >= 16, sorted(hues)


def test_render_scene_deterministic_and_consistent() -> None:
    sizes = []
    for seed in range(60):
        image, mask, caption = render_scene(np.random.default_rng(seed), 64)
        again = render_scene(np.random.default_rng(seed), 64)
        assert np.array_equal(np.asarray(image), np.asarray(again[0])) and caption == again[2]
        assert image.size == (64, 64) and image.mode == "RGB"
        assert mask.shape == (64, 64) and mask.dtype == np.uint8 and mask.max() <= len(CATEGORIES)
        labels = set(np.unique(mask)) - {0}
        assert 1 <= len(labels) <= 3
        words = _words(caption)
        for label in labels:  # every visible object is named in the caption
            spec = CATEGORY_SPECS[label - 1]
            assert spec.name in words or spec.plural in words, caption
        named = {c.name for c in CATEGORY_SPECS if c.name in words or c.plural in words}
        assert named == {CATEGORIES[i - 1] for i in labels}, caption
        sizes += [np.sqrt((mask == label).sum()) / 64 for label in labels]
    # objects are large enough to span several 8-px patches
    assert np.median(sizes) > 0.2 and min(sizes) > 0.05


@pytest.mark.nltk_data
def test_captions_need_noun_extraction() -> None:
    rng = np.random.default_rng(0)
    captions = [render_scene(rng, 32)[2] for _ in range(200)]
    assert len(set(captions)) > 150
    mentions = found = 0
    for caption in captions:
        words, nouns = set(_words(caption)), set(extract_nouns(caption))
        for spec in CATEGORY_SPECS:
            if {spec.name, spec.plural} & words:
                mentions += 1
                found += bool({spec.name, spec.plural} & nouns)
    assert found / mentions > 0.9  # NLTK tags the class names as nouns (mostly)
    assert any(set(extract_nouns(c)) - set(CATEGORIES) for c in captions)  # and other nouns too


def test_make_synthetic_data(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    assert (
        make_synthetic_data.main(
            [
                "--out",
                str(out),
                "--num-train",
                "23",
                "--num-val",
                "4",
                "--size",
                "48",
                "--shard-size",
                "10",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["classes"] == list(CLASSES) and len(meta["palette"]) == len(CLASSES)
    assert meta["train_shards"].endswith("synthetic-{000000..000002}.tar")
    assert (out / "val" / "classes.txt").read_text().split() == list(CLASSES)
    # folder formats
    lines = (out / "train" / "captions.jsonl").read_text().splitlines()
    assert len(lines) == 23 and (out / "train" / json.loads(lines[0])["image"]).is_file()
    for index in ("captions.jsonl", "captions.csv"):
        ds = ImageTextFolder(out / "train", index=index)
        assert len(ds) == 23 and ds[5]["image"].size == (48, 48) and ds[5]["skipped"] == 0
    # shards in img2dataset layout, same pairs
    with tarfile.open(out / "train_shards" / "synthetic-000002.tar") as tar:
        assert tar.getnames() == [f"0000000{k}.{e}" for k in (20, 21, 22) for e in ("jpg", "txt", "json")]
    shard_captions = sorted(s["text"] for s in build_webdataset(meta["train_shards"], shuffle=0))
    assert shard_captions == sorted(json.loads(line)["caption"] for line in lines)
    # mmseg val layout: same names in img_dir and ann_dir, labels 0..K
    images = sorted(p.name for p in (out / "val" / "img_dir" / "val").iterdir())
    assert images == sorted(p.name for p in (out / "val" / "ann_dir" / "val").iterdir()) and len(images) == 4
    ann = Image.open(out / "val" / "ann_dir" / "val" / images[0])
    assert ann.mode == "L" and ann.size == (48, 48) and np.asarray(ann).max() <= len(CATEGORIES)
    # deterministic by seed, independent of --workers
    out2 = tmp_path / "syn2"
    make_synthetic_data.main(
        [
            "--out",
            str(out2),
            "--num-train",
            "3",
            "--num-val",
            "1",
            "--size",
            "48",
            "--seed",
            "3",
            "--workers",
            "2",
        ]
    )
    first = (out / "train" / "images" / "000000002.jpg").read_bytes()
    assert first == (out2 / "train" / "images" / "000000002.jpg").read_bytes()


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--num-train", "-5", "argument --num-train: must be at least 0, got -5"),
        ("--num-val", "-1", "argument --num-val: must be at least 0, got -1"),
        ("--size", "-64", "argument --size: must be at least 16, got -64"),
        ("--size", "8", "argument --size: must be at least 16, got 8"),
        ("--shard-size", "0", "argument --shard-size: must be at least 1, got 0"),
        ("--workers", "0", "argument --workers: must be at least 1, got 0"),
        ("--seed", "-1", "argument --seed: must be at least 0, got -1"),
        ("--num-val", "ten", "argument --num-val: not an integer: 'ten'"),
    ],
)
def test_make_synthetic_data_refuses_bad_numbers(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "syn"
    with pytest.raises(SystemExit) as exit_info:
        make_synthetic_data.main(["--out", str(out), "--num-train", "2", "--num-val", "1", flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(f"make_synthetic_data.py: error: {message}\n") and "Traceback" not in err
    assert not out.exists()


def test_make_synthetic_data_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "syn"
    out.write_text("keep me")
    with pytest.raises(SystemExit):
        make_synthetic_data.main(["--out", str(out), "--num-train", "2", "--num-val", "1"])
    assert f"make_synthetic_data.py: error: --out {out} is a file, not a folder\n" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_make_synthetic_data_val_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "syn"  # what `make demo` writes: no training pairs
    assert make_synthetic_data.main(["--out", str(out), "--num-train", "0", "--num-val", "2"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["train_shards"] is None and not any((out / "train_shards").iterdir())
    assert len(list((out / "val" / "img_dir" / "val").iterdir())) == 2
    assert "shards: none" in capsys.readouterr().out


def test_make_synthetic_data_smallest_values(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    argv = ["--out", str(out), "--num-train", "1", "--num-val", "0", "--size", "16", "--shard-size", "1"]
    assert make_synthetic_data.main(argv) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["train_shards"].endswith("synthetic-{000000..000000}.tar") and meta["num_val"] == 0
    assert [p.name for p in (out / "train_shards").iterdir()] == ["synthetic-000000.tar"]
    assert not any((out / "val" / "img_dir" / "val").iterdir())
    with Image.open(out / "train" / "images" / "000000000.jpg") as image:
        assert image.size == (16, 16)


@pytest.mark.parametrize("size", [32, 96])
def test_render_sizes(size: int) -> None:
    image, mask, _ = render_scene(np.random.default_rng(1), size)
    assert image.size == (size, size) and mask.shape == (size, size)


def test_colour_cues_unchanged(tmp_path: Path) -> None:
    """--cues colour (the default) draws exactly the scenes of the generator before --cues existed."""
    import hashlib

    out = tmp_path / "syn"
    assert (
        make_synthetic_data.main(["--out", str(out), "--num-train", "5", "--num-val", "3", "--seed", "5"])
        == 0
    )
    pixels = hashlib.sha256()
    for i in range(3):
        for folder in ("img_dir", "ann_dir"):
            pixels.update(np.asarray(Image.open(out / "val" / folder / "val" / f"{i:06d}.png")).tobytes())
    # pinned from the generator at d988b15, which had no --cues
    assert pixels.hexdigest() == "ed21cad0b29305da49b88f84d7a2ba052d9f9c5d47abe46bbcf8e3aba6bdc84b"
    grounding = (out / "val" / "grounding.jsonl").read_text(encoding="utf-8")
    assert hashlib.sha256(grounding.encode()).hexdigest() == (
        "7967b6a77b3d57d84071c82a5b97a1a793edc402cceab24fae2e814c23d3f936"
    )
    captions = (out / "train" / "captions.jsonl").read_text(encoding="utf-8")
    assert hashlib.sha256(captions.encode()).hexdigest() == (
        "a10c31cade75a8f4fa92a2bbad308a6cbbe6dfbb04d4078012d52935f2f7627d"
    )
    assert "cues" not in json.loads((out / "meta.json").read_text())

"""Image-text datasets: corrupt samples are skipped and counted (as samples); sources without a file or
without a single usable sample stop with an error; the shard stream is a function of the seed."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from groupvit.data import ImageTextFolder, build_webdataset, read_index
from groupvit.errors import InputError


def _image_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def _write_shard(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _good(key: str, seed: int, ext: str = "jpg") -> list[tuple[str, bytes]]:
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[ext]
    return [(f"{key}.{ext}", _image_bytes(seed, fmt)), (f"{key}.txt", f"caption {key}".encode())]


@pytest.fixture
def shards(tmp_path: Path) -> tuple[str, set[str], int]:
    """Four shards with 12 good samples and 6 unusable ones (plus one missing shard)."""
    jpg = _image_bytes(99)
    _write_shard(
        tmp_path / "mix-000.tar",
        _good("a0", 0)
        + [("a1.jpg", b"not an image at all"), ("a1.txt", b"caption a1")]  # garbage bytes
        + _good("a2", 2)
        + [("a3.jpg", jpg[: len(jpg) // 2]), ("a3.txt", b"caption a3")]  # truncated JPEG
        + _good("a4", 4)
        + [("a5.txt", b"caption without image")]  # no image member
        + _good("a6", 6),
    )
    _write_shard(
        tmp_path / "mix-001.tar",
        _good("b0", 10, "png")
        + [("b1.png", _image_bytes(11, "JPEG")[:40]), ("b1.txt", b"caption b1")]  # broken header
        + _good("b2", 12, "webp")
        + [("b3.jpg", _image_bytes(13)), ("b3.json", b"{}")]  # no caption
        + _good("b4", 14),
    )
    # a shard cut short inside c24's image: c20..c23 survive, c24 counts 1 (c25, c26 are never seen)
    _write_shard(tmp_path / "mix-002.tar", [m for i in range(20, 27) for m in _good(f"c{i}", i)])
    with tarfile.open(tmp_path / "mix-002.tar") as tar:
        cut = tar.getmember("c24.jpg").offset_data + 100
    data = (tmp_path / "mix-002.tar").read_bytes()
    (tmp_path / "mix-002.tar").write_bytes(data[:cut])
    # mix-003.tar is missing: left out with a warning when the dataset is built (no sample, no count)
    _write_shard(tmp_path / "mix-004.tar", _good("d0", 30))
    good = {f"caption {k}" for k in ("a0", "a2", "a4", "a6", "b0", "b2", "b4", "d0")}
    good |= {f"caption c{i}" for i in range(20, 24)}
    # 5 bad samples + the sample the cut shard broke in
    return str(tmp_path / "mix-{000..004}.tar"), good, 6


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def _collect(dataset) -> tuple[list[str], int]:
    captions, skipped = [], 0
    for sample in dataset:
        captions.append(sample["text"])
        skipped += sample["skipped"]
    return captions, skipped


def test_webdataset_skips_and_counts(shards, caplog) -> None:
    pattern, good, num_bad = shards
    caplog.set_level("WARNING", logger="groupvit.data.skips")
    captions, skipped = _collect(build_webdataset(pattern, shuffle=0))
    assert sorted(captions) == sorted(good)
    assert skipped == num_bad
    assert "skipped corrupt sample #6: " in caplog.text and "mix-002.tar:c24: shard cut short" in caplog.text
    assert "1 of its 5 shards do not exist and are left out (first: " in caplog.text
    assert "mix-003.tar" in caplog.text


def test_webdataset_transforms_and_shuffle(shards) -> None:
    pattern, good, num_bad = shards
    dataset = build_webdataset(
        pattern,
        transform=_to_tensor,
        text_transform=lambda c: torch.full((4, 77), len(c)),
        shuffle=50,
    )
    samples = list(dataset)
    assert len(samples) == len(good)
    assert {tuple(s["image"].shape) for s in samples} == {(3, 24, 24)}
    assert samples[0]["text"].shape == (4, 77)
    assert sum(s["skipped"] for s in samples) == num_bad


def test_webdataset_split_across_workers(shards) -> None:
    pattern, good, num_bad = shards
    loader = DataLoader(build_webdataset(pattern, _to_tensor, shuffle=10), batch_size=3, num_workers=2)
    captions, skipped = [], 0
    for batch in loader:
        captions += batch["text"]
        skipped += int(batch["skipped"].sum())
    assert sorted(captions) == sorted(good)  # every sample exactly once over the workers
    assert skipped == num_bad


def test_webdataset_mixes_sources(shards, tmp_path: Path) -> None:
    pattern, good, num_bad = shards
    _write_shard(tmp_path / "other-0.tar", [m for i in range(5) for m in _good(f"o{i}", 50 + i)])
    sources = [pattern, str(tmp_path / "other-{0..0}.tar")]
    captions, skipped = _collect(build_webdataset(sources, shuffle=0, weights=[0.5, 0.5]))
    assert sorted(captions) == sorted(good | {f"caption o{i}" for i in range(5)})
    assert skipped == num_bad
    # resampled: an endless stream cut into epochs of a fixed size
    stream = build_webdataset(sources, shuffle=0, resampled=True, epoch_size=40)
    captions, _ = _collect(stream)
    assert len(captions) == 40 and set(captions) <= good | {f"caption o{i}" for i in range(5)}
    with pytest.raises(InputError, match="1 weights for 2 sources"):
        build_webdataset(sources, weights=[1.0])


def _write_folder(root: Path) -> list[tuple[str, str]]:
    (root / "imgs").mkdir(parents=True)
    pairs = []
    for i in range(5):
        rel = f"imgs/{i}.jpg"
        data = _image_bytes(i) if i not in (1, 4) else b"\x00garbage"
        (root / rel).write_bytes(data)
        pairs.append((rel, f"a photo, number {i}"))
    pairs.append(("imgs/missing.jpg", "no such file"))
    with open(root / "captions.jsonl", "w") as f:
        for rel, cap in pairs:
            f.write(json.dumps({"image": rel, "caption": cap}) + "\n")
    import csv

    with open(root / "captions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "title"])
        writer.writerows(pairs)
    return pairs


@pytest.mark.parametrize("index", ["captions.jsonl", "captions.csv"])
def test_folder_dataset_skips_corrupt(tmp_path: Path, index: str) -> None:
    pairs = _write_folder(tmp_path)
    assert read_index(tmp_path / index) == (pairs, {})  # CSV header dropped, quoted commas kept
    ds = ImageTextFolder(tmp_path, index=index, text_transform=lambda c: torch.zeros(4, 77, dtype=torch.long))
    assert len(ds) == 6
    sample = ds[0]
    assert sample["image"].size == (24, 24) and sample["text"].shape == (4, 77) and sample["skipped"] == 0
    assert ds[1]["skipped"] == 1  # corrupt -> index 2
    assert ds[4]["skipped"] == 2  # corrupt, missing, wrap to index 0
    plain = ImageTextFolder(tmp_path, index=index)
    assert plain[1]["text"] == "a photo, number 2"
    loader = DataLoader(
        ImageTextFolder(tmp_path, index=index, transform=lambda im: torch.zeros(3, 8, 8)), batch_size=6
    )
    batch = next(iter(loader))
    assert batch["image"].shape == (6, 3, 8, 8) and int(batch["skipped"].sum()) == 1 + 2 + 1


def test_folder_dataset_all_corrupt(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"bad")
    (tmp_path / "captions.jsonl").write_text(json.dumps({"image": "x.jpg", "caption": "c"}) + "\n")
    with pytest.raises(InputError, match="all 1 samples are corrupt"):
        ImageTextFolder(tmp_path)[0]


def _numbered_shards(folder: Path, num_shards: int, per_shard: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(num_shards):
        _write_shard(folder / f"n-{s}.tar", [m for i in range(per_shard) for m in _good(f"s{s}k{i}", i)])
    return str(folder / f"n-{{0..{num_shards - 1}}}.tar")


def _captions(dataset, n: int) -> list[str]:
    return [sample["text"] for _, sample in zip(range(n), dataset)]


def test_resampled_stream_is_a_function_of_seed_rank_and_pass(tmp_path: Path, monkeypatch) -> None:
    pattern = _numbered_shards(tmp_path, num_shards=6, per_shard=5)

    def build(seed: int):
        return build_webdataset(pattern, shuffle=8, resampled=True, epoch_size=40, seed=seed)

    first = _captions(build(3), 40)
    assert first == _captions(build(3), 40)  # the same seed: the same samples in the same order
    assert len(set(first)) > 15
    assert first != _captions(build(4), 40)
    dataset = build(3)
    assert _captions(dataset, 40) == first and _captions(dataset, 40) != first  # the next pass differs
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert _captions(build(3), 40) != first  # another rank draws other shards


def test_stream_through_workers_is_reproducible(tmp_path: Path) -> None:
    pattern = _numbered_shards(tmp_path, num_shards=4, per_shard=5)

    def run() -> list[str]:
        dataset = build_webdataset(pattern, _to_tensor, shuffle=8, resampled=True, epoch_size=12, seed=0)
        loader = DataLoader(dataset, batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(5))
        return [caption for batch in loader for caption in batch["text"]]

    captions = run()
    assert len(captions) == 24 and captions == run()
    assert captions[:12:4] != captions[1:12:4]  # the two workers interleave different streams


def test_finite_pass_shuffles_shard_order_by_seed(tmp_path: Path) -> None:
    pattern = _numbered_shards(tmp_path, num_shards=6, per_shard=2)
    orders = [_captions(build_webdataset(pattern, shuffle=4, seed=seed), 12) for seed in (0, 0, 1)]
    assert orders[0] == orders[1] != orders[2]
    assert sorted(orders[0]) == sorted(orders[2])  # every sample once per pass


@pytest.mark.parametrize("resampled", [True, False])
def test_source_matching_no_file_is_named_when_built(tmp_path: Path, resampled: bool) -> None:
    pattern = str(tmp_path / "cc3m-{00000..00331}.tar")
    with pytest.raises(
        InputError, match=r"shard source '.*cc3m-\{00000\.\.00331\}\.tar' matches no file: none of"
    ):
        build_webdataset([pattern], resampled=resampled)
    with pytest.raises(InputError, match="no shard sources given"):
        build_webdataset([], resampled=resampled)


def _bad_shards(folder: Path) -> str:
    """Three shards, not one usable sample: garbage images, a non-tar file, a caption-less sample."""
    folder.mkdir()
    _write_shard(
        folder / "bad-0.tar", [("k0.jpg", b"junk"), ("k0.txt", b"a"), ("k1.jpg", b"junk"), ("k1.txt", b"b")]
    )
    (folder / "bad-1.tar").write_bytes(b"this is no tar file")
    _write_shard(folder / "bad-2.tar", [("k2.jpg", _image_bytes(2))])
    return str(folder / "bad-{0..2}.tar")


@pytest.mark.parametrize("resampled", [True, False])
def test_source_without_a_usable_sample_stops(tmp_path: Path, resampled: bool, caplog) -> None:
    pattern = _bad_shards(tmp_path / "bad")
    with pytest.raises(
        InputError, match=r"bad-\{0\.\.2\}\.tar': all 3 shards were read and none gave a usable"
    ):
        next(iter(build_webdataset(pattern, shuffle=100, resampled=resampled)))
    assert "skipped unreadable shard #1: " in caplog.text and "bad-1.tar: not a readable tar" in caplog.text


def test_mostly_bad_source_does_not_stop(tmp_path: Path) -> None:
    # one good sample among bad shards, held in a large shuffle buffer: no false alarm
    pattern = _bad_shards(tmp_path / "bad")
    _write_shard(tmp_path / "bad" / "bad-3.tar", _good("g", 7))
    stream = build_webdataset(str(tmp_path / "bad" / "bad-{0..3}.tar"), shuffle=1000, resampled=True)
    samples = [s for _, s in zip(range(5), stream)]
    assert [s["text"] for s in samples] == ["caption g"] * 5
    assert all(s["skipped"] >= 0 for s in samples) and sum(s["skipped"] for s in samples) > 0
    assert pattern.endswith("bad-{0..2}.tar")


def test_bad_captions_are_skipped_and_counted(tmp_path: Path) -> None:
    members = _good("a", 0) + [("b.jpg", _image_bytes(1)), ("b.txt", b"  \n")]  # empty caption
    members += [("c.jpg", _image_bytes(2)), ("c.txt", b"caf\xe9")] + _good("d", 3)  # Latin-1, not UTF-8
    _write_shard(tmp_path / "t-0.tar", members)
    captions, skipped = _collect(build_webdataset(str(tmp_path / "t-{0..0}.tar"), shuffle=0))
    assert captions == ["caption a", "caption d"] and skipped == 2

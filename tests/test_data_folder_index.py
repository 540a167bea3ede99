"""Caption indexes: every unusable line is named with its number in one warning, skipped and counted as a
skipped sample; an index with no usable line stops with an InputError."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from groupvit.data import ImageTextFolder, read_index
from groupvit.errors import InputError


def _images(root: Path, num: int) -> list[str]:
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    for i in range(num):
        Image.fromarray(np.full((8, 8, 3), 10 * i, dtype=np.uint8)).save(root / f"imgs/{i}.png")
    return [f"imgs/{i}.png" for i in range(num)]


def _jsonl(image: str, caption: str) -> bytes:
    return json.dumps({"image": image, "caption": caption}).encode() + b"\n"


def _bad_jsonl(root: Path) -> Path:
    paths = _images(root, 3)
    lines = [
        _jsonl(paths[0], "a red square"),
        b'{"image": "imgs/1.png", "caption": "cut off\n',  # 2: truncated line
        _jsonl(paths[1], "   "),  # 3: blank caption
        b"\n",  # 4: empty lines are not samples
        b'{"image": "imgs/1.png", "caption": "caf\xe9"}\n',  # 5: Latin-1
        b'{"img": "imgs/1.png", "caption": "wrong key"}\n',  # 6
        _jsonl(paths[2], "a grey square"),
        _jsonl("", "no image path"),  # 8
        b'["imgs/1.png", "a list"]\n',  # 9
    ]
    (root / "captions.jsonl").write_bytes(b"".join(lines))
    return root


def test_bad_jsonl_lines_are_named_skipped_and_counted(tmp_path: Path, caplog) -> None:
    root = _bad_jsonl(tmp_path)
    pairs, bad = read_index(root / "captions.jsonl")
    assert pairs == [("imgs/0.png", "a red square"), ("imgs/2.png", "a grey square")]
    assert bad == {
        2: "not valid JSON",
        3: "empty caption",
        5: "not UTF-8 (byte 0xe9 at column 40)",
        6: "not an object with 'image' and 'caption'",
        8: "empty or non-string image path",
        9: "not an object with 'image' and 'caption'",
    }
    dataset = ImageTextFolder(root)
    warnings = [r.getMessage() for r in caplog.records if r.name == "groupvit.data.folder"]
    assert warnings == [
        f"{root / 'captions.jsonl'}: skipped 6 of 8 lines; not valid JSON: line 2; empty caption: line 3; "
        "not UTF-8 (byte 0xe9 at column 40): line 5; not an object with 'image' and 'caption': lines 6, 9; "
        "empty or non-string image path: line 8"
    ]
    assert len(dataset) == 2
    assert [dataset[i]["skipped"] for i in (0, 1, 0)] == [6, 0, 6]  # once per pass, with sample 0
    batch = next(iter(DataLoader(ImageTextFolder(root, transform=lambda im: np.zeros(1)), batch_size=2)))
    assert int(batch["skipped"].sum()) == 6 and batch["text"] == ["a red square", "a grey square"]


def test_bad_csv_rows_are_skipped(tmp_path: Path) -> None:
    paths = _images(tmp_path, 2)
    rows = f'filepath,title\n{paths[0]},"a, quoted caption"\n{paths[1]},extra,column\n{paths[1]},\n'
    (tmp_path / "captions.csv").write_bytes(rows.encode() + f"{paths[1]},caf\xe9\n".encode("latin-1"))
    assert read_index(tmp_path / "captions.csv") == (
        [("imgs/0.png", "a, quoted caption")],
        {3: "expected 2 columns (image, caption), got 3", 4: "empty caption", 5: "not UTF-8"},
    )


def test_index_without_a_usable_line_stops(tmp_path: Path) -> None:
    (tmp_path / "captions.jsonl").write_bytes(b'{"image": "a.png"}\n\n{"image": "b.png", "caption": ""}\n')
    message = r"captions\.jsonl lists no usable sample \(.*skipped 2 of 2 lines; not an object .*: line 1; empty caption: line 3\)"
    with pytest.raises(InputError, match=message):
        ImageTextFolder(tmp_path)
    with pytest.raises(InputError, match="unknown index format 'captions.txt'"):
        read_index(tmp_path / "captions.txt")

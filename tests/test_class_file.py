"""Class files (groupvit.class_file): 'name: syn1, syn2' per line, one reader, one-line errors."""

from pathlib import Path

import pytest

from groupvit.class_file import ClassVocabulary, parse_class_lines, read_class_file
from groupvit.errors import InputError


def test_names_and_synonyms_in_label_order(tmp_path: Path) -> None:
    path = tmp_path / "voc.txt"
    path.write_text(
        "# VOC with synonyms\nbackground: sky, wall\n\naeroplane: airplane, plane\nbicycle\n"
        "diningtable: table, Table , dining table  # comment\ncat:\n",
        encoding="utf-8",
    )
    vocabulary = read_class_file(path)
    assert vocabulary == ClassVocabulary(
        ("background", "aeroplane", "bicycle", "diningtable", "cat"),
        (
            ("background", "sky", "wall"),
            ("aeroplane", "airplane", "plane"),
            ("bicycle",),
            ("diningtable", "table", "dining table"),  # "Table" repeats "table"
            ("cat",),
        ),
    )
    assert vocabulary.has_synonyms and not parse_class_lines(["a", "b"], "x").has_synonyms


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["cat", ": kitten"], r"^f.txt:2: no class name before ':' in ': kitten'$"),
        (["cat: a: b"], r"^f.txt:1: more than one ':' in 'cat: a: b'; write 'name: syn1, syn2'$"),
        (["cat: kitten,, kitty"], r"^f.txt:1: empty synonym in 'cat: kitten,, kitty' \(two commas"),
        (["cat: kitten,"], r"^f.txt:1: empty synonym"),
        (["cat", "dog", "Cat: kitten"], r"^f.txt:3: class 'Cat' is already on line 1; keep one$"),
        (["# only a comment", ""], r"^f.txt: no class names \(one per line: 'name' or 'name: syn1, syn2'\)$"),
    ],
)
def test_errors_name_the_file_and_line(lines: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_class_lines(lines, "f.txt")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^class file .*missing.txt does not exist$"):
        read_class_file(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.txt is not UTF-8 text$"):
        read_class_file(tmp_path / "latin1.txt")
    with pytest.raises(InputError, match=r"cannot be read: Is a directory$"):
        read_class_file(tmp_path)


def test_shipped_class_files_read() -> None:
    for path in sorted(Path("configs/class_names").glob("*.txt")):
        vocabulary = read_class_file(path)
        assert len(set(vocabulary.names)) == len(vocabulary.names), path

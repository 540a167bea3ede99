"""Class files: one class per line, ``name`` or ``name: synonym, synonym, ...``.

The convention of the mmseg 1.x open-vocabulary projects, with the label name before the colon:

    background: sky, wall, floor
    aeroplane: airplane, plane
    diningtable: table, dining table

Lines are in label order (line i is label i; blank lines and ``#`` comments are skipped). The
texts of a class are its name, then its synonyms; a name written ``name:`` with nothing after
has only itself. The one reader of these files (demo, mmseg configs, API).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from groupvit.errors import InputError

__all__ = ["ClassVocabulary", "parse_class_lines", "read_class_file"]


class ClassVocabulary(NamedTuple):
    names: tuple[str, ...]  # K label names, in label order
    synonyms: tuple[tuple[str, ...], ...]  # K tuples: the texts of each class, its name first

    @property
    def has_synonyms(self) -> bool:
        """Whether any class has a text besides its name."""
        return any(len(texts) > 1 for texts in self.synonyms)


def parse_class_lines(lines: list[str], source: str) -> ClassVocabulary:
    """Parse class-file lines; errors name ``source`` and the line number."""
    names: list[str] = []
    synonyms: list[tuple[str, ...]] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, colon, rest = (part.strip() for part in line.partition(":"))
        where = f"{source}:{number}"
        if not name:
            raise InputError(f"{where}: no class name before ':' in {raw.strip()!r}")
        if ":" in rest:
            raise InputError(f"{where}: more than one ':' in {raw.strip()!r}; write 'name: syn1, syn2'")
        extra = [word.strip() for word in rest.split(",")] if colon and rest else []
        if any(not word for word in extra):
            raise InputError(f"{where}: empty synonym in {raw.strip()!r} (two commas, or a trailing comma)")
        key = " ".join(name.lower().split())
        if key in first_line:
            raise InputError(f"{where}: class {name!r} is already on line {first_line[key]}; keep one")
        first_line[key] = number
        names.append(name)
        texts = [name]
        for word in extra:  # a synonym equal to the name (or repeated) would count twice in the mean
            if " ".join(word.lower().split()) not in {" ".join(t.lower().split()) for t in texts}:
                texts.append(word)
        synonyms.append(tuple(texts))
    if not names:
        raise InputError(f"{source}: no class names (one per line: 'name' or 'name: syn1, syn2')")
    return ClassVocabulary(tuple(names), tuple(synonyms))


def read_class_file(path: str | Path) -> ClassVocabulary:
    """Read a class file (UTF-8). A missing or unreadable file is an :class:`InputError` naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"class file {path} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"class file {path} is not UTF-8 text") from None
    except OSError as error:
        raise InputError(f"class file {path} cannot be read: {error.strerror}") from None
    return parse_class_lines(text.splitlines(), str(path))

"""Every console script of pyproject.toml points at a ``main`` of the package whose usage and error
lines carry the script's own name."""

import importlib
import re
from pathlib import Path

import pytest

# pyproject's [project.scripts] table, name = "module:function" per line (tomllib needs Python 3.11)
_TABLE = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text().split("[project.scripts]\n")[1]
SCRIPTS = dict(re.findall(r'^([\w-]+) = "([\w.]+:\w+)"$', _TABLE.split("\n[")[0], flags=re.M))


def test_the_tools_are_installed_commands() -> None:
    assert {"groupvit-demo", "groupvit-analyze", "groupvit-convert", "groupvit-ground"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_help_names_the_script(name: str, capsys: pytest.CaptureFixture) -> None:
    module, _, function = SCRIPTS[name].partition(":")
    main = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {name} ")

"""tools/measure_prompt_tuning.py: the run list, the class list read off the sets, and their errors."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import measure_prompt_tuning as tool  # noqa: E402


def test_parse_run_reads_kind_k_and_lr() -> None:
    assert tool.parse_run("context:all:0.003") == ("context", "all", 0.003)
    assert tool.parse_run("embedding:16:1e-2") == ("embedding", "16", 0.01)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("prefix:4:0.01", "KIND one of embedding, context, context_per_class"),
        ("embedding:4", "expected KIND:K:LR"),
        ("embedding:few:0.01", "K must be a number of images per class or 'all'"),
        ("context:4:fast", "LR must be a number"),
    ],
)
def test_parse_run_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        tool.parse_run(spec)


def test_read_classes_keeps_names_with_spaces(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("background\nred car\n\nstar\n", encoding="utf-8")
    assert tool.read_classes(tmp_path) == ["background", "red car", "star"]


def test_sets_of_different_classes_are_one_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, classes in (("val", "background\nstar\n"), ("pool", "background\nheart\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "classes.txt").write_text(classes, encoding="utf-8")
    argv = [
        "--val",
        str(tmp_path / "val"),
        "--pool",
        str(tmp_path / "pool"),
        "--json",
        str(tmp_path / "t.json"),
    ]
    assert tool.main(argv) == 2
    assert "have different classes.txt: tune on a set of the same classes" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_missing_class_list_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert tool.main(["--val", str(tmp_path), "--json", str(tmp_path / "t.json")]) == 2
    assert f"{tmp_path / 'classes.txt'}: missing" in capsys.readouterr().err


def test_override_reads_json_values() -> None:
    """--override is groupvit.cli.args.preset_override, shared with groupvit-demo / groupvit-analyze."""
    from groupvit.cli.args import preset_override

    assert tool.preset_override is preset_override
    assert preset_override("fusion.layers=2") == ("fusion.layers", 2)
    assert preset_override("vision.stem=conv") == ("vision.stem", "conv")
    assert preset_override("vision.num_group_tokens=[32]") == ("vision.num_group_tokens", [32])
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE, e.g. vision.num_group_tokens"):
        preset_override("fusion.layers")

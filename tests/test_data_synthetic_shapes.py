"""Shape-only synthetic scenes (--cues shape): the outline is the only cue to the category."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from groupvit.data import extract_nouns
from groupvit.data.synthetic_shapes import (
    COLOURS,
    SHAPE_CATEGORIES,
    SHAPE_CLASSES,
    _place,
    render_shape_scene,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_synthetic_data  # noqa: E402


def _scenes(num: int, size: int = 64):
    return [render_shape_scene(np.random.default_rng([7, i]), size) for i in range(num)]


def test_shape_classes() -> None:
    names = [c.name for c in SHAPE_CATEGORIES]
    assert len(names) == 8 and len(set(names)) == 8 and SHAPE_CLASSES == ("background", *names)


def test_outlines_differ_on_a_coarse_grid() -> None:
    # every pair of outlines differs by more than 7% of the area on a 4 x 4 grid (16-px cells of a
    # 64-px object, unrotated): the closest pair, star and diamond, by 7.2%
    u, v = np.meshgrid(np.linspace(-1, 1, 64), np.linspace(-1, 1, 64))
    coarse = [c.outline(u, v).reshape(4, 16, 4, 16).mean(axis=(1, 3)) for c in SHAPE_CATEGORIES]
    for i in range(8):
        for j in range(i + 1, 8):
            assert np.abs(coarse[i] - coarse[j]).mean() > 0.07, (SHAPE_CLASSES[i + 1], SHAPE_CLASSES[j + 1])


def test_scenes_consistent_and_deterministic() -> None:
    for scene, again in zip(_scenes(80), _scenes(80)):
        assert (
            np.array_equal(np.asarray(scene.image), np.asarray(again.image))
            and scene.caption == again.caption
        )
        labels = set(np.unique(scene.mask).tolist()) - {0}
        assert 1 <= len(labels) <= 3 and max(labels) <= 8
        assert sorted(p.label for p in scene.phrases) == sorted(labels)
        for phrase in scene.phrases:
            text = scene.caption[phrase.span[0] : phrase.span[1]]
            spec = SHAPE_CATEGORIES[phrase.label - 1]
            assert text.split()[-1] in (spec.name, spec.plural), (scene.caption, text)


def _mean_colour(scene, label: int) -> np.ndarray:
    return np.asarray(scene.image, np.float32)[scene.mask == label].mean(axis=0)


def test_colour_is_independent_of_the_shape() -> None:
    # over many scenes each shape comes in many colours, and every colour word goes with many shapes
    seen: dict[int, set[str]] = {}
    words: dict[str, set[int]] = {}
    for scene in _scenes(400):
        for phrase in scene.phrases:
            text = scene.caption[phrase.span[0] : phrase.span[1]].split()
            for word in text:
                if word in COLOURS:
                    seen.setdefault(phrase.label, set()).add(word)
                    words.setdefault(word, set()).add(phrase.label)
    assert all(len(seen[label]) >= 8 for label in range(1, 9)), seen
    assert all(len(labels) >= 6 for labels in words.values()) and len(words) == len(COLOURS)
    # two objects of one scene may share a colour (drawn with replacement: 1 in 10 for a pair)
    layouts = [_place(np.random.default_rng([3, i]), 64) for i in range(400)]
    shared = sum(len({s.colour for s in layout}) < len(layout) for layout in layouts if len(layout) > 1)
    assert 10 < shared < 60, shared
    # the pixel colours of one shape spread over the whole palette
    reds = [_mean_colour(s, 2)[0] - _mean_colour(s, 2)[2] for s in _scenes(300) if 2 in s.mask]
    assert min(reds) < -60 and max(reds) > 60


@pytest.mark.nltk_data
def test_shape_captions_need_noun_extraction() -> None:
    mentions = found = other = 0
    for scene in _scenes(200):
        nouns = set(extract_nouns(scene.caption))
        other += bool(nouns - set(SHAPE_CLASSES))
        for phrase in scene.phrases:
            spec = SHAPE_CATEGORIES[phrase.label - 1]
            mentions += 1
            found += bool({spec.name, spec.plural} & nouns)
    assert found / mentions > 0.9 and other > 50


def test_make_shape_data(tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    argv = ["--out", str(out), "--num-train", "6", "--num-val", "3", "--size", "48", "--cues", "shape"]
    assert make_synthetic_data.main(argv) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["classes"] == list(SHAPE_CLASSES) and meta["cues"] == "shape" and len(meta["palette"]) == 9
    assert (out / "val" / "classes.txt").read_text().split() == list(SHAPE_CLASSES)
    assert json.loads((out / "val" / "meta.json").read_text())["classes"] == list(SHAPE_CLASSES)
    records = [json.loads(line) for line in (out / "val" / "grounding.jsonl").read_text().splitlines()]
    for index, record in enumerate(records):
        mask = np.asarray(Image.open(out / "val" / "ann_dir" / "val" / f"{index:06d}.png"))
        assert mask.shape == (48, 48)
        assert sorted(p["label"] for p in record["phrases"]) == sorted(set(np.unique(mask).tolist()) - {0})
    assert len((out / "train" / "captions.jsonl").read_text().splitlines()) == 6


def test_make_data_refuses_unknown_cues(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        make_synthetic_data.main(["--out", str(tmp_path / "x"), "--cues", "texture"])
    assert exit_info.value.code == 2
    assert (
        "argument --cues: invalid choice: 'texture' (choose from 'colour', 'shape')"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "x").exists()

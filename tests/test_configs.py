"""The configs on their shared bases: each one keeps the protocol values it had when the segmentor
block, the schedule and the runtime were copied into every file, and reads the values several configs
share (background thresholds, class renames, the synthetic test size) from their one source."""

# isort: off
import mmseg_plugins  # noqa: F401  (compat layer before any mmseg import; registers our modules)

# isort: on
import ast
from pathlib import Path

import numpy as np
import pytest
from mmcv.transforms import Resize
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from groupvit.errors import InputError
from mmseg_plugins.transforms import PresetResize

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VOC = {"diningtable": "table", "pottedplant": "plant", "tvmonitor": "monitor"}
CONTEXT = {"aeroplane": "airplane", "pottedplant": "plant", "tvmonitor": "monitor"}
SLIDE = dict(mode="slide", crop_size=(448, 448), stride=(224, 224))

# What each config's segmentor was given when the values were written into every file (before the
# bases): class renames, background threshold, background channel, test mode.
WRITTEN_OUT = {
    "groupvit_s_voc.py": (VOC, 0.95, True, SLIDE),
    "groupvit_s_context.py": (CONTEXT, 0.35, True, SLIDE),
    "groupvit_s_context59.py": (CONTEXT, 0.35, False, SLIDE),
    "groupvit_s_coco_object.py": ({}, 0.95, True, SLIDE),
    "groupvit_s_custom.py": ({}, 0.95, True, SLIDE),
    "groupvit_s_gcc_yfcc_30e.py": (VOC, 0.95, True, SLIDE),
    "groupvit_tiny_synthetic.py": ({}, 0.95, True, dict(mode="whole")),
}


@pytest.mark.parametrize("name", sorted(WRITTEN_OUT))
def test_every_config_keeps_its_protocol_values(name: str) -> None:
    init_default_scope("mmseg")
    cfg = Config.fromfile(CONFIGS / "groupvit" / name)
    # the model of the config itself, at the size of the tiny preset (the values do not depend on it)
    preset = cfg.model.model_name
    segmentor = MODELS.build(dict(cfg.model, model_name="groupvit_tiny"))
    renames, bg_thresh, background, test_cfg = WRITTEN_OUT[name]
    assert segmentor.class_renames == renames
    assert segmentor.bg_thresh == bg_thresh
    assert segmentor.background is background and segmentor.test_cfg == test_cfg
    assert segmentor.templates == "simple" and segmentor.top_k == 5
    assert preset == ("groupvit_tiny_synthetic" if "tiny" in name else "groupvit_s")


def test_the_shared_values_have_one_home() -> None:
    """No config writes a background threshold, a benchmark's renames or a test size of its own."""
    for path in sorted((CONFIGS / "groupvit").glob("*.py")):
        cfg = Config.fromfile(path)
        assert "bg_thresh" not in cfg.model and cfg.model.get("class_renames", {}) == {}, path.name
        assert "test_size" not in cfg and "pottedplant" not in path.read_text(), path.name


def _bases(path: Path) -> list[Path]:
    tree = ast.parse(path.read_text())
    bases = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "_base_"]
    assert len(bases) == 1, path.name
    return [(path.parent / base).resolve() for base in ast.literal_eval(bases[0])]


def test_bases_are_one_level_deep() -> None:
    """mmseg's layout (STYLE.md): configs name files of configs/_base_/, which name no bases. A
    variant of a recipe (fusion, self-training, shapes on the synthetic recipe) may name that one
    recipe instead, which itself names _base_ files only."""
    for path in sorted((CONFIGS / "groupvit").glob("*.py")):
        files = _bases(path)
        if len(files) == 1 and files[0].parent == path.parent:  # a variant of one recipe
            assert files[0].is_file(), (path.name, files[0])
            files = _bases(files[0])
            assert all(f.parent != path.parent for f in files), (path.name, "a variant of a variant")
        for file in files:
            assert file.is_relative_to(CONFIGS / "_base_") and file.is_file(), (path.name, file)
            assert "_base_" not in file.read_text(), file


def test_preset_resize_is_the_written_out_resize() -> None:
    """The synthetic val pipeline's size comes from the preset (320): pixel for pixel what
    Resize(scale=(320, 320), keep_ratio=True) gave on the 64-px scenes."""
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ours = PresetResize(model_name="groupvit_tiny_synthetic")(dict(img=image.copy()))
    written = Resize(scale=(320, 320), keep_ratio=True)(dict(img=image.copy()))
    assert ours["img"].shape == (320, 320, 3)
    np.testing.assert_array_equal(ours["img"], written["img"])
    wide = PresetResize(model_name="groupvit_tiny")(dict(img=np.zeros((50, 100, 3), np.uint8)))
    assert wide["img"].shape[:2] == (128, 256)  # short side 128, the tiny preset's


def test_unknown_benchmark_is_named() -> None:
    with pytest.raises(InputError, match=r"^model.benchmark 'vocc' is unknown; choose from \['coco_object'"):
        MODELS.build(dict(type="GroupViTSegmentor", model_name="groupvit_tiny", benchmark="vocc"))

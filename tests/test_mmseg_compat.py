"""Compatibility layer: mmseg imports on mmcv-lite, compiled ops fail clearly, mmengine checkpoints load."""

# isort: off
import mmseg_plugins.compat as compat

# isort: on
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch


def test_mmseg_imports_with_the_ext_stub() -> None:
    import mmcv
    import mmseg.apis  # noqa: F401
    import mmseg.models  # noqa: F401

    ext = sys.modules["mmcv._ext"]
    assert ext.__spec__.name == "mmcv._ext"
    if getattr(ext, "__mmseg_plugins_stub__", False):
        assert mmcv._ext is ext
        with pytest.raises(AttributeError):
            ext.__wrapped__  # noqa: B018  (dunder names stay missing, e.g. for inspect / pickle)
    assert compat.install_mmcv_ext_stub() is False  # idempotent


def test_compiled_op_fails_with_a_message_that_says_so() -> None:
    from mmcv.ops import sigmoid_focal_loss

    if not getattr(sys.modules["mmcv._ext"], "__mmseg_plugins_stub__", False):
        pytest.skip("a compiled mmcv._ext is installed")
    with pytest.raises(compat.CompiledOpUnavailableError, match="compiled op 'sigmoid_focal_loss_forward'"):
        sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))


def test_mmengine_checkpoint_objects_load_with_weights_only(tmp_path: Path) -> None:
    from mmengine.logging import HistoryBuffer

    buffer = HistoryBuffer()
    buffer.update(0.5)
    buffer.update(np.float64(0.25))
    checkpoint = {
        "meta": {"epoch": 1, "dataset_meta": {"classes": ("background", "cat")}, "seed": np.int64(3)},
        "state_dict": {"w": torch.ones(2)},
        "message_hub": {"log_scalars": {"train/loss": buffer}, "runtime_info": {"iou": np.array([0.1, 0.2])}},
    }
    path = tmp_path / "ckpt.pth"
    torch.save(checkpoint, path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert loaded["message_hub"]["log_scalars"]["train/loss"].current() == 0.25
    assert np.array_equal(loaded["message_hub"]["runtime_info"]["iou"], [0.1, 0.2])
    assert loaded["meta"]["seed"] == 3


@pytest.mark.parametrize("owner, name", [("HistoryBuffer", "__init__"), ("OrderedDict", "fromkeys")])
def test_restricted_getattr_refuses_other_attributes(tmp_path: Path, owner: str, name: str) -> None:
    import collections
    import pickle

    from mmengine.logging import HistoryBuffer

    target = {"HistoryBuffer": HistoryBuffer, "OrderedDict": collections.OrderedDict}[owner]

    class Reach:
        def __reduce__(self):
            return getattr, (target, name)

    path = tmp_path / "reach.pth"
    torch.save({"x": Reach()}, path)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        torch.load(path, weights_only=True)


def test_checkpoint_with_foreign_objects_loads_weights_with_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like the official release: weights next to objects of a package this environment lacks."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "fakeconf.py").write_text(
        "import typing\n\n"
        "class Node:\n    def __init__(self, value):\n        self.value, self.kind = value, typing.Any\n\n"
        "class DictConfig:\n    def __init__(self, **content):\n        self._content = content\n"
    )
    monkeypatch.syspath_prepend(str(package))
    import fakeconf

    config = fakeconf.DictConfig(lr=0.1, node=fakeconf.Node(3))
    path = tmp_path / "release.pth"
    torch.save({"model": {"w": torch.arange(3.0)}, "config": config, "epoch": 30}, path)
    monkeypatch.delitem(sys.modules, "fakeconf")
    (package / "fakeconf.py").unlink()  # the package is gone when the checkpoint is loaded

    with pytest.warns(UserWarning, match="placeholders instead of unpickling objects of fakeconf.DictConfig"):
        loaded = compat.load_checkpoint_file(str(path), map_location="cpu")
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0)) and loaded["epoch"] == 30
    assert isinstance(loaded["config"], compat.UnpickledPlaceholder)
    assert loaded["config"].qualified_name == "fakeconf.DictConfig"
    node = loaded["config"].state["_content"]["node"]
    assert node.state["value"] == 3 and node.state["kind"].qualified_name == "typing.Any"

    from mmengine.runner.checkpoint import CheckpointLoader

    with pytest.warns(UserWarning, match="placeholders"):
        via_mmengine = CheckpointLoader.load_checkpoint(str(path), map_location="cpu")
    assert torch.equal(via_mmengine["model"]["w"], torch.arange(3.0))


def test_blocked_modules_still_refuse_to_load(tmp_path: Path) -> None:
    import pickle

    class CallsSystem:
        def __reduce__(self):
            import os

            return os.system, ("true",)

    path = tmp_path / "bad.pth"
    torch.save({"x": CallsSystem()}, path)
    with pytest.raises(pickle.UnpicklingError):
        compat.load_checkpoint_file(str(path))


def test_setuptools_fits_mim() -> None:
    compat.check_mim_setuptools()  # setuptools < 81 in this environment
    major = int(importlib.metadata.version("setuptools").split(".")[0])
    assert major < 81
    mim = Path(sys.executable).with_name("mim")
    out = subprocess.run([str(mim), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_check_mim_setuptools_explains_a_too_new_setuptools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat.importlib.metadata, "version", lambda name: "81.0.0")
    with pytest.raises(RuntimeError, match="setuptools < 81"):
        compat.check_mim_setuptools()

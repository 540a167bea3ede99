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


def test_mmengine_checkpoint_objects_load_through_groupvit(tmp_path: Path) -> None:
    """compat registers the real HistoryBuffer with groupvit's reader: the message hub is rebuilt."""
    import warnings

    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    from groupvit.checkpoint_io import read_checkpoint_file

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
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for loaded in (read_checkpoint_file(path), CheckpointLoader.load_checkpoint(str(path), "cpu")):
            assert loaded["message_hub"]["log_scalars"]["train/loss"].current() == 0.25
            assert np.array_equal(loaded["message_hub"]["runtime_info"]["iou"], [0.1, 0.2])
            assert loaded["meta"]["seed"] == 3


@pytest.mark.parametrize("owner, name", [("HistoryBuffer", "__init__"), ("OrderedDict", "fromkeys")])
def test_restricted_getattr_refuses_other_attributes(tmp_path: Path, owner: str, name: str) -> None:
    import collections

    from mmengine.logging import HistoryBuffer

    from groupvit.checkpoint_io import read_checkpoint_file
    from groupvit.errors import InputError

    target = {"HistoryBuffer": HistoryBuffer, "OrderedDict": collections.OrderedDict}[owner]

    class Reach:
        def __reduce__(self):
            return getattr, (target, name)

    path = tmp_path / "reach.pth"
    torch.save({"x": Reach()}, path)
    with pytest.raises(InputError, match=rf"reach.pth cannot be unpickled safely .*{name}'\) is not allowed"):
        read_checkpoint_file(path)


def test_mmengine_loaders_are_groupvit_s() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    for path in ("work_dirs/iter_2.pth", "https://example.com/x.pth", "http://example.com/x.pth"):
        assert CheckpointLoader._get_checkpoint_loader(path).__module__ == "mmseg_plugins.compat", path


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

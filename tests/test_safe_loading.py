"""No checkpoint runs code when loaded: crafted pickles through every entry point, normal files quietly.

A crafted ``.pth`` holds valid GroupViT weights next to an object whose unpickling would create a
marker file (``exec``, ``subprocess.call``, ``os.system``). Through the API, the tools, mmseg's
``model.checkpoint`` / ``load_from`` / ``--checkpoint`` / ``--resume`` paths and a poisoned release
cache, the marker is never created and the warning or error names what was refused.
"""

# isort: off
import mmseg_plugins  # noqa: F401  (compat first: registers groupvit's reader with mmengine)

# isort: on
import importlib.util
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupvit
from groupvit import safe_unpickle
from groupvit.checkpoint import RELEASED_CHECKPOINTS, convert_state_dict, ours_to_official, read_checkpoint
from groupvit.checkpoint_io import read_checkpoint_file, save_state_dict
from groupvit.errors import InputError
from groupvit.safe_unpickle import UnpickledPlaceholder

ROOT = Path(__file__).resolve().parents[1]
EXEC_WARNING = r"kept inert placeholders instead of unpickling builtins\.exec \(nothing"


class RunsCode:
    """Unpickling this calls ``func(*args)``, as a malicious checkpoint does."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _tool(name: str):
    return importlib.import_module(f"groupvit.cli.{name}")


@pytest.fixture(scope="module")
def tiny_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: v.clone() for k, v in groupvit.create_model("groupvit_tiny").state_dict().items()}


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def _craft(path: Path, sd: dict, payload: RunsCode) -> Path:
    torch.save({"model": ours_to_official(sd), "epoch": 30, "config": payload}, path)
    return path


@pytest.fixture
def exec_ckpt(tmp_path: Path, tiny_sd, marker: Path) -> Path:
    return _craft(tmp_path / "exec.pth", tiny_sd, RunsCode(exec, f"open({str(marker)!r}, 'w').close()"))


@pytest.fixture
def system_ckpt(tmp_path: Path, tiny_sd, marker: Path) -> Path:
    return _craft(tmp_path / "system.pth", tiny_sd, RunsCode(os.system, f"touch {marker}"))


def _same_weights(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())


def test_the_crafted_files_do_run_code_when_fully_unpickled(tmp_path, tiny_sd, marker) -> None:
    """The tests below are meaningful: an ordinary ``torch.load(weights_only=False)`` runs each payload."""
    payloads = {
        "exec": RunsCode(exec, f"open({str(marker)!r}, 'w').close()"),
        "system": RunsCode(os.system, f"touch {marker}"),
        "subprocess": RunsCode(subprocess.call, ["touch", str(marker)]),
    }
    for name, payload in payloads.items():
        path = _craft(tmp_path / f"{name}.pth", tiny_sd, payload)
        torch.load(path, weights_only=False)
        assert marker.exists(), name
        marker.unlink()


def test_exec_payload_becomes_an_inert_placeholder(exec_ckpt, marker) -> None:
    with pytest.warns(UserWarning, match=EXEC_WARNING) as record:
        loaded = read_checkpoint_file(exec_ckpt)
    assert len(record) == 1 and str(exec_ckpt) in str(record[0].message)
    placeholder = loaded["config"]
    assert isinstance(placeholder, UnpickledPlaceholder)
    assert placeholder.qualified_name == "builtins.exec"
    assert placeholder.args == (f"open({str(marker)!r}, 'w').close()",)  # kept as data, never run
    assert loaded["epoch"] == 30 and not marker.exists()


def test_subprocess_payload_is_named_by_its_real_module(tmp_path, tiny_sd, marker) -> None:
    # pickle protocol 2 writes subprocess.call as Python 2's "commands call"; the warning says subprocess
    path = _craft(tmp_path / "sub.pth", tiny_sd, RunsCode(subprocess.call, ["touch", str(marker)]))
    with pytest.warns(UserWarning, match=r"instead of unpickling subprocess\.call \("):
        sd = read_checkpoint(path)
    assert len(sd) == len(tiny_sd) and not marker.exists()


def test_groupvit_entry_points_never_run_the_payload(exec_ckpt, marker, tiny_sd, tmp_path, capsys) -> None:
    with pytest.warns(UserWarning, match=EXEC_WARNING):
        model = groupvit.create_model("groupvit_tiny", checkpoint=str(exec_ckpt))
    assert _same_weights(model, tiny_sd)

    model = groupvit.create_model("groupvit_tiny")
    with pytest.warns(UserWarning, match=EXEC_WARNING):
        groupvit.load_checkpoint(model, exec_ckpt)
    assert _same_weights(model, tiny_sd)

    out = tmp_path / "converted.safetensors"
    with pytest.warns(UserWarning, match=EXEC_WARNING):
        assert _tool("convert").main(["--to", "ours", str(exec_ckpt), str(out)]) == 0
    assert read_checkpoint(out).keys() == tiny_sd.keys()
    assert not marker.exists()


def test_demo_and_analyze_groups_never_run_the_payload(exec_ckpt, marker, tmp_path) -> None:
    """groupvit-analyze builds its model with demo.build_segmenter, the path run here."""
    image = tmp_path / "scene.png"
    Image.fromarray(np.full((32, 32, 3), 120, dtype=np.uint8)).save(image)
    demo = _tool("demo")
    argv = [str(image), "--vocab", "cat", "--model", "groupvit_tiny", "--checkpoint", str(exec_ckpt)]
    argv += ["--vis", "pred", "--out", str(tmp_path / "out"), "--device", "cpu", "--short-side", "64"]
    with pytest.warns(UserWarning, match=EXEC_WARNING):
        assert demo.main(argv) == 0
    assert (tmp_path / "out" / "scene_pred.png").is_file() and not marker.exists()


def test_mmseg_entry_points_never_run_the_payload(exec_ckpt, marker, tiny_sd) -> None:
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_checkpoint
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = dict(type="GroupViTSegmentor", model_name="groupvit_tiny", class_names=["background", "cat"])
    with pytest.warns(UserWarning, match=EXEC_WARNING):  # model.checkpoint= in a config
        segmentor = MODELS.build({**cfg, "checkpoint": str(exec_ckpt)})
    assert _same_weights(segmentor.model, tiny_sd)

    with pytest.warns(UserWarning, match=EXEC_WARNING):  # --checkpoint / load_from
        load_checkpoint(MODELS.build(cfg), str(exec_ckpt), map_location="cpu")
    with pytest.warns(UserWarning, match=EXEC_WARNING):  # what Runner.resume / load_checkpoint call
        assert _load_checkpoint(str(exec_ckpt), map_location="cpu")["epoch"] == 30
    with pytest.warns(UserWarning, match=EXEC_WARNING):
        CheckpointLoader.load_checkpoint(str(exec_ckpt), map_location="cpu")
    assert not marker.exists()


def test_blocked_module_payload_is_refused_everywhere(system_ckpt, marker, tmp_path, capsys) -> None:
    """torch refuses os / posix / sys even as placeholders: the file is refused, the function named."""
    from mmengine.runner.checkpoint import CheckpointLoader

    refused = rf"system.pth refused: its pickle calls {os.system.__module__}\.system \(a module no checkpoint"
    with pytest.raises(InputError, match=refused):
        groupvit.create_model("groupvit_tiny", checkpoint=str(system_ckpt))
    with pytest.raises(InputError, match=refused):
        CheckpointLoader.load_checkpoint(str(system_ckpt), map_location="cpu")
    assert _tool("convert").main([str(system_ckpt), str(tmp_path / "out.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("groupvit-convert: error: ") and err.count("\n") == 1 and "system" in err
    assert not marker.exists() and not (tmp_path / "out.pth").exists()


def test_release_tag_with_a_poisoned_cache_is_refused_before_unpickling(
    exec_ckpt, marker, tmp_path, monkeypatch
) -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    monkeypatch.setenv("GROUPVIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)  # the cache is used as it is
    url = RELEASED_CHECKPOINTS["gcc_yfcc"][1]
    cached = tmp_path / "cache" / "group_vit_gcc_yfcc_30e-879422e0.pth"
    cached.parent.mkdir()
    cached.write_bytes(exec_ckpt.read_bytes())
    poisoned = rf"cached checkpoint {cached} has sha256 [0-9a-f]{{8}}\.\.\., not 879422e0\.\.\. .* delete it"
    with pytest.raises(InputError, match=poisoned):  # create_model(..., checkpoint="gcc_yfcc") loads so
        groupvit.load_checkpoint(groupvit.create_model("groupvit_tiny"), "gcc_yfcc")
    with pytest.raises(InputError, match=poisoned):  # load_from = the release URL
        CheckpointLoader.load_checkpoint(url, map_location="cpu")
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_mmengine_resume_through_groupvit_reader(tmp_path, tiny_sd, marker, monkeypatch) -> None:
    """``Runner.resume`` (``--resume``) of a real training checkpoint: quiet, the message hub rebuilt;
    the same checkpoint with a payload in its meta: the payload is a placeholder."""
    from mmengine.config import Config
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import Runner
    from train_helpers import write_caption_folder, write_small_config

    data = write_caption_folder(tmp_path / "data", num=2, size=32)
    cfg = Config.fromfile(write_small_config(tmp_path / "cfg.py", data, batch_size=2, max_iters=1))
    cfg.work_dir = str(tmp_path / "work")
    runner = Runner.from_cfg(cfg)
    runner.train()
    saved = tmp_path / "work" / "iter_1.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runner.resume(str(saved))
        loaded = read_checkpoint_file(saved)
        model = groupvit.create_model("groupvit_tiny", checkpoint=str(saved))
        monkeypatch.setattr(safe_unpickle, "_registered", {})  # groupvit alone, no mmengine classes
        hub = read_checkpoint_file(saved)["message_hub"]
    assert isinstance(loaded["message_hub"]["log_scalars"]["train/loss"], HistoryBuffer)
    assert isinstance(hub["log_scalars"]["train/loss"], UnpickledPlaceholder)
    assert _same_weights(model, {k[len("model.") :]: v for k, v in loaded["state_dict"].items()})
    monkeypatch.undo()

    loaded["meta"]["note"] = RunsCode(exec, f"open({str(marker)!r}, 'w').close()")
    crafted = tmp_path / "crafted_iter_1.pth"
    torch.save(loaded, crafted)
    with pytest.warns(UserWarning, match=EXEC_WARNING):
        runner.resume(str(crafted))
    assert runner.iter == 1 and not marker.exists()


def _official_like(tmp_path: Path, sd: dict, monkeypatch) -> Path:
    """Like the official release: weights, optimiser, numpy metrics and an OmegaConf config, saved
    by a process that had omegaconf (here a stand-in package with its class names, then removed)."""
    package = tmp_path / "fake_omegaconf" / "omegaconf"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text(
        "import typing\nclass ContainerMetadata:\n    def __init__(self):\n"
        "        self.key_type, self.element_type, self.ref_type = typing.Any, typing.Any, dict\n"
        "        self.object_type, self.flags = list, {}\n"
    )
    (package / "nodes.py").write_text("class AnyNode:\n    def __init__(self, v):\n        self._val = v\n")
    (package / "dictconfig.py").write_text(
        "import collections\nfrom omegaconf.base import ContainerMetadata\n"
        "class DictConfig:\n    def __init__(self, content):\n        self._metadata = ContainerMetadata()\n"
        "        self._content, self._parent = content, None\n"
        "        self._resolver_cache = collections.defaultdict(dict)\n"
    )
    monkeypatch.syspath_prepend(str(package.parent))
    from omegaconf.dictconfig import DictConfig
    from omegaconf.nodes import AnyNode

    linear = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(linear.parameters())
    linear(torch.ones(1, 2)).sum().backward()
    opt.step()
    path = tmp_path / "group_vit_like_release.pth"
    config = DictConfig({"train": DictConfig({"base_lr": AnyNode(1.6e-3), "epochs": AnyNode(30)})})
    metrics = {"max_accuracy": 43.7, "max_miou": np.float64(52.3)}
    torch.save(
        {"model": ours_to_official(sd), "optimizer": opt.state_dict(), "lr_scheduler": {"t_initial": 30},
         "metrics": metrics, "epoch": 29, "config": config, **metrics},
        path,
    )  # fmt: skip
    for name in [m for m in sys.modules if m == "omegaconf" or m.startswith("omegaconf.")]:
        monkeypatch.delitem(sys.modules, name)
    shutil.rmtree(package)  # gone when the file is loaded, as omegaconf is from this environment
    return path


def test_normal_checkpoints_load_without_any_warning(tmp_path, tiny_sd, monkeypatch) -> None:
    official = _official_like(tmp_path, tiny_sd, monkeypatch)
    hf = convert_state_dict(tiny_sd, dst="hf")
    files = {"official": official}
    for name, sd in (
        ("hf.bin", hf),
        ("hf.safetensors", hf),
        ("ours.pth", tiny_sd),
        ("ours.safetensors", tiny_sd),
    ):
        save_state_dict(sd, tmp_path / name)
        files[name] = tmp_path / name
    files["legacy"] = tmp_path / "legacy.pth"
    torch.save({"state_dict": tiny_sd}, files["legacy"], _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, path in files.items():
            model = groupvit.create_model("groupvit_tiny", checkpoint=str(path))
            if "hf" in name:  # HF files have no multi-label temperature: the model keeps its init
                model.multi_label_logit_scale.data.copy_(tiny_sd["multi_label_logit_scale"])
            assert _same_weights(model, tiny_sd), name
        release = read_checkpoint_file(official)
    assert release["config"].qualified_name == "omegaconf.dictconfig.DictConfig"
    assert release["max_miou"] == 52.3 and isinstance(release["max_miou"], np.float64)
    assert torch.is_tensor(release["optimizer"]["state"][0]["exp_avg"])


def test_unknown_classes_are_named_once_known_ones_not(tmp_path, tiny_sd, monkeypatch) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "thirdparty.py").write_text("class Thing:\n    def __init__(self):\n        self.v = 1\n")
    monkeypatch.syspath_prepend(str(package))
    import thirdparty

    path = tmp_path / "mixed.pth"
    torch.save({"state_dict": tiny_sd, "a": thirdparty.Thing(), "b": [thirdparty.Thing()], "t": dict}, path)
    monkeypatch.delitem(sys.modules, "thirdparty")
    (package / "thirdparty.py").unlink()
    with pytest.warns(UserWarning) as record:
        loaded = read_checkpoint_file(path)
    assert len(record) == 1
    assert str(record[0].message).split("unpickling ")[1].startswith("thirdparty.Thing (nothing")
    assert loaded["a"].state == {"v": 1} and loaded["t"].qualified_name == "builtins.dict"

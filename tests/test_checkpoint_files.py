"""Checkpoint files: what is not a checkpoint is a one-line InputError naming the file, .safetensors
in and out, and release downloads checked against the sha256 prefix in their name."""

from __future__ import annotations

import hashlib
import pickle
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import groupvit
from groupvit.checkpoint import RELEASED_CHECKPOINTS, convert_state_dict, read_checkpoint
from groupvit.checkpoint_io import read_checkpoint_file, save_state_dict
from groupvit.download import cache_dir, download, sha256_prefix_in_name
from groupvit.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_sd() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in groupvit.create_model("groupvit_tiny").state_dict().items()}


def _zip_truncated(path: Path) -> None:
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])


def _torchscript(path: Path) -> None:
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))


def _protocol_4(path: Path) -> None:
    torch.save({"w": torch.ones(2), "t": (1, 2)}, path, pickle_protocol=4)


BAD_FILES = {  # name -> (how to write it, what the error says)
    "zero.pth": (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\): the download or copy was cut short"),
    "empty_dict.pth": (lambda p: torch.save({}, p), r"holds no state dict \(an empty dict;"),
    "no_tensors.pth": (
        lambda p: torch.save({"epoch": 3, "lr": 0.1}, p),
        r"holds no state dict \(a dict of float, int with keys 'epoch', 'lr';",
    ),
    "notes.pth": (
        lambda p: p.write_text("weights are on the shared drive\n"),
        r"is a text file, not a checkpoint \(it starts with 'weights are on the shared drive'\)",
    ),
    "page.pth": (
        lambda p: p.write_text("<!DOCTYPE html><html><body>Not Found</body></html>"),
        r"is an HTML page, not a checkpoint \(the download got a web page",
    ),
    "lfs.pth": (
        lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"),
        r"is a git-lfs pointer, not the checkpoint itself \(run `git lfs pull`",
    ),
    "binary.pth": (
        lambda p: p.write_bytes(b"\x00\x01\x02garbage" * 10),
        r"is not a checkpoint \(unknown binary",
    ),
    "text.safetensors": (
        lambda p: p.write_text("hello"),
        r"is a text file, not a checkpoint \(it starts with 'hello'\) \(despite its \.safetensors name\)",
    ),
    "cut.safetensors": (
        lambda p: p.write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{" + b" " * 70),
        r"is not a valid \.safetensors file \(",
    ),
    "cut.pth": (
        _zip_truncated,
        r"is a damaged zip archive \(no central directory\): the download or copy was cut",
    ),
    "script.pth": (_torchscript, r"is a TorchScript archive \(torch.jit.save\), not a checkpoint of weights"),
    "proto4.pth": (_protocol_4, r"uses pickle protocol 4 or later"),
    "raw_pickle.pth": (
        lambda p: p.write_bytes(pickle.dumps({"w": 1}, protocol=2)),
        r"is not a readable torch.save file \(ValueError: pickle exhausted before seeing STOP\)",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_what_is_not_a_checkpoint_is_an_input_error_naming_the_file(tmp_path: Path, name: str) -> None:
    write, message = BAD_FILES[name]
    path = tmp_path / name
    write(path)
    with pytest.raises(InputError, match=message) as e:
        groupvit.create_model("groupvit_tiny", checkpoint=str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_directory_and_missing_file(tmp_path: Path, tiny_sd) -> None:
    folder = tmp_path / "hf_model"
    folder.mkdir()
    with pytest.raises(InputError, match=rf"checkpoint {folder} is a directory, not a checkpoint file$"):
        read_checkpoint(folder)
    save_state_dict(convert_state_dict(tiny_sd, dst="hf"), folder / "model.safetensors")
    with pytest.raises(
        InputError, match=rf"pass the weights file inside it: {folder / 'model.safetensors'}$"
    ):
        read_checkpoint_file(folder)
    with pytest.raises(FileNotFoundError, match="is not a file, a URL or a released tag"):
        read_checkpoint(tmp_path / "nope.pth")


def test_safetensors_round_trip_with_shared_and_strided_tensors(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    sd = {"a": base, "a_view": base[1], "t": base.t(), "own": torch.ones(2)}
    path = tmp_path / "x.safetensors"
    save_state_dict(sd, path)
    back = read_checkpoint_file(path)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"format": "pt"}  # what transformers requires of model.safetensors
    with pytest.raises(InputError, match=rf"output {tmp_path} is a directory; give a file name"):
        save_state_dict(sd, tmp_path)


def _convert_tool():
    from groupvit.cli import convert

    return convert


def test_convert_tool_writes_safetensors_that_transformers_loads(tmp_path: Path, tiny_sd) -> None:
    transformers = pytest.importorskip("transformers")
    from test_hf_parity import hf_config

    src = tmp_path / "ours.pth"
    torch.save({"state_dict": tiny_sd}, src)
    dst = tmp_path / "hf" / "model.safetensors"
    assert _convert_tool().main(["--to", "hf", str(src), str(dst)]) == 0
    hf = transformers.GroupViTModel(hf_config(groupvit.create_model("groupvit_tiny").config))
    from safetensors.torch import load_file

    result = hf.load_state_dict(load_file(dst), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"is not a file, a URL or a released tag"),
        ("zero", r"is empty \(0 bytes\)"),
        ("text", r"is a text file, not a checkpoint"),
        ("vit", r"vit.pth: not a GroupViT state dict \(official, HF or ours\); first keys: \['cls_token'"),
        ("dst_dir", r"output .*out is a directory; give a file name"),
    ],
)
def test_convert_tool_errors_are_one_line(tmp_path: Path, capsys, case: str, message: str) -> None:
    src, dst = tmp_path / f"{case}.pth", tmp_path / "out.pth"
    if case == "zero":
        src.write_bytes(b"")
    elif case == "text":
        src.write_text("hello")
    elif case == "vit":
        torch.save({"cls_token": torch.zeros(1, 1, 8), "blocks.0.norm1.weight": torch.ones(8)}, src)
    elif case == "dst_dir":
        torch.save({"w": torch.ones(1)}, src)
        dst = tmp_path / "out"
        dst.mkdir()
    assert _convert_tool().main([str(src), str(dst)]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("groupvit-convert: error: ") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err and re.search(message, out.err), out.err
    assert case == "dst_dir" or not dst.exists()


def test_cache_dir_is_torch_hubs_unless_overridden(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GROUPVIT_CACHE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert cache_dir() == tmp_path / "hub" / "checkpoints"
    monkeypatch.setenv("GROUPVIT_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert sha256_prefix_in_name("group_vit_gcc_yfcc_30e-879422e0.pth") == "879422e0"
    assert sha256_prefix_in_name("groupvit_tiny_synthetic.pth") is None


def test_release_download_is_checked_and_a_bad_one_never_cached(tmp_path: Path, tiny_sd, monkeypatch) -> None:
    monkeypatch.setenv("GROUPVIT_CACHE", str(tmp_path / "cache"))
    good = tmp_path / "release.pth"
    torch.save({"model": convert_state_dict(tiny_sd, dst="official")}, good)
    sha = hashlib.sha256(good.read_bytes()).hexdigest()[:8]
    url = f"https://example.invalid/v1/group_vit_tiny-{sha}.pth"
    monkeypatch.setitem(RELEASED_CHECKPOINTS, "tiny", ("groupvit_tiny", url))
    served: list[bytes] = [b"PK\x03\x04 tampered on the way"]

    def fake_download(src: str, dst: str, progress: bool = True) -> None:
        assert src == url
        Path(dst).write_bytes(served.pop(0))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(
        InputError, match=rf"downloaded {url} has sha256 [0-9a-f]{{8}}\.\.\., not {sha}\.\.\."
    ):
        read_checkpoint("tiny")
    assert list((tmp_path / "cache").iterdir()) == []  # neither the file nor a .partial is left

    served.append(good.read_bytes())
    model = groupvit.create_model("groupvit_tiny", checkpoint="tiny")
    assert all(torch.equal(v, tiny_sd[k]) for k, v in model.state_dict().items())
    cached = tmp_path / "cache" / f"group_vit_tiny-{sha}.pth"
    assert cached.read_bytes() == good.read_bytes()
    read_checkpoint("tiny")  # from the cache: no second download (served is empty)

    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed in the cache
    cached.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"cached checkpoint {cached} has sha256 .* delete it"):
        read_checkpoint(url)
    # an arbitrary URL has no known hash: downloaded and used as it is
    other = "https://example.invalid/mine.pth"
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda s, d, progress=True: shutil.copy(good, d))
    assert download(other).read_bytes() == good.read_bytes()


def test_a_placeholder_that_must_act_as_a_dict_is_an_input_error(tmp_path: Path, monkeypatch) -> None:
    """torch's unpickler fills only real dicts; a dict subclass from an absent package cannot load."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "attrdict_like.py").write_text("class AttrDict(dict):\n    pass\n")
    monkeypatch.syspath_prepend(str(package))
    import attrdict_like

    path = tmp_path / "cfg.pth"
    torch.save({"w": torch.ones(1), "cfg": attrdict_like.AttrDict(lr=0.1)}, path)
    monkeypatch.delitem(sys.modules, "attrdict_like")
    with pytest.raises(
        InputError,
        match=r"cfg.pth cannot be unpickled safely \(UnpicklingError: Can only SETITEM for dict.*"
        r"UnpickledPlaceholder\[attrdict_like.AttrDict\]",
    ):
        read_checkpoint_file(path)

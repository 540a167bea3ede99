"""Checkpoint layouts: conversion round trips, the official key count, loading and its errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from groupvit import create_model
from groupvit.checkpoint import (
    RELEASED_CHECKPOINTS,
    convert_state_dict,
    detect_layout,
    load_checkpoint,
    ours_to_official,
    read_checkpoint,
    unwrap_state_dict,
)
from groupvit.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("groupvit_tiny")
    with torch.no_grad():
        for b in model.buffers():
            if b.is_floating_point():
                b.add_(torch.rand_like(b))
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_detect_layout(tiny_sd) -> None:
    assert detect_layout(tiny_sd) == "ours"
    assert detect_layout(convert_state_dict(tiny_sd, dst="hf")) == "hf"
    assert detect_layout(ours_to_official(tiny_sd)) == "official"
    with pytest.raises(ValueError, match="not a GroupViT state dict"):
        detect_layout({"blocks.0.attn.qkv.weight": torch.zeros(1)})


def test_round_trips_are_bit_identical(tiny_sd) -> None:
    hf = convert_state_dict(tiny_sd, dst="hf")
    assert "multi_label_logit_scale" not in hf
    back = convert_state_dict(hf, src="hf") | {"multi_label_logit_scale": tiny_sd["multi_label_logit_scale"]}
    _assert_identical(back, tiny_sd)
    _assert_identical(convert_state_dict(ours_to_official(tiny_sd)), tiny_sd)


def test_hf_layout_loads_into_transformers(tiny_sd) -> None:
    transformers = pytest.importorskip("transformers")
    from test_hf_parity import hf_config

    model = create_model("groupvit_tiny")
    hf = transformers.GroupViTModel(hf_config(model.config))
    result = hf.load_state_dict(convert_state_dict(tiny_sd, dst="hf"), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.fixture(scope="module")
def groupvit_s_sd() -> dict[str, torch.Tensor]:
    return create_model("groupvit_s").state_dict()


@pytest.mark.slow  # 22 s + 14 s of GroupViT-S set-up
def test_official_groupvit_s_layout_has_407_entries_and_loads(groupvit_s_sd) -> None:
    official = ours_to_official(groupvit_s_sd)
    assert len(official) == 407
    # spot-check documented names and the Conv1d projector shape
    assert official["img_projector.linear_hidden.0.weight"].shape == (4096, 384, 1)
    assert official["text_projector.linear_out.weight"].shape == (256, 4096, 1)
    for key in (
        "img_encoder.pos_embed",
        "img_encoder.layers.0.blocks.5.attn.qkv.weight",
        "img_encoder.layers.1.group_projector.1.fc2.bias",
        "img_encoder.layers.0.downsample.pre_assign_attn.attn.q_proj.weight",
        "img_encoder.layers.1.downsample.assign.proj.weight",
        "img_encoder.layers.0.downsample.mlp_channels.fc1.weight",
        "text_encoder.transformer.resblocks.11.attn.in_proj_weight",
        "text_encoder.ln_final.bias",
        "img_projector.linear_hidden.1.num_batches_tracked",
        "multi_label_logit_scale",
    ):
        assert key in official, key
    # an official training checkpoint: {"model": ...} next to optimiser state
    fresh = create_model("groupvit_s")
    load_checkpoint(fresh, {"model": official, "epoch": 30}, model_name="groupvit_s")
    _assert_identical(fresh.state_dict(), groupvit_s_sd)


def test_load_unwraps_mmengine_and_hf_leftovers(tiny_sd) -> None:
    wrapped = {"meta": {}, "state_dict": {f"model.{k}": v for k, v in tiny_sd.items()}}
    model = create_model("groupvit_tiny")
    load_checkpoint(model, wrapped)
    _assert_identical(model.state_dict(), tiny_sd)

    hf = convert_state_dict(tiny_sd, dst="hf")
    hf["text_model.embeddings.position_ids"] = torch.arange(77)[None]  # as in older HF files
    model = create_model("groupvit_tiny")
    init_scale = model.multi_label_logit_scale.detach().clone()
    load_checkpoint(model, hf)
    assert torch.equal(model.multi_label_logit_scale.detach(), init_scale)
    assert torch.equal(model.state_dict()["vision.pos_embed"], tiny_sd["vision.pos_embed"])


def test_load_resamples_pos_embed_of_other_grid(tiny_sd) -> None:
    sd = dict(tiny_sd)
    sd["vision.pos_embed"] = torch.randn(1, 16 * 16, 32)  # trained at 128 px
    model = create_model("groupvit_tiny")
    load_checkpoint(model, sd)
    assert model.vision.pos_embed.shape == (1, 64, 32)


def test_load_errors_name_the_keys(tiny_sd, groupvit_s_sd) -> None:
    vit = {"cls_token": torch.zeros(1, 1, 32), "blocks.0.attn.qkv.weight": torch.zeros(96, 32)}
    with pytest.raises(
        RuntimeError, match=r"unexpected keys \(2\): cls_token, blocks.0.attn.qkv.weight"
    ) as e:
        load_checkpoint(create_model("groupvit_tiny"), vit)
    assert "file layout: unknown" in str(e.value) and "missing keys" in str(e.value)

    # a GroupViT-S file into the tiny model: shape mismatches, and the file is recognised
    official = ours_to_official(groupvit_s_sd)
    with pytest.raises(RuntimeError, match="shape mismatches") as e:
        load_checkpoint(create_model("groupvit_tiny"), official, model_name="groupvit_tiny")
    msg = str(e.value)
    assert "file layout: official" in msg and "like preset 'groupvit_s'" in msg and "groupvit_tiny" in msg

    sd = dict(tiny_sd)
    del sd["text.norm.weight"]
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): text.norm.weight"):
        load_checkpoint(create_model("groupvit_tiny"), sd)


def test_read_checkpoint_and_tags(tmp_path, tiny_sd, monkeypatch) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {f"module.{k}": v for k, v in tiny_sd.items()}}, path)
    _assert_identical(read_checkpoint(path), tiny_sd)
    model = create_model("groupvit_tiny", checkpoint=str(path))
    _assert_identical(model.state_dict(), tiny_sd)
    with pytest.raises(FileNotFoundError, match="released tag"):
        read_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="is for 'groupvit_s'"):
        create_model("groupvit_tiny", checkpoint="gcc_yfcc")
    with pytest.raises(ValueError, match="no state dict"):
        unwrap_state_dict({"epoch": 3})

    # no network: a clear "download it by hand" error (the download itself is faked to fail)
    monkeypatch.setenv("GROUPVIT_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError, match="Download the file by hand and pass its path"):
        read_checkpoint("gcc_redcaps")
    # a file already in the cache is used without downloading, once its sha256 matches its name
    cached = tmp_path / "cache" / "group_vit_gcc_yfcc_30e-879422e0.pth"
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": ours_to_official(tiny_sd)}, cached)
    sha = hashlib.sha256(cached.read_bytes()).hexdigest()[:8]
    url = RELEASED_CHECKPOINTS["gcc_yfcc"][1].replace("879422e0", sha)
    monkeypatch.setitem(RELEASED_CHECKPOINTS, "gcc_yfcc", ("groupvit_s", url))
    cached.rename(cached.with_name(f"group_vit_gcc_yfcc_30e-{sha}.pth"))
    _assert_identical(convert_state_dict(read_checkpoint("gcc_yfcc")), tiny_sd)


def test_convert_tool(tmp_path, tiny_sd, capsys) -> None:
    from groupvit.cli import convert as tool

    src = tmp_path / "official.pth"
    torch.save({"model": ours_to_official(tiny_sd)}, src)
    hf_path, ours_path = tmp_path / "hf.bin", tmp_path / "ours.pth"
    tool.main(["--from", "official", "--to", "hf", str(src), str(hf_path)])
    tool.main(["--to", "ours", str(hf_path), str(ours_path)])
    assert "(hf, " in capsys.readouterr().out
    back = torch.load(ours_path, weights_only=True)
    _assert_identical(back | {"multi_label_logit_scale": tiny_sd["multi_label_logit_scale"]}, tiny_sd)
    assert tool.main(["--from", "hf", str(src), str(hf_path)]) == 2
    assert capsys.readouterr().err == (
        f"groupvit-convert: error: {src} looks like a 'official' checkpoint, not 'hf'; drop --from to detect it\n"
    )


def test_convert_tool_cli_help(capsys) -> None:
    from groupvit.cli import convert

    with pytest.raises(SystemExit) as exit_info:
        convert.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith("usage: groupvit-convert") and "--from" in out


@pytest.mark.parametrize(
    "overrides, part",
    [({"vision.stem": "conv"}, "a convolutional stem"), ({"fusion.layers": 1}, "fusion layers")],
)
@pytest.mark.parametrize("dst", ["hf", "official"])
def test_parts_the_released_architecture_lacks_are_refused(overrides: dict, part: str, dst: str) -> None:
    """A conv stem or fusion layers would pass through renamed and break (or vanish in) the other side."""
    sd = create_model("groupvit_tiny", **overrides).state_dict()
    with pytest.raises(
        InputError, match=f"this checkpoint has {part}, which the {dst} GroupViT does not have"
    ):
        convert_state_dict(sd, dst=dst)
    assert convert_state_dict(sd, dst="ours").keys() == sd.keys()

"""Zero-shot segmentation as one ONNX graph: images in, labels out, the vocabulary baked in.

:class:`SegmentationGraph` is the whole-image protocol of :class:`~groupvit.zero_shot.ZeroShotSegmenter`
(image tower, the product of the soft assignments, the group-class affinity with the image-level
top-k filter and the background threshold) with the class text embeddings as a constant, so the
exported graph needs no text tower and no tokenizer. It returns the labels and the score row of
every final group (a pixel's scores are its group's row), not the dense [B, C, H, W] scores.

The graph is exported with the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``;
torch 2.14's default dynamo exporter needs ``onnxscript``) with dynamic batch, height and width:
the exporter records the patch grid, the bicubic resampling of the positional embedding to it and
the bilinear resize of the group maps as functions of the input's shape (tests/test_export.py:
labels equal PyTorch's at 320 x 320, the traced size, and at 320 x 480, 333 x 401 and 64 x 64).
What is fixed at tracing: the checks of the Python code (H and W at least the patch size), so
:func:`check_onnx_input` refuses smaller images before onnxruntime sees them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from groupvit.errors import InputError
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import group_scores, pixel_group_ids

__all__ = ["OPSET", "GraphSpec", "SegmentationGraph", "check_onnx_input", "export_onnx", "read_spec"]

OPSET = 17  # the TorchScript exporter's default in torch 2.x; onnxruntime >= 1.12 runs it
_SPEC_KEY = "groupvit"  # ONNX metadata_props entry holding the GraphSpec as JSON


class GraphSpec(NamedTuple):
    """What an exported graph takes and gives (stored as JSON in the ONNX file's metadata)."""

    preset: str
    min_side: int  # the smallest height and width the graph takes (the patch size)
    traced_size: list[int]  # [H, W] of the example input the graph was traced with
    class_names: list[str]  # id -> name of the labels; "background" at 0 when background
    bg_thresh: float
    top_k: int


class SegmentationGraph(nn.Module):
    """images [B, 3, H, W] (ImageNet-normalised) -> (labels [B, H, W] int64, group_scores [B, G, C]).

    The labels equal ``ZeroShotSegmenter(mode="whole").predict(images).labels``: each pixel takes
    the argmax of its final group's score row, which is the argmax of its gathered scores.
    """

    def __init__(self, segmenter: ZeroShotSegmenter) -> None:
        super().__init__()
        self.model = segmenter.model
        self.register_buffer("class_embeds", segmenter.class_embeddings.detach().clone())  # [K, D]
        self.register_buffer("logit_scale", self.model.logit_scale_value().detach().clone())
        self.background, self.bg_thresh, self.top_k = (
            segmenter.background,
            segmenter.bg_thresh,
            segmenter.top_k,
        )

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = self.model.forward_segmentation(images)
        rows = group_scores(
            features, self.class_embeds, self.logit_scale, self.background, self.bg_thresh, self.top_k
        )  # [B, G, C]
        group_ids = pixel_group_ids(features, (images.shape[-2], images.shape[-1]))  # [B, H, W]
        group_labels = rows.argmax(dim=-1)  # [B, G]
        labels = group_labels.gather(1, group_ids.flatten(1)).view_as(group_ids)
        return labels, rows


def export_onnx(
    segmenter: ZeroShotSegmenter, preset: str, size: tuple[int, int], out: Path, force: bool = False
) -> GraphSpec:
    """Write ``segmenter``'s whole-image forward, traced at input ``size`` (H, W), to ``out`` as ONNX.

    An existing ``out`` is kept (an :class:`InputError`) unless ``force``. The model must be in
    ``eval()`` mode; the graph runs on CPU float32.
    """
    import onnx

    height, width = size
    patch = segmenter.model.config.vision.patch_size
    if height < patch or width < patch:
        raise InputError(f"--size {height} {width}: both sides must be at least the patch size, {patch} px")
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass --force to overwrite it")
    if out.exists() and out.is_dir():
        raise InputError(f"{out} is a folder; name the .onnx file to write")
    graph = SegmentationGraph(segmenter).eval()
    dummy = torch.zeros(1, 3, height, width, dtype=torch.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        # the tracer's notes on Python-side shape checks, which become constants (module docstring)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            (dummy,),
            str(tmp),
            dynamo=False,
            input_names=["images"],
            output_names=["labels", "group_scores"],
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                "labels": {0: "batch", 1: "height", 2: "width"},
                "group_scores": {0: "batch"},
            },
            opset_version=OPSET,
        )
    names = (["background"] if segmenter.background else []) + list(segmenter.class_names)
    spec = GraphSpec(preset, patch, [height, width], names, segmenter.bg_thresh, segmenter.top_k)
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = _SPEC_KEY, json.dumps(spec._asdict())
    onnx.save(proto, str(tmp))
    tmp.replace(out)  # whole or absent: never a half-written file under the final name
    return spec


def read_spec(path: Path) -> GraphSpec:
    """The :class:`GraphSpec` stored in an exported file; an :class:`InputError` for any other file."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, ValidationError, OSError... for foreign files
        raise InputError(f"{path} is not an ONNX file ({type(e).__name__})") from None
    found = {p.key: p.value for p in proto.metadata_props}
    if _SPEC_KEY not in found:
        raise InputError(f"{path} was not written by groupvit-export (no '{_SPEC_KEY}' metadata)")
    return GraphSpec(**json.loads(found[_SPEC_KEY]))


def check_onnx_input(images: np.ndarray, spec: GraphSpec) -> np.ndarray:
    """``images`` as the graph takes them (float32 [B, 3, H, W], H and W at least ``spec.min_side``),
    or an :class:`InputError` that names what the graph takes."""
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, np.ndarray) else type(images).__name__
        raise InputError(f"images must be a float array [B, 3, H, W], got {shape}")
    if min(images.shape[2:]) < spec.min_side:
        raise InputError(
            f"images of {images.shape[2]} x {images.shape[3]} (H x W) are smaller than one "
            f"{spec.min_side} x {spec.min_side} patch: resize them (EvalTransform)"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"images must be float (ImageNet-normalised), got {images.dtype}")
    return np.ascontiguousarray(images, dtype=np.float32)

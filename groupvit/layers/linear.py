"""Linear layer whose large CPU float32 products run on oneDNN instead of the BLAS sgemm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Below this many rows the product is too small for the kernel choice to matter.
MIN_ROWS = 64
_ONEDNN = torch.backends.mkldnn.is_available()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: [..., C] -> [..., O], the same maths on every device.

    On CPU in float32 with at least ``MIN_ROWS`` rows the product is run as a 1x1 convolution,
    which PyTorch hands to oneDNN: the rows [M, C] are already a channels-last [1, C, M, 1] image,
    so nothing is copied, the bias is fused and the backward pass is oneDNN's too. BLAS sgemm
    (what ``F.linear`` calls on CPU) reached 180-220 GFLOP/s on 2 AMD EPYC cores where oneDNN's
    kernels reached 320-500 (docs/benchmarks.md). ``torch.backends.mkldnn.enabled = False``
    switches back to ``F.linear``; on GPUs, in lower precision and under ``torch.compile``
    ``F.linear`` is used.
    """
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or x.numel() < MIN_ROWS * x.shape[-1]
        or not _ONEDNN
        # under torch.compile the layout trick is undone by the compiler's own layouts (measured
        # slower); plain linears are what it fuses and pattern-matches
        or torch.compiler.is_compiling()
        or not torch.backends.mkldnn.enabled
    ):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    m, c = rows.shape
    y = F.conv2d(rows.view(1, m, 1, c).permute(0, 3, 1, 2), weight[:, :, None, None], bias)  # (1, O, M, 1)
    return y.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])  # channels-last: a view


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) computed with :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

"""Linear layer whose CPU float32 products run on the kernel that is faster on this instruction set.

The same product ``x @ W^T + b`` can run on the BLAS sgemm (``F.linear``) or on oneDNN (a 1x1
convolution over the rows viewed as a channels-last image). Which is faster depends on the
instruction set the CPU kernels use (docs/benchmarks.md, "What decides the kernel"): with AVX-512
oneDNN was 1.8-2.3x faster than BLAS on 2 AMD Zen 5 cores and even with MKL on an Intel Xeon,
while limited to AVX2 its backward pass ran at 0.47-0.57x MKL's for every training shape, which
made our training step slower than transformers'. So the rule is: oneDNN when torch's CPU kernels
run AVX-512 on more than one thread, BLAS otherwise. On one thread PyTorch's own convolution
heuristic never hands a 1x1 convolution of batch 1 to oneDNN: it runs its im2col fallback, the
same sgemm (bit-identical results, ``tests/test_speed_paths.py``) plus a transposing copy of the
input and of the output (about 2% of a one-thread step, docs/benchmarks.md), so ``F.linear`` is
the direct way to the same numbers. A rule and not a per-process timing: the kernels round differently,
and a choice that could flip between two processes would break exact resume and bit-for-bit
reproducible training.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# Below this many rows the product is too small for the kernel choice to matter.
MIN_ROWS = 64
_ONEDNN = torch.backends.mkldnn.is_available()


@functools.cache
def _avx512() -> bool:
    return _ONEDNN and torch.backends.cpu.get_cpu_capability() == "AVX512"


def onednn_preferred() -> bool:
    """Whether large CPU float32 products run on oneDNN: when torch's CPU kernels run AVX-512
    (``torch.backends.cpu.get_cpu_capability()``, which ``ATEN_CPU_CAPABILITY`` can lower) on more
    than one thread (on one, PyTorch would not give the convolution to oneDNN)."""
    return _avx512() and torch.get_num_threads() > 1


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` as a 1x1 convolution, which PyTorch hands to oneDNN: rows [M, C] are already a
    channels-last [1, C, M, 1] image, so nothing is copied and the bias is fused. [..., C] -> [..., O]."""
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    m, c = rows.shape
    y = F.conv2d(rows.view(1, m, 1, c).permute(0, 3, 1, 2), weight[:, :, None, None], bias)  # (1, O, M, 1)
    return y.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])  # channels-last: a view


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: [..., C] -> [..., O], the same maths on every path.

    On CPU in float32 with at least ``MIN_ROWS`` rows, :func:`onednn_linear` when
    :func:`onednn_preferred`. ``F.linear`` runs everything else: small products, other devices
    and dtypes, ``torch.compile`` (its own layouts undo the trick; plain linears are what it
    fuses) and everything when ``torch.backends.mkldnn.enabled`` is False.
    """
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or x.numel() < MIN_ROWS * x.shape[-1]
        or not torch.backends.mkldnn.enabled
        or torch.compiler.is_compiling()
        or not onednn_preferred()
    ):
        return F.linear(x, weight, bias)
    return onednn_linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) computed with :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

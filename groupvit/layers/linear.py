"""Linear layer whose CPU float32 products run on the faster of two kernels, measured on this machine.

The same product ``x @ W^T + b`` can run on the BLAS sgemm (``F.linear``) or on oneDNN (a 1x1
convolution over the rows viewed as a channels-last image). Which is faster depends on the CPU,
its instruction set, the shape and whether a backward pass follows: on 2 AMD Zen 5 cores oneDNN
was 1.8-2.3x faster (docs/benchmarks.md); on an Intel Xeon limited to AVX2 its backward was 2x
slower than MKL's, which made the training step slower than transformers'. So no constant
decides: the first product of each kind is timed both ways and the winner is kept for the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

# Below this many multiply-adds a product takes microseconds: not worth timing, F.linear runs it.
MIN_MACS = 2**21
# Timed runs per path (after one untimed); the fastest run of each path is compared.
ROUNDS = 3
# oneDNN must beat BLAS by this factor to be chosen: on a near tie F.linear, the plain op, stays.
MARGIN = 0.95
_ONEDNN = torch.backends.mkldnn.is_available()


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` as a 1x1 convolution, which PyTorch hands to oneDNN: rows [M, C] are already a
    channels-last [1, C, M, 1] image, so nothing is copied and the bias is fused. [..., C] -> [..., O]."""
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    m, c = rows.shape
    y = F.conv2d(rows.view(1, m, 1, c).permute(0, 3, 1, 2), weight[:, :, None, None], bias)  # (1, O, M, 1)
    return y.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])  # channels-last: a view


PATHS: dict[str, Callable[..., torch.Tensor]] = {"blas": F.linear, "onednn": onednn_linear}
# (rows, in, out, bias, x grad, weight grad, bias grad, threads) -> the faster path's name
_choices: dict[tuple, str] = {}
_lock = threading.Lock()


def chosen_paths() -> dict[tuple, str]:
    """The choices made so far: (rows, in, out, has bias, x/weight/bias need grad, threads) -> path."""
    with _lock:
        return dict(_choices)


def clear_choices() -> None:
    """Forget the measured choices (the next product of each kind is timed again)."""
    with _lock:
        _choices.clear()


def faster_path(times: dict[str, list[float]]) -> str:
    """ "onednn" when its fastest run beats BLAS's fastest by :data:`MARGIN`, else "blas"."""
    return "onednn" if min(times["onednn"]) < MARGIN * min(times["blas"]) else "blas"


def time_paths(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, needs_grad: tuple[bool, bool, bool]
) -> dict[str, list[float]]:
    """Seconds per run of each path on detached copies of the real inputs x [M, C], weight [O, C]
    (forward, plus the backward to the inputs flagged in ``needs_grad`` when any is), interleaved."""
    inputs = [
        t.detach().requires_grad_(g) if t is not None else None for t, g in zip((x, weight, bias), needs_grad)
    ]
    wanted = [t for t, g in zip(inputs, needs_grad) if t is not None and g]

    def run(fn: Callable[..., torch.Tensor]) -> None:
        with torch.set_grad_enabled(bool(wanted)):
            y = fn(*inputs)
            if wanted:
                torch.autograd.grad(y, wanted, y.detach())

    times: dict[str, list[float]] = {name: [] for name in PATHS}
    for i in range(1 + ROUNDS):
        for name, fn in list(PATHS.items())[:: 1 if i % 2 == 0 else -1]:
            start = time.perf_counter()
            run(fn)
            if i:  # the first round pays for the kernels' set-up
                times[name].append(time.perf_counter() - start)
    return times


def _path(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    grad = torch.is_grad_enabled()
    needs_grad = (
        grad and x.requires_grad,
        grad and weight.requires_grad,
        grad and bias is not None and bias.requires_grad,
    )
    rows = x.numel() // x.shape[-1]
    key = (rows, *weight.shape[::-1], bias is not None, *needs_grad, torch.get_num_threads())
    path = _choices.get(key)
    if path is None:
        with _lock:  # one measurement at a time: two at once would time each other
            path = _choices.get(key)
            if path is None:
                rows_2d = x.reshape(-1, x.shape[-1]).contiguous()
                path = _choices[key] = faster_path(time_paths(rows_2d, weight, bias, needs_grad))
    return path


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: [..., C] -> [..., O], the same maths on every path.

    On CPU in float32 the product runs on the path measured faster for its shape and gradient
    needs (:func:`time_paths`, once per kind per process); the two paths agree to float32
    rounding. ``F.linear`` runs small products, other devices and dtypes, ``torch.compile``
    (its own layouts undo the trick; plain linears are what it fuses), products under a
    dispatch mode (FLOP counting, fake tensors: nothing to time) and everything when
    ``torch.backends.mkldnn.enabled`` is False.
    """
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or x.numel() * weight.shape[0] < MIN_MACS
        or not _ONEDNN
        or not torch.backends.mkldnn.enabled
        or torch.compiler.is_compiling()
        or _get_current_dispatch_mode() is not None
    ):
        return F.linear(x, weight, bias)
    return PATHS[_path(x, weight, bias)](x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) computed with :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

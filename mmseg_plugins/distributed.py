"""Data-parallel wrapper for GroupViT training: SyncBN on any backend.

GroupViT's projection heads hold BatchNorm layers. Under DDP each process would
normalise with its own share of the batch, so the model would differ from the
same global batch trained in one process. ``torch.nn.SyncBatchNorm`` fixes that
on GPUs only (it refuses CPU tensors, and DDP refuses it in a CPU module), and
mmcv's SyncBN needs compiled ops, so mmengine's ``sync_bn='torch'`` cannot run
on CPUs (gloo). The wrapper below converts BatchNorm to :class:`SyncBatchNorm`,
an autograd all-reduce of the batch moments that runs on NCCL and gloo alike.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch import nn


def _all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum over processes; the backward pass sums the gradients back to every process."""
    with warnings.catch_warnings():
        # deprecated in favour of functional collectives, which do not back-propagate
        warnings.simplefilter("ignore", FutureWarning)
        return dist_nn.all_reduce(x)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the batch of every process, on any backend.

    Not a subclass of ``nn.SyncBatchNorm``: DDP rejects those in CPU modules. Two all-reduces of
    C-vectors per layer (GroupViT has two BatchNorm layers, in the projection heads). Statistics
    are computed in fp32, as autocast does for BatchNorm. Without a process group, with one process
    or in eval mode it is plain BatchNorm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input [B, C, *], got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C] or [B, C, *]."""
        self._check_input_dim(x)
        if not self.training or _world_size() == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device)
        dist.all_reduce(count)
        # Two passes (mean, then centred moment) for the precision of a local BatchNorm.
        mean = _all_reduce_with_grad(xf.sum(dims)) / count
        centred = xf - mean.view(shape)
        var = _all_reduce_with_grad(centred.square().sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach(), count.item())
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average, as in nn.BatchNorm
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        unbiased = var * count / max(count - 1.0, 1.0)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer in ``module`` by :class:`SyncBatchNorm`.

    Parameters and buffers are shared with the original layers (same tensors).
    """
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        out = SyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_sync_batchnorm(child))
    return out


# mmengine's root registry: Runner.wrap_model looks the type up there, not in mmseg's child registry
@MODEL_WRAPPERS.register_module()
class GroupViTDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` with SyncBN and CPU (gloo) support.

    Args:
        module: the model, already on its device.
        sync_bn: convert BatchNorm layers to :class:`SyncBatchNorm` so that the
            statistics cover the global batch.
        device_ids: set by mmengine's runner to ``[LOCAL_RANK]``; dropped for a
            CPU model, where DDP requires ``None``.
        **kwargs: passed to ``MMDistributedDataParallel``.
    """

    def __init__(
        self, module: nn.Module, sync_bn: bool = True, device_ids: list[int] | None = None, **kwargs
    ) -> None:
        if sync_bn:
            module = convert_sync_batchnorm(module)
        if next(module.parameters()).device.type == "cpu":
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)

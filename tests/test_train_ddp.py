"""Two-process DDP on CPU (gloo) against one process with the same global batch.

Each process takes half of the global batch; the losses gather embeddings with gradients and the
wrapper's SyncBN normalises the projection heads over the global batch, so the averaged losses,
the gradients DDP averages and the BatchNorm running statistics must all equal those of one process
that sees the whole batch. The Gumbel noise of the grouping blocks is per-sample random (it would
differ with the batch split), so the assignment modules run noise-free (eval) in both.

The same spawned processes then train a few iterations through mmengine's Runner with
``launcher='pytorch'`` (the config's CPU-capable DDP wrapper).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from train_helpers import TINY_CONFIG, write_caption_folder, write_small_config

WORLD = 2
GLOBAL_BATCH = 8
K = 3


# the paper's losses, and the synthetic recipe's: duplicate-aware targets, multi-label loss on the
# best group (gathered [B, G, D] groups), the per-image noun-group loss and the unclaimed-group loss
# (vocabulary gathered by text id)
RECIPES = dict(
    paper=dict(
        duplicate_positives=False, group_multi_label=False, noun_group_weight=0.0, unclaimed_group_weight=0.0
    ),
    synthetic=dict(
        duplicate_positives=True, group_multi_label=True, noun_group_weight=1.0, unclaimed_group_weight=1.0
    ),
)


def _build(recipe: str) -> torch.nn.Module:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401
    from groupvit.layers.grouping import AssignAttention

    init_default_scope("mmseg")
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.update(model_name="groupvit_tiny", **RECIPES[recipe])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    for module in model.modules():
        if isinstance(module, AssignAttention):
            module.eval()  # no Gumbel noise
    return model


def _global_batch() -> dict:
    g = torch.Generator().manual_seed(123)
    images = torch.randn(GLOBAL_BATCH, 3, 64, 64, generator=g)
    text = torch.zeros(GLOBAL_BATCH, 1 + K, 77, dtype=torch.long)
    for b in range(GLOBAL_BATCH):
        for r in range(1 + K):
            n = 3 + (5 * b + r) % 11
            text[b, r, :n] = torch.randint(1, 49000, (n,), generator=g)
            text[b, r, n] = 49407
    text[5, 1] = text[2, 2]  # a prompt shared across the two halves (duplicate-aware targets)
    return dict(inputs=images, data_samples=dict(text=text, skipped=torch.tensor(0)))


def _step(model, forward, batch: dict) -> dict:
    """One forward / backward; returns the loss values (sorted by name) and every gradient."""
    data = model.data_preprocessor(batch, True)
    losses = forward(**data, mode="loss")
    names = sorted(k for k in losses if k.startswith("loss"))
    sum(losses[k] for k in names).backward()
    return dict(
        losses=torch.stack([losses[k].detach() for k in names]),
        grads={n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None},
        running={n: b.detach().clone() for n, b in model.named_buffers() if "running" in n},
    )


def _worker(rank: int, tmp: str) -> None:
    tmp_path = Path(tmp)
    os.environ.update(LOCAL_RANK=str(rank), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=rank, world_size=WORLD)
    from mmseg_plugins.distributed import GroupViTDistributedDataParallel, SyncBatchNorm

    half = GLOBAL_BATCH // WORLD
    batch = _global_batch()
    local = dict(
        inputs=batch["inputs"][rank * half : (rank + 1) * half],
        data_samples=dict(text=batch["data_samples"]["text"][rank * half : (rank + 1) * half], skipped=0),
    )
    results = {}
    for recipe in RECIPES:
        model = _build(recipe)
        ddp = GroupViTDistributedDataParallel(model, sync_bn=True, device_ids=[rank])
        assert any(isinstance(m, SyncBatchNorm) for m in ddp.module.modules())
        out = _step(ddp.module, ddp, local)
        dist.all_reduce(out["losses"])
        out["losses"] /= WORLD  # each process's loss averages its own rows of the global loss
        results[recipe] = out
    if rank == 0:
        torch.save(results, tmp_path / "ddp.pt")

    # the same through mmengine's runner: DDP wrapper from the config, a few iterations
    from mmengine.config import Config
    from mmseg.registry import RUNNERS

    cfg = Config.fromfile(tmp_path / "small.py")
    cfg.launcher = "pytorch"
    cfg.work_dir = str(tmp_path / "work")
    runner = RUNNERS.build(cfg)  # as tools/train.py: the config's runner_type
    assert type(runner.model).__name__ == "GroupViTDistributedDataParallel"
    runner.train()
    itc = runner.message_hub.get_scalar("train/loss_itc").current()
    if rank == 0:
        files = sorted(os.listdir(tmp_path / "work"))
        torch.save(
            dict(iter=runner.iter, loss_itc=float(itc), runner=type(runner).__name__, files=files),
            tmp_path / "runner.pt",
        )
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    data_root = write_caption_folder(tmp / "data", num=8)
    write_small_config(tmp / "small.py", data_root, batch_size=4, max_iters=6, log_interval=2)
    mp.spawn(_worker, args=(str(tmp),), nprocs=WORLD, join=True)
    return tmp


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_two_processes_match_one_process(ddp_results: Path, recipe: str) -> None:
    dist_out = torch.load(ddp_results / "ddp.pt")[recipe]
    model = _build(recipe)
    ref = _step(model, model, _global_batch())

    torch.testing.assert_close(dist_out["losses"], ref["losses"], rtol=1e-5, atol=1e-6)
    assert set(dist_out["grads"]) == set(ref["grads"])
    # float32 sums run in another order (gathered batch halves, SyncBN moments), so gradients agree
    # to ~1e-4 of their size; gradients that are zero in exact arithmetic (a bias before BatchNorm,
    # key biases under softmax, a bias that a LayerNorm removes) are rounding noise, hence the absolute term on the global scale.
    scale = max(float(g.abs().max()) for g in ref["grads"].values())
    worst = 0.0
    for name, grad in ref["grads"].items():
        diff = float((dist_out["grads"][name] - grad).abs().max())
        worst = max(worst, diff / scale)
        assert diff <= 2e-3 * float(grad.abs().max()) + 1e-4 * scale, name
    for name, buf in ref["running"].items():
        torch.testing.assert_close(dist_out["running"][name], buf, rtol=1e-4, atol=1e-6, msg=name)
    print(f"{recipe}: losses {ref['losses'].tolist()}, max |grad diff| / max |grad| {worst:.2e}")


def test_runner_trains_under_cpu_ddp(ddp_results: Path) -> None:
    out = torch.load(ddp_results / "runner.pt")
    assert out["iter"] == 6
    # GroupViTRunner: rank 0 alone wrote the checkpoint, through its temporary name
    assert out["runner"] == "GroupViTRunner"
    assert [f for f in out["files"] if "pth" in f] == ["iter_6.pth"]
    assert 0.0 < out["loss_itc"] < 10.0

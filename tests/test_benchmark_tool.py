"""tools/benchmark.py runs end to end on the tiny model (a smoke test: no timing is asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import benchmark  # noqa: E402


def test_benchmark_tiny_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["--model", "groupvit_tiny", "--seg-size", "64", "--seg-batch", "2", "--train-batch", "4"]
    report = benchmark.main([*argv, "--repeats", "1", "--warmup", "0", "--out", str(out)])
    assert json.loads(out.read_text())["machine"]["torch"] == torch.__version__
    assert all(err < 1e-4 for key, err in report["agreement"].items() if "disagreement" not in key)
    rows = {(r["workload"], r["impl"]): r for r in report["results"]}
    assert set(rows) == {(w, i) for w in ("seg64", "train64") for i in ("ours", "transformers")}
    for row in rows.values():
        assert row["images_per_s"] > 0 and row["peak_mib"] > 0 and row["gflop_per_image"] > 0
    # the same work on both sides: same image-tower FLOPs at inference
    assert rows["seg64", "ours"]["gflop_per_image"] == pytest.approx(
        rows["seg64", "transformers"]["gflop_per_image"], rel=0.05
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_benchmark_cuda_without_gpu_fails_clearly() -> None:
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        benchmark.main(["--device", "cuda"])


def test_hf_embeds_takes_tensor_or_output_object() -> None:
    # transformers 4.x returns the projected features, 5.x an output object holding them
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    x = torch.randn(2, 8)
    assert benchmark.wl.hf_embeds(x) is x
    assert benchmark.wl.hf_embeds(BaseModelOutputWithPooling(pooler_output=x)) is x

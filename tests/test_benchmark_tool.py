"""tools/benchmark.py runs end to end on the tiny model (a smoke test: no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
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
    machine = json.loads(out.read_text())["machine"]
    assert machine["torch"] == torch.__version__
    assert machine["isa"]["torch_capability"] == torch.backends.cpu.get_cpu_capability()
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


isa = benchmark.benchmark_isa


def test_cpu_flags_keeps_the_flags_that_pick_kernels() -> None:
    cpuinfo = "model name\t: Some CPU\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_tile vaes\n"
    assert isa.cpu_flags(cpuinfo) == ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]
    assert isa.cpu_flags("processor : 0\n") == []


def test_isa_env_caps_all_three_libraries_and_native_removes_caps() -> None:
    base = {"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}
    assert isa.isa_env("avx2", base) == {
        "PATH": "/bin",
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    }
    assert isa.isa_env("native", base) == {"PATH": "/bin"}
    with pytest.raises(ValueError, match="unknown instruction set 'sse'"):
        isa.isa_env("sse", base)


def test_child_argv_drops_isa_and_out() -> None:
    argv = ["--isa", "native", "avx2", "--repeats", "3", "--out", "a.json", "--isa=avx2", "--no-hf"]
    cmd = isa.child_argv(argv, "avx2", Path("b-avx2.json"))
    assert cmd[0] == sys.executable and Path(cmd[1]).name == "benchmark.py"
    assert cmd[2:] == ["--repeats", "3", "--no-hf", "--out", "b-avx2.json"]


def test_check_capability_rejects_a_child_that_ran_other_kernels() -> None:
    isa.check_capability("avx2", {"torch_capability": "AVX2"})
    isa.check_capability("native", {"torch_capability": "AVX512"})
    with pytest.raises(RuntimeError, match="ran with torch capability AVX512, not AVX2"):
        isa.check_capability("avx2", {"torch_capability": "AVX512"})


@pytest.mark.skipif("avx2" not in isa.cpu_flags(), reason="needs a CPU with AVX2")
def test_avx2_env_limits_a_fresh_torch_process() -> None:
    code = (
        "import os, torch; print(torch.backends.cpu.get_cpu_capability(), os.environ['ONEDNN_MAX_CPU_ISA'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=isa.isa_env("avx2"), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["AVX2", "AVX2"]

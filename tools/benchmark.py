"""Speed and memory of our GroupViT next to transformers' ``GroupViTModel`` on the same weights.

    python tools/benchmark.py --device cpu --repeats 5            # fp32, 2 threads by default
    python tools/benchmark.py --device cuda --compile             # bf16 autocast, train batch 256
    python tools/benchmark.py --isa native avx2                   # one process and table per ISA

Loads one set of random ``groupvit_s`` weights into both implementations, checks that their
outputs agree, then times (interleaved, ``--warmup`` + ``--repeats`` runs each, the median):

- ``seg``: zero-shot segmentation at ``--seg-size`` (image tower, assignment product, scoring
  against cached VOC class embeddings: 20 text classes + background = 21 channels), images/s;
- ``train``: one training step at 224 (forward, contrastive + multi-label losses with 1 caption
  + 3 prompts per image, backward, AdamW), images/s;

and reports peak memory (own weights, buffers, optimiser state and inputs + the most memory
allocated during one run: profiler allocation events on CPU, ``max_memory_allocated`` on CUDA)
and FLOPs (``FlopCounterMode``), with model FLOPs utilisation when the peak is known. A table is
printed and everything (machine, instruction set, load average, all run times) goes to a JSON file.
With ``--isa`` the benchmark re-runs itself once per instruction set in a child process whose
environment caps torch, oneDNN and MKL (``benchmark_isa.isa_env``), then prints one table per ISA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch.utils import flop_counter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_isa  # noqa: E402
import benchmark_workloads as wl  # noqa: E402

from groupvit.class_names import VOC_CLASSES  # noqa: E402
from groupvit.layers import linear as linear_paths  # noqa: E402
from groupvit.tokenizer import Tokenizer  # noqa: E402

# dense bf16 tensor-core peaks (TFLOP/s) for MFU; --peak-tflops overrides
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--model", default="groupvit_s")
    p.add_argument("--workloads", nargs="+", default=["seg", "train"], choices=["seg", "train"])
    p.add_argument("--seg-size", type=int, default=448, help="zero-shot input size (square)")
    p.add_argument("--seg-batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--train-batch", type=int, default=None, help="default 16 on CPU, 256 on CUDA")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per implementation first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores, max 2)")
    p.add_argument("--compile", action="store_true", help="add rows for our model under torch.compile")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute blocks in backward (both)")
    p.add_argument("--no-hf", action="store_true", help="time our model only")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (bf16 on CUDA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--isa",
        nargs="+",
        default=None,
        choices=sorted(benchmark_isa.ISA_LIMITS),
        help="re-run once per instruction set (a child process each, torch/oneDNN/MKL capped); "
        "JSON per ISA as <out stem>-<isa>.json",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="JSON path (default work_dirs/benchmark/<device>.json)"
    )
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int, device: torch.device
) -> dict[str, dict[str, list[float]]]:
    """Wall and process-CPU seconds of every function, alternating between them in each round (in
    reversed order every other round) so that a change of machine load hits all of them alike."""
    times = {name: {"wall": [], "cpu": []} for name in fns}
    for i in range(warmup + repeats):
        for name, fn in list(fns.items())[:: 1 if i % 2 == 0 else -1]:
            sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            if i >= warmup:
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.process_time() - cpu)
    return times


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
    return total


def resident_bytes(modules: Iterable[torch.nn.Module], optimizer=None, extra: Iterable = ()) -> int:
    """Bytes of weights, buffers, optimiser state and inputs: what lives across runs."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    if optimizer is not None:
        tensors += [v for state in optimizer.state.values() for v in state.values()]
    return tensor_bytes([*tensors, *extra])


def peak_run_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Most memory allocated during one call of ``fn`` on top of what existed before it."""
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    # CPU: the profiler reports every allocation made while it runs with a running total
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max([0, *totals])


# torch's counter knows the CUDA attention kernels but not the CPU flash kernel: same formulas
_CPU_SDPA_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: (
        lambda q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_flop_count(q, k, v)
    ),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda g, q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_backward_flop_count(g, q, k, v)
    ),
}


def count_flops(fn: Callable[[], object]) -> int:
    """Matmul, convolution and attention FLOPs of one call (forward and backward)."""
    with flop_counter.FlopCounterMode(display=False, custom_mapping=_CPU_SDPA_FLOPS) as counter:
        fn()
    return counter.get_total_flops()


def device_peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def machine_info(device: torch.device) -> dict:
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(device),
        "isa": benchmark_isa.isa_info(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_workload(
    label: str,
    batch: int,
    impls: dict[str, Callable[[], object]],
    eager_of: dict[str, str],
    resident: dict[str, Callable[[], int]],
    args: argparse.Namespace,
    device: torch.device,
    peak: float | None,
) -> list[dict]:
    """Time, then measure memory and FLOPs of every implementation of one workload."""
    load_before = os.getloadavg()
    # short runs are the most exposed to other processes' bursts: give them more rounds
    repeats = args.repeats * (3 if batch < 4 else 1)
    times = time_interleaved(impls, args.warmup, repeats, device)
    rows, flops = [], {}
    for name, fn in impls.items():
        base = eager_of.get(name, name)  # a compiled variant does the FLOPs of its eager original
        if base not in flops:
            flops[base] = count_flops(impls[base])
        wall = statistics.median(times[name]["wall"])
        row = {
            "workload": label,
            "batch": batch,
            "impl": name,
            "median_s": wall,
            "min_s": min(times[name]["wall"]),
            "images_per_s": batch / wall,
            "wall_s": times[name]["wall"],
            "cpu_s": times[name]["cpu"],
            "peak_mib": (resident[name]() + peak_run_bytes(fn, device)) / 2**20,
            "gflop_per_image": flops[base] / batch / 1e9,
            "tflops": flops[base] / wall / 1e12,
        }
        row["mfu"] = row["tflops"] / peak if peak else None
        rows.append(row)
    if "transformers" in times:
        ref = times["transformers"]["wall"]
        for row in rows:
            # per-round ratio, then the median: robust to load that changes between rounds
            row["speedup"] = statistics.median(r / t for r, t in zip(ref, times[row["impl"]]["wall"]))
            row["speedup_best"] = min(ref) / row["min_s"]  # fastest run against fastest run
    load = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    for row in rows:
        row["loadavg_before_after"] = load
    return rows


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'workload':<10}{'batch':>6}  {'implementation':<22}{'ms/batch':>10}{'img/s':>9}{'vs HF':>7}{'best':>7}"
        f"{'peak MiB':>10}{'GFLOP/img':>10}{'TFLOP/s':>9}{'MFU':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        speedup = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
        best = f"{r['speedup_best']:.2f}x" if r.get("speedup_best") is not None else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-"
        lines.append(
            f"{r['workload']:<10}{r['batch']:>6}  {r['impl']:<22}{1e3 * r['median_s']:>10.1f}"
            f"{r['images_per_s']:>9.2f}{speedup:>7}{best:>7}{r['peak_mib']:>10.0f}{r['gflop_per_image']:>10.1f}"
            f"{r['tflops']:>9.3f}{mfu:>7}"
        )
    return "\n".join(lines)


def default_out(args: argparse.Namespace) -> Path:
    return args.out or Path("work_dirs/benchmark") / f"{args.device}.json"


def run_per_isa(argv: list[str], args: argparse.Namespace) -> dict:
    """One child benchmark per ``--isa`` (sequential: they share the cores); one table each."""
    out = default_out(args)
    reports = {}
    for isa in args.isa:
        child_out = out.with_name(f"{out.stem}-{isa}.json")
        print(f"== --isa {isa}", flush=True)
        subprocess.run(
            benchmark_isa.child_argv(argv, isa, child_out), env=benchmark_isa.isa_env(isa), check=True
        )
        report = json.loads(child_out.read_text())
        benchmark_isa.check_capability(isa, report["machine"]["isa"])
        reports[isa] = report
    print()
    for isa, report in reports.items():
        print(f"--isa {isa}: {benchmark_isa.isa_label(report['machine']['isa'])}")
        print(format_table(report["results"]))
        print()
    return reports


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.isa:
        return run_per_isa(argv, args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to torch here; run with --device cpu")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads or max(1, min(2, os.cpu_count() or 1)))
    amp = torch.bfloat16 if device.type == "cuda" else None  # CPU runs in fp32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    train_batch = args.train_batch or (256 if device.type == "cuda" else 16)
    peak = device_peak_tflops(device, args.peak_tflops)
    with_hf = not args.no_hf

    ours = wl.build_ours(args.model, args.seed).to(device)
    hf = wl.build_hf(ours).to(device) if with_hf else None
    tokenizer = Tokenizer()
    classes = VOC_CLASSES[1:]  # 20 text classes; background is the thresholded channel 0
    report = {"machine": machine_info(device), "args": {k: str(v) for k, v in vars(args).items()}}
    rows: list[dict] = []

    if "seg" in args.workloads:
        seg = {"ours": wl.OursSegmentation(ours, classes, tokenizer, amp)}
        if with_hf:
            hf_seg = wl.HFSegmentation(wl.build_hf(ours, args.seg_size).to(device), classes, tokenizer, amp)
            if device.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = False  # agreement in true fp32
            report["agreement"] = wl.check_agreement(ours, hf, seg["ours"], hf_seg, args.seg_size)
            torch.backends.cuda.matmul.allow_tf32 = device.type == "cuda"
            print("max abs differences ours vs transformers:", json.dumps(report["agreement"]), flush=True)
            seg["transformers"] = hf_seg
        if args.compile:
            seg["ours+compile"] = wl.OursSegmentation(ours, classes, tokenizer, amp, compile=True)
        for batch in args.seg_batch:
            g = torch.Generator().manual_seed(args.seed + batch)
            images = torch.randn(batch, 3, args.seg_size, args.seg_size, generator=g).to(device)
            impls = {name: (lambda s=s, x=images: s(x)) for name, s in seg.items()}
            if args.compile:
                start = time.perf_counter()
                impls["ours+compile"]()
                report[f"compile_s_seg_{batch}"] = time.perf_counter() - start
            models = {"ours": [ours], "ours+compile": [ours], "transformers": [hf_seg.hf] if with_hf else []}
            resident = {n: (lambda m=models[n], x=images: resident_bytes(m, extra=[x])) for n in impls}
            rows += run_workload(
                f"seg{args.seg_size}", batch, impls, {"ours+compile": "ours"}, resident, args, device, peak
            )
            print(format_table(rows[-len(impls) :]), flush=True)

    if "train" in args.workloads:
        size = ours.config.vision.image_size
        g = torch.Generator().manual_seed(args.seed)
        images = torch.randn(train_batch, 3, size, size, generator=g).to(device)
        tokens = wl.make_tokens(train_batch, 4, seed=args.seed).to(device)
        steps = {"ours": wl.OursTrainStep(ours, amp, grad_checkpointing=args.grad_checkpointing)}
        if with_hf:
            steps["transformers"] = wl.HFTrainStep(hf, amp, grad_checkpointing=args.grad_checkpointing)
        if args.compile:
            # a second copy of the weights: the eager and compiled steps each own an optimiser
            twin = wl.build_ours(args.model, args.seed).to(device)
            steps["ours+compile"] = wl.OursTrainStep(
                twin, amp, compile=True, grad_checkpointing=args.grad_checkpointing
            )
        impls = {name: (lambda s=s: s(images, tokens)) for name, s in steps.items()}
        if args.compile:
            start = time.perf_counter()
            impls["ours+compile"]()
            report["compile_s_train"] = time.perf_counter() - start
        models = {
            "ours": ours,
            "ours+compile": steps.get("ours+compile") and steps["ours+compile"].model,
            "transformers": hf,
        }
        resident = {
            n: (lambda m=models[n], o=steps[n].optimizer: resident_bytes([m], o, extra=[images, tokens]))
            for n in impls
        }
        rows += run_workload(
            f"train{size}", train_batch, impls, {"ours+compile": "ours"}, resident, args, device, peak
        )
        print(format_table(rows[-len(impls) :]), flush=True)

    report["results"] = rows
    # the kernel of our large CPU float32 products (groupvit.layers.linear: oneDNN on AVX-512, else BLAS)
    report["linear_path"] = "onednn" if linear_paths.onednn_preferred() else "blas"
    print(f"linear path: {report['linear_path']}")
    print()
    print(
        f"{report['machine']['cpu']}, {report['machine']['torch_threads']} threads, torch {torch.__version__}, "
        f"{'bf16 autocast' if amp else 'fp32'}; load average {os.getloadavg()}"
    )
    print(f"instruction set: {benchmark_isa.isa_label(report['machine']['isa'])}")
    print(format_table(rows))
    out = default_out(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()

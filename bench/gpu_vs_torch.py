#!/usr/bin/env python3
"""Side-by-side GPU benchmark: timm's model in PyTorch (eager, and torch.compile fullgraph) vs vitrt,
same GPU, same input batch on the device, CUDA-event timing, medians after warm-up.

torch.compile mode per batch: max-autotune at the smallest and largest batch, reduce-overhead in
between (--compile-mode overrides; "none" skips compiling). The table says which mode each figure used.
A roofline line compares vitrt's achieved TFLOP/s with an 8192^3 bf16 cuBLAS product measured in the
same run. It counts the model's FLOPs (every token through every block, as PyTorch computes them);
for class-token models vitrt executes fewer, since the last block's output is needed for the class
token only.

Per batch, eager, the compiled model and vitrt (a `vitrt bench` process of its own) are timed in turn,
--rounds times (default 3), so that drift of the GPU's clock and temperature reaches all three alike; the
table gives each one's median and the ratio of the medians, with the lowest and highest per-round ratio.

With --tune, `vitrt tune` first times the GEMM algorithms and attention variants for these batch sizes
(its wall time is printed) into --tune-cache, which the vitrt rows then use.

usage: python3 bench/gpu_vs_torch.py --vitrt build/bin/vitrt [--model vit_base_patch16_224]
                                     [--batches 1,2,4,...] [--precision bf16] [--compile-mode auto]
                                     [--rounds 3] [--tune] [--tune-cache FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

DEFAULT_BATCHES = {"vit_base_patch16_224": [1, 2, 4, 8, 16, 32, 64, 128, 256],
                   "vit_large_patch16_384": [1, 8, 32, 64, 128]}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "tf32": torch.float32}


def time_cuda(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def gemm_rate():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = time_cuda(lambda: a @ b, 3, 10)
    return 2 * 8192 ** 3 / (ms * 1e-3) / 1e12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vitrt", required=True)
    ap.add_argument("--model", default="vit_base_patch16_224",
                    help="a timm name, or several comma separated (each gets its table)")
    ap.add_argument("--batches")
    ap.add_argument("--precision", default="bf16", choices=list(DTYPES))
    ap.add_argument("--compile-mode", default="auto", help="auto | none | reduce-overhead | max-autotune")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3,
                    help="times each of eager, torch.compile and vitrt is timed per batch, in turn (medians reported)")
    ap.add_argument("--json")
    ap.add_argument("--tune", action="store_true", help="run `vitrt tune` for these batches first")
    ap.add_argument("--tune-cache", help="tuning cache for vitrt (default: vitrt's own default)")
    ap.add_argument("--residual-16bit", action="store_true",
                    help="vitrt keeps the residual stream in the 16-bit type, as PyTorch (default: fp32)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, not {args.rounds}")
    rate = gemm_rate()
    results = []
    for name in args.model.split(","):
        r = bench_model(args, name, rate)
        if r is None:
            return 1
        results.append(r)
    if args.json:
        json.dump(results, open(args.json, "w"), indent=1)
    return 0


def bench_model(args, model_name, rate):
    import timm

    batches = [int(b) for b in args.batches.split(",")] if args.batches else DEFAULT_BATCHES[model_name]
    dt = DTYPES[args.precision]
    tf32 = args.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    model = timm.create_model(model_name, pretrained=False).eval().to("cuda", dt)
    size = model.pretrained_cfg["input_size"][-1]
    gflop = None
    rows = []
    cache = (["--tune-cache", args.tune_cache] if args.tune_cache else []) + (["--residual-16bit"] if args.residual_16bit else [])
    tune_s = None
    if args.tune:
        t0 = time.perf_counter()
        out = subprocess.run([args.vitrt, "tune", "--model", model_name, "--device", "cuda", "--precision",
                              args.precision, "--batch", ",".join(map(str, batches))] + cache,
                             capture_output=True, text=True)
        tune_s = time.perf_counter() - t0
        print(out.stdout[-3000:], out.stderr[-2000:], flush=True)
        if out.returncode != 0:
            return None
    with tempfile.TemporaryDirectory() as tmp:
        x_all = torch.randn(max(batches), 3, size, size, generator=torch.Generator().manual_seed(0))
        x_path = os.path.join(tmp, "x.npy")
        np.save(x_path, x_all.numpy())
        info = json.loads(subprocess.run([args.vitrt, "info", model_name, "--json"], capture_output=True, text=True,
                                         check=True).stdout)
        gflop = info["gflops_per_image"]
        commit = None

        for i, b in enumerate(batches):
            x = x_all[:b].to("cuda", dt)
            mode = args.compile_mode
            if mode == "auto":
                mode = "max-autotune" if i in (0, len(batches) - 1) else "reduce-overhead"
            with torch.inference_mode():
                torch.cuda.reset_peak_memory_stats()
                model(x)
                torch.cuda.synchronize()
                eager_mem = torch.cuda.max_memory_allocated() / 2 ** 20
                cm, comp_s = None, float("nan")
                if mode != "none":
                    torch._dynamo.reset()
                    cm = torch.compile(model, mode=mode, fullgraph=True, dynamic=False)
                    t0 = time.perf_counter()
                    for _ in range(3):
                        cm(x)
                    torch.cuda.synchronize()
                    comp_s = time.perf_counter() - t0
                # Rounds of eager, compiled and vitrt in turn (vitrt: a process of its own per round, the
                # forward timed with CUDA events on its stream), so that the GPU's clock and temperature
                # drift reaches all three alike.
                eager_t, comp_t, vit_t = [], [], []
                for _ in range(args.rounds):
                    eager_t.append(time_cuda(lambda: model(x), 5, args.iters))
                    comp_t.append(time_cuda(lambda: cm(x), 5, args.iters) if cm is not None else float("nan"))
                    out = subprocess.run([args.vitrt, "bench", "--model", model_name, "--device", "cuda", "--precision",
                                          args.precision, "--batch", str(b), "--iters", str(args.iters), "--warmup", "10",
                                          "--input", x_path, "--json"] + cache, capture_output=True, text=True)
                    if out.returncode != 0:
                        print(out.stderr)
                        return None
                    vj = json.loads(out.stdout)
                    commit = vj["commit"]
                    vrow = vj["rows"][0]
                    vit_t.append(vrow["latency_ms_median"])
            eager, comp, v = statistics.median(eager_t), statistics.median(comp_t), statistics.median(vit_t)
            best = min(eager, comp) if comp == comp else eager
            per_round = [(min(e, c) if c == c else e) / w for e, c, w in zip(eager_t, comp_t, vit_t)]
            rows.append(dict(batch=b, eager_ms=eager, compile_ms=comp, compile_mode=mode, compile_s=comp_s,
                             vitrt_ms=v, ratio=best / v, ratio_min=min(per_round), ratio_max=max(per_round),
                             rounds=dict(eager_ms=eager_t, compile_ms=comp_t, vitrt_ms=vit_t),
                             eager_peak_mib=eager_mem, vitrt_device_mib=vrow["device_mib"], vitrt_tflops=gflop * b / v))
            print(f"batch {b}: eager {eager:.3f} ms, compile[{mode}] {comp:.3f} ms ({comp_s:.0f} s), vitrt {v:.3f} ms, "
                  f"x{best / v:.2f} (rounds {' '.join(f'{r:.3f}' for r in per_round)})", flush=True)

    print(f"\n{model_name}, {args.precision}, {torch.cuda.get_device_name()}, torch {torch.__version__}, timm "
          f"{timm.__version__}, vitrt {commit} (residual stream {args.precision if args.residual_16bit and args.precision in ('bf16', 'fp16') else 'fp32'}); "
          f"{args.iters} timed iterations after warm-up, medians, CUDA events; {args.rounds} round(s) of the three in "
          f"turn, each engine's median over the rounds\n")
    print("| batch | eager ms | eager img/s | torch.compile ms | img/s | mode | compile s | vitrt ms | vitrt img/s | "
          "vitrt / best PyTorch | per round, lowest-highest |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        b = r["batch"]
        print(f"| {b} | {r['eager_ms']:.3f} | {b * 1e3 / r['eager_ms']:,.0f} | {r['compile_ms']:.3f} | "
              f"{b * 1e3 / r['compile_ms']:,.0f} | {r['compile_mode']} | {r['compile_s']:.0f} | {r['vitrt_ms']:.3f} | "
              f"{b * 1e3 / r['vitrt_ms']:,.0f} | {r['ratio']:.3f}x | {r['ratio_min']:.3f}-{r['ratio_max']:.3f} |")
    if tune_s is not None:
        print(f"\ntuning: `vitrt tune` for batches {','.join(map(str, batches))} took {tune_s:.1f} s (wall, process start to exit)")
    last = rows[-1]
    print(f"\nroofline: vitrt {last['vitrt_tflops']:.0f} TFLOP/s at batch {last['batch']} ({gflop:.1f} GFLOP/image, the model's count) vs "
          f"{rate:.0f} TFLOP/s for an 8192^3 bf16 cuBLAS product in this run ({last['vitrt_tflops'] / rate:.0%})")
    print(f"memory at batch {last['batch']}: PyTorch eager peak {last['eager_peak_mib']:.0f} MiB, vitrt session "
          f"{last['vitrt_device_mib']:.0f} MiB (weights + arena + workspace)")
    return {"model": model_name, "precision": args.precision, "gemm_tflops": rate, "tune_s": tune_s, "rows": rows}


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Where PyTorch's time goes: the CUDA kernels of one forward of timm's model, per kernel and per kind
(GEMM, attention, Triton-fused, other), from torch.profiler over back-to-back forwards after warm-up.

Modes: eager, and torch.compile(fullgraph=True) in "default" (Inductor's kernels without CUDA graphs:
what "reduce-overhead" replays) or any other mode name ("max-autotune-no-cudagraphs" compiles for about
two minutes at batch 256 of vit_base). CUDA-graph modes hide their kernels from the profiler, so use
their no-graph counterparts. Set against `bench/op_times` (vitrt's ops of one block), this shows which
of vitrt's kernels replace which of PyTorch's.

usage: python3 bench/torch_kernels.py [--model vit_base_patch16_224] [--batch 256] [--precision bf16]
                                      [--modes eager,default] [--iters 10] [--top 20]
"""
import argparse
import collections
import time

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def kind(name):
    n = name.lower()
    if any(k in n for k in ("flash", "fmha", "sdpa", "attention")):
        return "attention"
    if any(k in n for k in ("nvjet", "gemm", "xmma", "cutlass", "triton_tem")):
        return "gemm/conv"
    if n.startswith("triton"):
        return "triton fused"
    return "other"


def profile_mode(model, x, mode, iters):
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        f = model
        if mode != "eager":
            torch._dynamo.reset()
            f = torch.compile(model, mode=None if mode == "default" else mode, fullgraph=True, dynamic=False)
        t0 = time.perf_counter()
        for _ in range(3):
            f(x)
        torch.cuda.synchronize()
        warm_s = time.perf_counter() - t0
        for _ in range(5):
            f(x)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(iters):
                f(x)
            torch.cuda.synchronize()
    per_kernel = collections.defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            t = e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
            per_kernel[e.name][0] += t / iters
            per_kernel[e.name][1] += 1
    return warm_s, per_kernel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--precision", default="bf16", choices=list(DTYPES))
    ap.add_argument("--modes", default="eager,default")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    import timm

    dt = DTYPES[args.precision]
    model = timm.create_model(args.model, pretrained=False).eval().to("cuda", dt)
    size = model.pretrained_cfg["input_size"][-1]
    x = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to("cuda", dt)
    print(f"{args.model}, {args.precision}, batch {args.batch}, {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"timm {timm.__version__}; kernel times per forward, mean of {args.iters} back-to-back forwards")
    for mode in args.modes.split(","):
        warm_s, per_kernel = profile_mode(model, x, mode, args.iters)
        total = sum(v[0] for v in per_kernel.values())
        kinds = collections.Counter()
        for name, (us, _) in per_kernel.items():
            kinds[kind(name)] += us
        print(f"\n### {mode} (first 3 calls {warm_s:.0f} s)\n")
        print(f"kernel time per forward {total / 1e3:.3f} ms: " +
              ", ".join(f"{k} {v / 1e3:.3f}" for k, v in kinds.most_common()) + "\n")
        print("| us per forward | launches | kind | kernel |")
        print("|---:|---:|---|---|")
        for name, (us, n) in sorted(per_kernel.items(), key=lambda kv: -kv[1][0])[:args.top]:
            print(f"| {us:.1f} | {n // args.iters} | {kind(name)} | `{name[:120]}` |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""cuBLAS(Lt) GEMM rates at the ViT GEMM shapes: bf16 against FP8 (e4m3 operands, per-tensor scales,
bf16 output) through PyTorch's torch._scaled_mm, on the GPU this runs on. A planning figure for an FP8
precision: how much of the GEMM time FP8 operands could save, before any quantization cost.

CUDA-event timing, median of --iters runs after warm-up; the L2 is not flushed (operands at batch 256
are far larger than the L2).

usage: python3 bench/fp8_gemm_rates.py [--tokens 50432] [--iters 50]
"""
import argparse
import statistics

import torch


def time_ms(fn, iters):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256 * 197, help="GEMM rows (batch x tokens)")
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    m = args.tokens
    dev = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, rows {m}")
    print("| GEMM (rows x in -> out) | bf16 ms | bf16 TFLOP/s | fp8 ms | fp8 TFLOP/s | fp8 / bf16 time |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, k, n in [("qkv", 768, 2304), ("proj", 768, 768), ("fc1", 768, 3072), ("fc2", 3072, 768),
                       ("square 8192", 8192, 8192)]:
        rows = 8192 if name.startswith("square") else m
        x = torch.randn(rows, k, device=dev, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) / k ** 0.5
        b16 = time_ms(lambda: torch.nn.functional.linear(x, w), args.iters)
        x8 = x.to(torch.float8_e4m3fn)
        w8 = w.to(torch.float8_e4m3fn)  # [n, k] row-major: its transpose is the column-major B scaled_mm wants
        one = torch.ones((), device=dev, dtype=torch.float32)
        f8 = time_ms(lambda: torch._scaled_mm(x8, w8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
                     args.iters)
        flop = 2.0 * rows * k * n
        print(f"| {name} {rows}x{k}->{n} | {b16:.4f} | {flop / b16 / 1e9:.0f} | {f8:.4f} | {flop / f8 / 1e9:.0f} | "
              f"{f8 / b16:.2f}x |")


if __name__ == "__main__":
    main()

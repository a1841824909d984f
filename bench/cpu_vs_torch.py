#!/usr/bin/python3
"""Side-by-side CPU benchmark: vitrt vs PyTorch on the same machine, threads and input.

PyTorch side: Debian's python3-torch (CPU), fp32, eval + no_grad, a ViT-B/16 with timm's structure
(timm itself is not packaged for Debian): Linear/LayerNorm/GELU modules and timm's non-fused attention
path (q @ k^T, softmax, @ v; torch 1.13 has no scaled_dot_product_attention). Both run the same
float32 input batch; rounds alternate between the engines and each figure is the median over all
timed iterations.

usage: /usr/bin/python3 bench/cpu_vs_torch.py build/release/bin/vitrt [--batch 8] [--threads N] [--iters 10]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * (C // self.heads) ** -0.5) @ k.transpose(-2, -1)
        x = x + self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, img=224, patch=16, dim=768, depth=12, heads=12, mlp=3072, classes=1000):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def vitrt_bench(vitrt, x_path, batch, threads, iters, precision):
    out = subprocess.run([vitrt, "bench", "--model", "vit_base_patch16_224", "--batch", str(batch), "--threads",
                          str(threads), "--iters", str(iters), "--warmup", "2", "--precision", precision,
                          "--input", x_path, "--json", "--samples"], check=True, capture_output=True, text=True)
    j = json.loads(out.stdout)
    return j["rows"][0]["samples_ms"], j


def loaded_blas():
    libs = {l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.split()[-1]}
    return ", ".join(sorted(os.path.realpath(p) for p in libs)) or "no BLAS library mapped"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vitrt")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ViT().eval()
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    samples = {"pytorch fp32": [], "vitrt fp32": [], "vitrt bf16": []}
    meta = {}
    with tempfile.TemporaryDirectory() as d:
        x_path = os.path.join(d, "x.npy")
        np.save(x_path, x.numpy())
        with torch.no_grad():
            for _ in range(2):
                model(x)
            for _ in range(args.rounds):
                for _ in range(args.iters):
                    t0 = time.perf_counter()
                    model(x)
                    samples["pytorch fp32"].append((time.perf_counter() - t0) * 1e3)
                for p in ("fp32", "bf16"):
                    s, meta[p] = vitrt_bench(args.vitrt, x_path, args.batch, args.threads, args.iters, p)
                    samples[f"vitrt {p}"] += s
    base = statistics.median(samples["pytorch fp32"])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"vit_base_patch16_224, batch {args.batch}, {args.threads} threads, {cpu}; torch {torch.__version__} "
          f"(BLAS: {loaded_blas()}); vitrt {meta['fp32']['commit']} on {meta['fp32']['device']}; "
          f"{args.rounds} rounds x {args.iters} iters, medians\n")
    print("| engine | precision | median ms | img/s | GFLOP/s | vs PyTorch fp32 |")
    print("|---|---|---:|---:|---:|---:|")
    rows = []
    for name, s in samples.items():
        med = statistics.median(s)
        engine, prec = name.split()
        if engine == "vitrt":
            prec = meta[prec]["precision"]
        ips = args.batch * 1e3 / med
        rows.append({"engine": engine, "precision": prec, "median_ms": med, "img_per_s": ips, "ratio": base / med})
        print(f"| {engine} | {prec} | {med:.1f} | {ips:.2f} | {ips * 35.15:.0f} | {base / med:.2f}x |")
    if args.json:
        json.dump({"batch": args.batch, "threads": args.threads, "cpu": cpu, "rows": rows}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

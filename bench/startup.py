#!/usr/bin/env python3
"""Process start to first finished batch: wall time of `vitrt run` on a real-sized checkpoint (timm's
architecture with random weights saved as safetensors), one image in, logits out as .npy, with a tuning
cache present (made by `vitrt tune` for batch 1 first, unless --no-tune). Median of --runs runs; the
checkpoint file is in the page cache (written just before), as on a serving machine.

usage: python3 bench/startup.py --vitrt build/bin/vitrt [--model vit_large_patch16_384] [--precision bf16]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vitrt", required=True)
    ap.add_argument("--model", default="vit_large_patch16_384")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-tune", action="store_true")
    args = ap.parse_args()
    import timm
    import torch
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        model = timm.create_model(args.model, pretrained=False).eval()
        ckpt = os.path.join(tmp, "model.safetensors")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, ckpt)
        size = model.pretrained_cfg["input_size"][-1]
        x = os.path.join(tmp, "x.npy")
        np.save(x, torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).numpy())
        cache = os.path.join(tmp, "tune-cache.json")
        common = ["--device", "cuda", "--precision", args.precision, "--tune-cache", cache if not args.no_tune else "off"]
        if not args.no_tune:
            t0 = time.perf_counter()
            subprocess.run([args.vitrt, "tune", "--weights", ckpt, "--batch", "1"] + common, check=True,
                           capture_output=True)
            print(f"vitrt tune (batch 1): {time.perf_counter() - t0:.1f} s")
        times = []
        for _ in range(args.runs):
            y = os.path.join(tmp, "y.npy")
            t0 = time.perf_counter()
            out = subprocess.run([args.vitrt, "run", "--weights", ckpt, "--input", x, "--output", y] + common,
                                 capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if out.returncode != 0:
                print(out.stderr)
                return 1
            assert np.isfinite(np.load(y)).all()
        print(f"{args.model} {args.precision}: process start to first finished batch (vitrt run, batch 1, "
              f"checkpoint {os.path.getsize(ckpt) / 2**30:.2f} GiB fp32 safetensors, tuning cache "
              f"{'off' if args.no_tune else 'present'}): median {statistics.median(times):.2f} s over {len(times)} "
              f"runs; all: {', '.join(f'{t:.2f}' for t in times)}")
        if out.stderr.strip():
            print("stderr of the last run:", out.stderr.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())

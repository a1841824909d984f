#!/usr/bin/env python3
"""PyTorch's attention kernels alone, timed as bench/op_times times vitrt's: the cuDNN and flash backends
of scaled_dot_product_attention on q, k, v viewed out of one [batch, tokens, 3, heads, 64] tensor as
timm's Attention takes them, bf16, median of 7 bursts of 20 calls between CUDA events after warm-up
(short bursts, so at full clock; bench/torch_kernels.py profiles them inside whole forwards instead).

usage: python3 bench/torch_sdpa.py [--shapes 1x577x16,8x577x16,64x577x16,1x197x12,256x197x12]
"""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from gpu_vs_torch import time_cuda  # same directory

BACKENDS = (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION))


def time_us(fn, bursts=7, per=20):
    """Median µs per call of `bursts` event-timed bursts of `per` calls (gpu_vs_torch's timer)."""
    return time_cuda(lambda: [fn() for _ in range(per)], 5, bursts) / per * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1x577x16,8x577x16,64x577x16,1x197x12,256x197x12",
                    help="batch x tokens x heads, comma separated (head dim 64)")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; "
          "us per call (median of 7 bursts of 20)\n")
    print("| batch | tokens | heads | " + " | ".join(n for n, _ in BACKENDS) + " |")
    print("|---:|---:|---:|" + "---:|" * len(BACKENDS))
    for shape in args.shapes.split(","):
        b, n, h = (int(x) for x in shape.split("x"))
        qkv = torch.randn(b, n, 3, h, 64, device="cuda", dtype=torch.bfloat16)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        cells = []
        for _, backend in BACKENDS:
            try:
                with sdpa_kernel([backend]):
                    us = time_us(lambda: F.scaled_dot_product_attention(q, k, v))
                cells.append(f"{us:.1f}")
            except RuntimeError as e:  # the backend does not take the shape here
                cells.append(f"n/a ({str(e).splitlines()[0][:40]})")
        print(f"| {b} | {n} | {h} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

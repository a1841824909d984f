#!/usr/bin/python3
"""Real-data check: vitrt classify on ../shared/data/imagenet-sample with the real DeiT-Tiny.

Asserts top-1 agreement with timm's reference.json >= 99% and top-1 accuracy within 0.4 points of the
reference's. Also runs `vitrt preprocess` + `vitrt run` and reports how far vitrt's logits are from the
reference top-5 logits. Exits 77 (CTest skip) when the data folder is absent.

usage: real_data_check.py VITRT_BINARY DATA_DIR [--precision fp32]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vitrt")
    ap.add_argument("data")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--min-agreement", type=float, default=0.99)
    ap.add_argument("--max-acc-gap", type=float, default=0.004)
    args = ap.parse_args()

    weights = os.path.join(args.data, "deit_tiny_patch16_224", "model.safetensors")
    sample = os.path.join(args.data, "imagenet-sample")
    if not (os.path.isfile(weights) and os.path.isfile(os.path.join(sample, "reference.json"))):
        print(f"SKIP: real data not found under {args.data} (needs ../shared/data)")
        return 77
    ref = json.load(open(os.path.join(sample, "reference.json")))
    entries = ref["images"]
    paths = [os.path.join(sample, e["image"]) for e in entries]
    common = ["--model", "deit_tiny_patch16_224", "--weights", weights]

    out = subprocess.run([args.vitrt, "classify", *common, "--precision", args.precision, "--json", "-k", "5",
                          *paths], check=True, capture_output=True, text=True)
    results = json.loads(out.stdout)
    assert len(results) == len(entries), f"{len(results)} results for {len(entries)} images"
    agree = correct = ref_correct = 0
    for e, r in zip(entries, results):
        assert r["image"].endswith(e["image"]), (r["image"], e["image"])
        top1 = r["top"][0]["index"]
        agree += top1 == e["reference_top5"][0]
        correct += top1 == e["label"]
        ref_correct += e["reference_top5"][0] == e["label"]
    n = len(entries)
    agreement, acc, ref_acc = agree / n, correct / n, ref_correct / n

    with tempfile.TemporaryDirectory() as tmp:
        x, y = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        subprocess.run([args.vitrt, "preprocess", *common, "-o", x, *paths], check=True)
        subprocess.run([args.vitrt, "run", *common, "--precision", args.precision, "-i", x, "-o", y], check=True)
        logits = np.load(y)
    ref_logits = np.array([e["reference_top5_logits"] for e in entries])
    ours = np.take_along_axis(logits, np.array([e["reference_top5"] for e in entries]), axis=1)
    diff = np.abs(ours - ref_logits)

    print(f"precision {args.precision}: top-1 agreement {agreement:.2%} ({agree}/{n}), accuracy {acc:.2%} "
          f"(reference {ref_acc:.2%}, stored {ref['reference_top1']:.2%}); top-5 logits |diff| max {diff.max():.4g}, "
          f"median {np.median(diff):.4g}")
    ok = agreement >= args.min_agreement and abs(acc - ref["reference_top1"]) <= args.max_acc_gap + 1e-9
    if not ok:
        print(f"FAIL: need agreement >= {args.min_agreement:.0%} and accuracy within "
              f"{args.max_acc_gap * 100:.1f} points of {ref['reference_top1']:.1%}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""CLI contract: --help everywhere (exit 0), usage errors exit 2, runtime errors exit 1 with one line,
and the JSON shapes of classify, info and bench.

usage: cli_check.py VITRT_BINARY GOLDEN_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

vitrt, golden = sys.argv[1], sys.argv[2]
failures = []


def run(*args):
    return subprocess.run([vitrt, *args], capture_output=True, text=True, timeout=300)


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


for sub in ["classify", "run", "preprocess", "bench", "info"]:
    r = run(sub, "--help")
    expect(r.returncode == 0 and "Usage" in r.stdout, f"{sub} --help exits 0 with usage")
r = run("--help")
expect(r.returncode == 0 and "classify" in r.stdout, "top-level --help lists subcommands")

usage = [[], ["frobnicate"], ["classify"], ["classify", "--top-k", "0", "x.jpg"], ["bench", "--batch", "a,b"],
         ["run", "--model", "vit_tiny_patch16_224"], ["classify", "--precision", "fp8", "--model", "x", "y"],
         ["classify", "/nonexistent.jpg"], ["bench"]]
for args in usage:
    r = run(*args)
    expect(r.returncode == 2, f"usage error exits 2: vitrt {' '.join(args)} -> {r.returncode}")

with tempfile.TemporaryDirectory() as tmp:
    img = os.path.join(tmp, "cat.png")
    Image.fromarray((np.random.default_rng(0).random((57, 83, 3)) * 255).astype(np.uint8)).save(img)
    bad = os.path.join(tmp, "bad.jpg")
    open(bad, "wb").write(b"\xff\xd8\xff\xe0garbage")
    junk = os.path.join(tmp, "junk.safetensors")
    open(junk, "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    runtime = [["classify", "--model", "vit_tiny_patch16_224", bad],
               ["classify", "--weights", junk, img],
               ["classify", "--model", "vit_unknown", img],
               ["info", "not_a_model_or_file"],
               ["run", "--model", "vit_tiny_patch16_224", "-i", img, "-o", os.path.join(tmp, "y.npy")]]
    for args in runtime:
        r = run(*args)
        lines = r.stderr.strip().splitlines()
        expect(r.returncode == 1 and lines and lines[-1].startswith("vitrt: error: "),
               f"runtime error exits 1 with a message: vitrt {' '.join(args[:3])} -> {r.returncode} {lines[-1:] }")

    fx = os.path.join(golden, "hf_vit_classifier")
    r = run("classify", "--weights", os.path.join(fx, "model.safetensors"), "--json", "-k", "3", img, img)
    ok = r.returncode == 0
    if ok:
        out = json.loads(r.stdout)
        ok = (isinstance(out, list) and len(out) == 2 and all(set(o) == {"image", "top"} for o in out)
              and all(len(o["top"]) == 3 and all(set(t) == {"index", "label", "prob"} for t in o["top"]) for o in out)
              and out[0]["top"][0]["label"].startswith("hf_class_")
              and abs(sum(t["prob"] for t in out[0]["top"])) <= 1.0 + 1e-6
              and out[0]["top"][0]["prob"] >= out[0]["top"][1]["prob"])
    expect(ok, "classify --json shape, labels from the checkpoint's config.json")
    r = run("classify", "--weights", os.path.join(fx, "model.safetensors"), img)
    expect(r.returncode == 0 and r.stdout.startswith(img) and "hf_class_" in r.stdout, "classify text output")

    r = run("info", "vit_base_patch16_224", "--json")
    info = json.loads(r.stdout) if r.returncode == 0 else {}
    expect(info.get("params") == 86567656 and abs(info.get("gflops_per_image", 0) - 35.1) < 0.2, "info --json params/GFLOPs")
    r = run("info", "--list")
    expect(r.returncode == 0 and "deit_base_distilled_patch16_224" in r.stdout, "info --list")

    r = run("bench", "--model", "vit_tiny_patch16_224", "--batch", "1,2", "--iters", "2", "--warmup", "1", "--json")
    b = json.loads(r.stdout) if r.returncode == 0 else {}
    expect([row["batch"] for row in b.get("rows", [])] == [1, 2] and "synthetic" in r.stderr
           and all(k in b for k in ("device", "commit", "precision")), "bench --json rows with provenance, synthetic notice")

    x = os.path.join(tmp, "x.npy")
    r = run("preprocess", "--model", "vit_tiny_patch16_224", "-o", x, img, img)
    arr = np.load(x) if r.returncode == 0 else None
    expect(arr is not None and arr.shape == (2, 3, 224, 224) and arr.dtype == np.float32, "preprocess writes [2,3,224,224] float32")

if failures:
    print(f"{len(failures)} CLI checks failed")
    sys.exit(1)

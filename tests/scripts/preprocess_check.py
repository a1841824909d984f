#!/usr/bin/python3
"""vitrt preprocess against PIL + torchvision (Debian's python3-pil, python3-torchvision) on generated
images of odd sizes and every colour mode vitrt converts: RGB / grayscale / CMYK JPEG, RGB / RGBA /
palette / grayscale / gray+alpha / 16-bit RGB PNG. Compared in [0,1] units before normalization:
>= 99.9% of elements within 1/255 and none further than 2/255.

usage: preprocess_check.py VITRT_BINARY
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

vitrt = sys.argv[1]
rng = np.random.default_rng(1234)

# (built-in or fixture, input size, interpolation, crop_pct, squash, mean, std)
HALF = (0.5, 0.5, 0.5)
IMNET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
MODELS = {
    "vit_base_patch16_224": (224, T.InterpolationMode.BICUBIC, 0.9, False, HALF, HALF),
    "deit_tiny_patch16_224": (224, T.InterpolationMode.BICUBIC, 0.9, False, *IMNET),
    "vit_base_patch16_384": (384, T.InterpolationMode.BICUBIC, 1.0, False, HALF, HALF),
}
here = os.path.dirname(os.path.abspath(__file__))
hf = os.path.join(here, "..", "golden", "hf_vit_classifier", "model.safetensors")
MODELS[hf] = (32, T.InterpolationMode.BILINEAR, 1.0, True, HALF, HALF)  # ViTImageProcessor: squash, bilinear


def smooth_image(h, w, channels):
    """A photo-like image: smooth gradients plus texture and noise (not pure noise, not flat)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for c in range(channels):
        f = rng.uniform(0.02, 0.2, size=2)
        v = 128 + 60 * np.sin(x * f[0] + c) * np.cos(y * f[1] - c) + 40 * rng.standard_normal((h, w))
        out.append(v)
    return np.clip(np.stack(out, -1), 0, 255).astype(np.uint8)


def make_images(d):
    paths = []
    for i, (w, h) in enumerate([(37, 53), (301, 199), (500, 333), (224, 224), (640, 31), (97, 389)]):
        rgb = smooth_image(h, w, 3)
        gray = smooth_image(h, w, 1)[..., 0]
        im = Image.fromarray(rgb)
        p = os.path.join(d, f"rgb_{i}.jpg"); im.save(p, quality=92); paths.append(p)
        p = os.path.join(d, f"rgb_{i}.png"); im.save(p); paths.append(p)
        p = os.path.join(d, f"gray_{i}.jpg"); Image.fromarray(gray).save(p, quality=90); paths.append(p)
        p = os.path.join(d, f"gray_{i}.png"); Image.fromarray(gray).save(p); paths.append(p)
        if i % 2 == 0:
            p = os.path.join(d, f"rgba_{i}.png"); Image.fromarray(np.dstack([rgb, gray])).save(p); paths.append(p)
            p = os.path.join(d, f"la_{i}.png"); Image.fromarray(np.dstack([gray, rgb[..., 0]]), "LA").save(p); paths.append(p)
            p = os.path.join(d, f"pal_{i}.png"); im.quantize(64).save(p); paths.append(p)
            p = os.path.join(d, f"cmyk_{i}.jpg"); im.convert("CMYK").save(p, quality=95); paths.append(p)
            p = os.path.join(d, f"rgb16_{i}.png")
            Image.frombytes("RGB", (w, h), rgb.tobytes()).save(p)  # re-saved below as 16-bit
            arr16 = (rgb.astype(np.uint16) * 257 + rng.integers(0, 256, rgb.shape, dtype=np.uint16))
            _write_png16(p, arr16)
            paths.append(p)
    return paths


def _write_png16(path, arr):
    import struct
    import zlib
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def reference(path, size, interp, crop, squash):
    img = Image.open(path).convert("RGB")
    scale = math.floor(size / crop)
    resize = T.Resize((scale, scale) if squash else scale, interpolation=interp)
    return T.Compose([resize, T.CenterCrop(size), T.ToTensor()])(img).numpy()


def main():
    worst_frac, worst_max, total = 1.0, 0.0, 0
    with tempfile.TemporaryDirectory() as d:
        paths = make_images(d)
        for model, (size, interp, crop, squash, mean, std) in MODELS.items():
            out = os.path.join(d, "x.npy")
            flag = ["--weights", model] if os.path.isfile(model) else ["--model", model]
            subprocess.run([vitrt, "preprocess", *flag, "-o", out, *paths], check=True, stderr=subprocess.DEVNULL)
            ours = np.load(out)
            m, s = np.array(mean, np.float32)[:, None, None], np.array(std, np.float32)[:, None, None]
            for i, p in enumerate(paths):
                ref = reference(p, size, interp, crop, squash)
                got = ours[i] * s + m
                diff = np.abs(got - ref)
                frac = float((diff <= 1 / 255 + 1e-5).mean())
                worst_frac, worst_max = min(worst_frac, frac), max(worst_max, float(diff.max()))
                total += diff.size
                if frac < 0.999 or diff.max() > 2 / 255 + 1e-5:
                    print(f"FAIL {os.path.basename(model)} {os.path.basename(p)}: within 1/255 {frac:.4%}, "
                          f"max {diff.max() * 255:.2f}/255")
    print(f"{len(MODELS)} configs x {len(paths)} images ({total} values): worst within-1/255 fraction {worst_frac:.4%}, "
          f"worst max difference {worst_max * 255:.3f}/255")
    return 0 if worst_frac >= 0.999 and worst_max <= 2 / 255 + 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Builds the golden end-to-end fixtures under tests/golden/ with real timm and Hugging Face models.

Needs torch, timm, transformers and safetensors (the GPU machine's python3 has them). Each fixture is
a folder with the checkpoint as the user would have it (timm safetensors, HF save_pretrained output,
or a Google-format .npz), input.npy (float32 NCHW), output.npy (the PyTorch model's fp32 output on
CPU) and meta.json (how vitrt should load it). Weights are random but not timm's init: LayerNorm
weights, biases, tokens and gammas are all perturbed so every tensor matters.

usage: python3 tools/make_golden.py OUT_DIR [--cfgs CFG_JSON]
"""
import argparse
import json
import os
from functools import partial

import numpy as np
import torch
import torch.nn as nn

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def randomize(model, seed, head_std=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name.endswith("gamma") or "ls1" in name or "ls2" in name:
                p.copy_(0.5 + 0.2 * r)
            elif ("norm" in name or "layernorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * r)
            elif "head" in name or "classifier" in name:
                p.copy_(head_std * r)
            elif name.endswith("bias"):
                p.copy_(0.05 * r)
            else:
                p.copy_(0.08 * r)
    return model.eval()


def save_safetensors(state, path, dtype=None):
    from safetensors.torch import save_file
    out = {}
    for k, v in state.items():
        v = v.detach().contiguous()
        out[k] = v.to(dtype) if dtype is not None else v
    save_file(out, path)


def build_timm_vit(args, seed):
    """A randomized timm VisionTransformer from vitrt's variant args (timm kwargs plus `norm_eps`), and the
    `model_args` its config.json records (LayerScale is inferred from the weights, so init_values is left out)."""
    from timm.models.vision_transformer import VisionTransformer
    kwargs = dict(args)
    kwargs["norm_layer"] = partial(nn.LayerNorm, eps=kwargs.pop("norm_eps", 1e-6))
    model = randomize(VisionTransformer(**kwargs), seed=seed)
    return model, {k: v for k, v in args.items() if k != "init_values"}


def google_npz_arrays(state_dict, E, H, depth):
    """A timm ViT state dict (class token, token pooling) as the arrays of Google's ViT-B_16.npz."""
    sd = {k: v.detach().cpu().numpy() for k, v in state_dict.items()}
    D = E // H
    g = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
        "head/kernel": sd["head.weight"].T,
        "head/bias": sd["head.bias"],
    }
    for i in range(depth):
        p, b = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        g[p + "LayerNorm_0/scale"], g[p + "LayerNorm_0/bias"] = sd[b + "norm1.weight"], sd[b + "norm1.bias"]
        g[p + "LayerNorm_2/scale"], g[p + "LayerNorm_2/bias"] = sd[b + "norm2.weight"], sd[b + "norm2.bias"]
        for j, fc in enumerate(("fc1", "fc2")):
            g[p + f"MlpBlock_3/Dense_{j}/kernel"] = sd[b + f"mlp.{fc}.weight"].T
            g[p + f"MlpBlock_3/Dense_{j}/bias"] = sd[b + f"mlp.{fc}.bias"]
        qw, qb, a = sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"], p + "MultiHeadDotProductAttention_1/"
        for j, part in enumerate(("query", "key", "value")):
            g[a + part + "/kernel"] = qw[j * E:(j + 1) * E].T.reshape(E, H, D)
            g[a + part + "/bias"] = qb[j * E:(j + 1) * E].reshape(H, D)
        g[a + "out/kernel"] = sd[b + "attn.proj.weight"].T.reshape(H, D, E)
        g[a + "out/bias"] = sd[b + "attn.proj.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in g.items()}


def write_fixture(root, name, model_fn, x, meta, files):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with torch.no_grad():
        y = model_fn(x).float()
    np.save(os.path.join(d, "input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "output.npy"), y.numpy().astype(np.float32))
    for fname, writer in files.items():
        writer(os.path.join(d, fname))
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: output {tuple(y.shape)}, |y| max {y.abs().max():.3f}")


def timm_config_json(arch, args, pre=None):
    cfg = {"architecture": arch, "model_args": args}
    if pre:
        cfg["pretrained_cfg"] = pre
    return lambda p: json.dump(cfg, open(p, "w"), indent=1)


def timm_fixtures(root, rng):
    from timm.models.vision_transformer import VisionTransformer
    from timm.layers import resample_abs_pos_embed

    base = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0, num_classes=10)
    variants = {
        "timm_token": {},
        "timm_avg_fcnorm": dict(class_token=False, global_pool="avg"),
        "timm_avg_no_fcnorm": dict(global_pool="avg", fc_norm=False),
        "timm_reg_noembed": dict(reg_tokens=4, no_embed_class=True),
        "timm_reg_embed_avg": dict(reg_tokens=2, global_pool="avg"),
        "timm_clip_prenorm_quickgelu": dict(pre_norm=True, act_layer="quick_gelu", norm_eps=1e-5),
        "timm_layerscale_noqkvbias": dict(init_values=0.1, qkv_bias=False),
        "timm_features": dict(num_classes=0),
        "timm_tokens_out": dict(num_classes=0, global_pool=""),
        "timm_tokens_logits": dict(global_pool=""),
        "timm_headdim80": dict(embed_dim=160, num_heads=2, depth=1, mlp_ratio=1.0, img_size=40),
        "timm_no_final_norm": dict(final_norm=False),
    }
    for i, (name, extra) in enumerate(variants.items()):
        args = {**base, **extra}
        try:
            model, cfg_args = build_timm_vit(args, seed=100 + i)
        except TypeError as e:  # an option this timm version lacks
            print(f"{name}: SKIPPED ({e})")
            continue
        x = torch.randn(3, 3, args["img_size"], args["img_size"], generator=torch.Generator().manual_seed(i))
        write_fixture(root, name, model, x, {"weights": "model.safetensors"},
                      {"model.safetensors": partial(save_safetensors, model.state_dict()),
                       "config.json": timm_config_json(name, cfg_args)})

    # Half-precision checkpoints: the reference runs the rounded weights in fp32.
    for dtype, tag in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
        model, _ = build_timm_vit(base, seed=200)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(dtype).float())
        x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(50))
        write_fixture(root, f"timm_{tag}_weights", model, x, {"weights": "model.safetensors"},
                      {"model.safetensors": partial(save_safetensors, model.state_dict(), dtype=dtype),
                       "config.json": timm_config_json("custom", base)})

    # Position embedding resampled to a larger and a smaller input (antialiased downsampling), as timm's
    # checkpoint filter does: the checkpoint keeps the 32 px grid, the reference model the resampled one.
    sd = dict(build_timm_vit(base, seed=300)[0].state_dict())
    for size, seed in ((48, 60), (24, 61)):
        target = VisionTransformer(**dict(base, img_size=size, norm_layer=partial(nn.LayerNorm, eps=1e-6))).eval()
        grid = size // base["patch_size"]
        target.load_state_dict(dict(sd, pos_embed=resample_abs_pos_embed(sd["pos_embed"], new_size=(grid, grid),
                                                                         num_prefix_tokens=1)))
        x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(seed))
        write_fixture(root, f"timm_posembed_resample_{size}", target, x, {"weights": "model.safetensors"},
                      {"model.safetensors": partial(save_safetensors, sd), "config.json": timm_config_json("custom", base)})

    # DeiT distilled (dist_token + head_dist, averaged at inference).
    from timm.models.deit import VisionTransformerDistilled
    model = randomize(VisionTransformerDistilled(**dict(base, norm_layer=partial(nn.LayerNorm, eps=1e-6))), seed=400)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(70))
    write_fixture(root, "timm_deit_distilled", model, x, {"weights": "model.safetensors"},
                  {"model.safetensors": partial(save_safetensors, model.state_dict()),
                   "config.json": timm_config_json("custom", base)})

    # Google .npz written from a timm model (stored and deflated archives).
    model, _ = build_timm_vit(base, seed=500)
    g = google_npz_arrays(model.state_dict(), base["embed_dim"], base["num_heads"], base["depth"])

    for tag, saver in (("stored", np.savez), ("deflated", np.savez_compressed)):
        x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(80))
        write_fixture(root, f"npz_{tag}", model, x, {"weights": "ViT-T_8.npz"},
                      {"ViT-T_8.npz": lambda path, saver=saver: saver(path, **g)})


def hf_fixtures(root):
    from transformers import ViTConfig, ViTForImageClassification, ViTModel
    cfg = ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
                    patch_size=8, num_labels=10, id2label={i: f"hf_class_{i}" for i in range(10)},
                    label2id={f"hf_class_{i}": i for i in range(10)})
    model = randomize(ViTForImageClassification(cfg), seed=600)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(90))
    write_fixture(root, "hf_vit_classifier", lambda t: model(pixel_values=t).logits, x,
                  {"weights": "model.safetensors", "labels": [f"hf_class_{i}" for i in range(10)]},
                  {"model.safetensors": lambda p: None})
    model.save_pretrained(os.path.join(root, "hf_vit_classifier"), safe_serialization=True)
    cfg2 = ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
                     patch_size=8, hidden_act="gelu", layer_norm_eps=1e-12)
    model2 = randomize(ViTModel(cfg2), seed=700)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(91))
    write_fixture(root, "hf_vit_model_features", lambda t: model2(pixel_values=t).last_hidden_state[:, 0], x,
                  {"weights": "model.safetensors"}, {"model.safetensors": lambda p: None})
    model2.save_pretrained(os.path.join(root, "hf_vit_model_features"), safe_serialization=True)


def dump_builtin_cfgs(path):
    import timm
    names = ["vit_tiny_patch16_224", "vit_tiny_patch16_384", "vit_small_patch16_224", "vit_small_patch16_384",
             "vit_base_patch16_224", "vit_base_patch16_384", "vit_base_patch32_224", "vit_base_patch32_384",
             "vit_large_patch16_224", "vit_large_patch16_384", "vit_large_patch32_384", "vit_huge_patch14_224",
             "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
             "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224", "deit_base_distilled_patch16_224"]
    out = {"timm": timm.__version__}
    for n in names:
        m = timm.create_model(n, pretrained=False)
        pc = m.pretrained_cfg
        out[n] = {k: pc.get(k) for k in ("tag", "input_size", "interpolation", "crop_pct", "mean", "std", "num_classes")}
        out[n].update(model_num_classes=m.num_classes, embed_dim=m.embed_dim, depth=len(m.blocks),
                      heads=m.blocks[0].attn.num_heads, mlp=m.blocks[0].mlp.fc1.out_features,
                      eps=m.blocks[0].norm1.eps, global_pool=m.global_pool,
                      params=sum(p.numel() for p in m.parameters()))
    json.dump(out, open(path, "w"), indent=1)
    print(json.dumps(out)[:3000])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cfgs")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    timm_fixtures(args.out, rng)
    hf_fixtures(args.out)
    import timm
    import transformers
    json.dump({"torch": torch.__version__, "timm": timm.__version__, "transformers": transformers.__version__,
               "numpy": np.__version__}, open(os.path.join(args.out, "VERSIONS.json"), "w"), indent=1)
    if args.cfgs:
        dump_builtin_cfgs(args.cfgs)

#include "model/forward.h"

#include "core/check.h"

namespace vitrt {

const float* vit_forward(Backend& be, const ForwardConstants& k, const Activations& a, int batch, int valid) {
  const ViTConfig& c = *k.config;
  const ModelWeights& w = *k.weights;
  const DT adt = be.act_dt(), xdt = k.residual_dt;
  const int B = batch, E = c.embed_dim, M = c.mlp_dim, H = c.num_heads, P = c.patch_size;
  const int grid = k.img_size / P, patches = grid * grid;
  const int prefix = c.num_prefix_tokens(), N = prefix + patches;
  const std::int64_t rows = static_cast<std::int64_t>(B) * N;
  const float eps = c.ln_eps;

  // patch_embed: conv with stride = kernel = patch, as a GEMM over unfolded patches.
  const int K = c.in_chans * P * P;
  be.patchify({B, valid, c.in_chans, k.img_size, P, a.images, a.cols, adt});
  // The patch embedding and the heads are ~1.5% of the FLOPs: in tf32 sessions they stay full fp32.
  be.linear({&w.patch, std::int64_t{B} * patches, a.cols, K, adt, a.patches, E, DT::f32, Epilogue::none, false, true});
  // _pos_embed: prefix tokens + position embedding.
  // Without a norm_pre, the first block's norm1 comes out of the token assembly (one pass over x fewer).
  const bool tokens_norm1 = !c.pre_norm && !w.blocks.empty();
  TokensArgs tokens{B, patches, E, a.patches, k.prefix, prefix, k.pos, !c.no_embed_class, a.x, xdt};
  if (tokens_norm1) {
    tokens.norm = &w.blocks[0].norm1;
    tokens.eps = eps;
    tokens.normed = a.h;
    tokens.normed_dt = adt;
  }
  be.tokens(tokens);
  if (c.pre_norm) be.layernorm({rows, E, a.x, E, a.x, E, xdt, &w.norm_pre, eps, xdt});

  // With class-token pooling only token 0 of each image reaches the head. The last block still needs
  // every token as a key, but its attention computes query 0 only, and proj, norm2 and the MLP run on
  // the B class-token rows alone: strided views of x and attn (row b at element b * N * E), compact h
  // and mlp. The result is the same; the work saved is most of one block.
  const bool cls_only = c.global_pool == Pooling::token && !c.distilled;
  const auto act = c.act == Activation::gelu_erf ? Epilogue::gelu_erf : Epilogue::quick_gelu;
  for (std::size_t i = 0; i < w.blocks.size(); ++i) {
    const BlockWeights& blk = w.blocks[i];
    const bool cls_rows = cls_only && i + 1 == w.blocks.size();
    const std::int64_t r = cls_rows ? B : rows;              // rows after attention
    const std::int64_t ld = cls_rows ? std::int64_t{N} * E : E;  // their stride in x and attn
    // x = x + attn(norm1(x))
    if (i > 0 || !tokens_norm1) be.layernorm({rows, E, a.x, E, a.h, E, adt, &blk.norm1, eps, xdt, /*gemm_input=*/true});
    be.linear({&blk.qkv, rows, a.h, E, adt, a.qkv, 3 * E, adt});
    be.attention({B, N, H, E / H, a.qkv, a.attn, adt, cls_rows ? 1 : 0});
    be.linear({&blk.proj, r, a.attn, ld, adt, a.x, ld, xdt, Epilogue::none, /*accumulate=*/true});
    // x = x + mlp(norm2(x))
    be.layernorm({r, E, a.x, ld, a.h, E, adt, &blk.norm2, eps, xdt, /*gemm_input=*/true});
    be.linear({&blk.fc1, r, a.h, E, adt, a.mlp, M, adt, act});
    be.linear({&blk.fc2, r, a.mlp, M, adt, a.x, ld, xdt, Epilogue::none, /*accumulate=*/true});
  }

  // forward_head. LayerNorm is per token, so norm-then-pick equals pick-then-norm.
  const NormWeights* final_norm = !c.final_norm ? nullptr : c.fc_norm ? &w.fc_norm : &w.norm;
  if (c.global_pool == Pooling::none) {
    if (final_norm) be.layernorm({rows, E, a.x, E, a.x, E, xdt, final_norm, eps, xdt});
    if (c.num_classes == 0) {
      VITRT_CHECK(xdt == DT::f32, "internal: token features are returned from an fp32 residual stream only");
      return static_cast<const float*>(a.x);
    }
    be.linear({&w.head, rows, a.x, E, xdt, a.logits, c.num_classes, DT::f32, Epilogue::none, false, true});
    return a.logits;
  }
  const bool norm_all_tokens = final_norm && c.global_pool == Pooling::avg && !c.fc_norm;
  if (norm_all_tokens) be.layernorm({rows, E, a.x, E, a.x, E, xdt, final_norm, eps, xdt});
  auto pool = [&](int first, int count, float* dst) {
    if (count == 1 && final_norm && !norm_all_tokens) {
      // One token per image, then a norm: the norm reads that token straight from the residual stream
      // (rows b * N + first), which saves the copy.
      const void* token = static_cast<const char*>(a.x) + static_cast<std::size_t>(first) * E * dt_size(xdt);
      be.layernorm({B, E, token, std::int64_t{N} * E, dst, E, DT::f32, final_norm, eps, xdt});
      return;
    }
    be.mean_tokens(a.x, xdt, B, N, E, first, count, dst);
    if (final_norm && !norm_all_tokens) be.layernorm({B, E, dst, E, dst, E, DT::f32, final_norm, eps});
  };
  if (c.global_pool == Pooling::avg) pool(prefix, patches, a.pooled);
  else pool(0, 1, a.pooled);
  if (c.num_classes == 0) return a.pooled;
  be.linear({&w.head, B, a.pooled, E, DT::f32, a.logits, c.num_classes, DT::f32, Epilogue::none, false, true});
  if (c.distilled) {
    pool(1, 1, a.pooled_dist);
    be.linear({&w.head_dist, B, a.pooled_dist, E, DT::f32, a.logits_dist, c.num_classes, DT::f32, Epilogue::none, false,
               true});
    be.average(a.logits, a.logits_dist, std::int64_t{B} * c.num_classes, a.logits);
  }
  return a.logits;
}

}  // namespace vitrt

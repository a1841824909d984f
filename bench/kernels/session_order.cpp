// Does a session's speed depend on the sessions made before it in the process? Makes `count` sessions of
// one batch size one after another and times each (median ms of the forward, as `vitrt bench`):
//   session_order MODEL BATCH COUNT MODE [TUNE_CACHE]
// MODE: seq (each session destroyed before the next), alive (all kept), pad:MIB (before each session,
// cudaMalloc MIB and keep it, shifting where the session's memory lands), shared-stream (every session on
// one stream the program owns), own (each session on a new stream of the program's, destroyed after it:
// what sessions did before the pool), own-nographs (the same without CUDA graphs). The other modes first
// use K streams of the program's, then destroy them (kept:K and usedkept:K keep them):
//   streams:K, kept:K             created only
//   used:K, usedkept:K            one memset each
//   usedgraph:K                   a captured graph of one memset each
//   usedevent:K                   two timing events around a memset, elapsed time read
//   usedcopy:K / usedd2h:K        4 MiB from / 1 MiB to pageable host memory
//   usedlt:K / usedlt32:K         one cuBLASLt 256^3 matmul, bf16 / fp32
//   usedltsmall:K                 one cuBLASLt bf16 64^3 matmul with 1 MiB of workspace allowed
//   usedln:K[:N]                  one (or N) of vitrt's LayerNorm kernels
//   usedattn:K                    vitrt's attention kernel once (197 tokens, 12 heads of 64, bf16);
//   usedattn-cluster:K            its variant launched in clusters of 2 blocks
//   usedsession:K:OTHER:B         one forward (Session::benchmark) of a session of model OTHER at batch B,
//                                 destroyed with the stream; usedsession-nographs:K:OTHER:B without CUDA
//                                 graphs; usedrun:K:OTHER:B through Session::run (no timing events)
//   usedop:K:OP                   through a CUDA backend of its own, vit_base at batch 1: one GEMM (qkv,
//                                 proj, fc1, fc2, or head: the fp32 head at 1 row), a stem op (patchify,
//                                 tokens, mean), a whole block run N times (blockN), or the block's ops
//                                 whose digit is 1 (blockmaskXXXXXXX: LayerNorm, qkv, attention, proj,
//                                 LayerNorm, fc1, fc2)
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/attention.cuh"
#include "backend/cuda/layernorm.cuh"
#include "vitrt/vitrt.h"

namespace {

// A CUDA backend of its own on `s`, in bf16, reading the tuning cache `cache`.
std::unique_ptr<vitrt::Backend> bf16_backend(cudaStream_t s, const std::string& cache) {
  auto be = vitrt::make_cuda_backend(0, s, false, cache);
  be->resolve_precision(vitrt::Precision::bf16);
  return be;
}

// Plans `ops` (batch 1) on `be`, runs them `runs` times on its stream `s` and waits: true once they have
// finished without error.
bool plan_and_run(vitrt::Backend& be, cudaStream_t s, const std::function<void()>& ops, int runs = 1) {
  be.begin_plan(1);
  ops();
  be.end_plan();
  be.end_planning();
  for (int i = 0; i < runs; ++i) {
    be.begin_run(1);
    ops();
    be.end_run();
  }
  return cudaStreamSynchronize(s) == cudaSuccess;
}

// One of the stem's ops of vit_base at batch 1 through a CUDA backend of its own on `s`, planned and run
// once: patchify (the image into 16 x 16 patch columns), tokens (class token, position rows and the
// first LayerNorm) or mean (the mean of tokens, as a pooling head).
bool backend_stem(cudaStream_t s, const std::string& op, const std::string& cache) {
  using vitrt::DT;
  auto be = bf16_backend(s, cache);
  void* a = be->allocate(3 * 224 * 224 * 4);
  void* b = be->allocate(197 * 768 * 4);
  void* c = be->allocate(197 * 768 * 4);
  std::vector<float> cls(768, 0.1f), pos(197 * 768, 0.01f), g(768, 1.0f), gb(768, 0.0f);
  vitrt::NormWeights nw{g.data(), gb.data()};
  const auto run = [&] {
    if (op == "patchify") {
      be->patchify({1, 1, 3, 224, 16, static_cast<const float*>(a), b, DT::bf16});
    } else if (op == "tokens") {
      vitrt::TokensArgs t;
      t.batch = 1;
      t.patches = 196;
      t.dim = 768;
      t.patch_rows = static_cast<const float*>(a);
      t.prefix = cls.data();
      t.num_prefix = 1;
      t.pos = pos.data();
      t.x = b;
      t.norm = &nw;
      t.normed = c;
      t.normed_dt = DT::bf16;
      be->tokens(t);
    } else {
      be->mean_tokens(a, DT::f32, 1, 197, 768, 1, 196, static_cast<float*>(b));
    }
  };
  const bool ok = plan_and_run(*be, s, run);
  be->release(a);
  be->release(b);
  be->release(c);
  return ok;
}

// One transformer block of vit_base at batch 1 (LayerNorm, qkv, attention, proj + residual, LayerNorm,
// fc1 + GELU, fc2 + residual) through a CUDA backend of its own on `s`, planned and run `runs` times.
// mask: which of the seven ops run ('1' / '0' each, in order; empty: all).
bool backend_block(cudaStream_t s, const std::string& cache, int runs, const std::string& mask = "") {
  using vitrt::DT;
  auto be = bf16_backend(s, cache);
  const std::int64_t R = 197, E = 768, M = 3072;
  std::vector<float> wq(3 * E * E, 0.01f), wp(E * E, 0.01f), w1(E * M, 0.01f), w2(M * E, 0.01f);
  std::vector<float> bq(3 * E, 0.f), bp(E, 0.f), b1(M, 0.f), b2(E, 0.f), g(E, 1.f), gb(E, 0.f);
  vitrt::LinearWeights lq{wq.data(), bq.data(), 3 * 768, 768}, lp{wp.data(), bp.data(), 768, 768},
      l1{w1.data(), b1.data(), 3072, 768}, l2{w2.data(), b2.data(), 768, 3072};
  vitrt::NormWeights nw{g.data(), gb.data()};
  void* x = be->allocate(R * E * 4);
  void* h = be->allocate(R * E * 2);
  void* qkv = be->allocate(R * 3 * E * 2);
  void* at = be->allocate(R * E * 2);
  void* mlp = be->allocate(R * M * 2);
  const auto on = [&](std::size_t i) { return mask.size() <= i || mask[i] == '1'; };
  const auto run = [&] {
    if (on(0)) be->layernorm({R, E, x, E, h, E, DT::bf16, &nw, 1e-6f, DT::f32});
    if (on(1)) be->linear({&lq, R, h, E, DT::bf16, qkv, 3 * E, DT::bf16});
    if (on(2)) be->attention({1, 197, 12, 64, qkv, at, DT::bf16});
    if (on(3)) be->linear({&lp, R, at, E, DT::bf16, x, E, DT::f32, vitrt::Epilogue::none, true});
    if (on(4)) be->layernorm({R, E, x, E, h, E, DT::bf16, &nw, 1e-6f, DT::f32});
    if (on(5)) be->linear({&l1, R, h, E, DT::bf16, mlp, M, DT::bf16, vitrt::Epilogue::gelu_erf});
    if (on(6)) be->linear({&l2, R, mlp, M, DT::bf16, x, E, DT::f32, vitrt::Epilogue::none, true});
  };
  const bool ok = plan_and_run(*be, s, run, runs);
  for (void* p : {x, h, qkv, at, mlp}) be->release(p);
  return ok;
}

// One vit_base GEMM at 197 rows (or the fp32 head at 1 row) through a CUDA backend of its own on `s`,
// planned and run once, as a session's forward runs it. op: qkv, proj, fc1, fc2 or head.
bool backend_gemm(cudaStream_t s, const std::string& op, const std::string& cache) {
  using vitrt::DT;
  auto be = bf16_backend(s, cache);
  const bool head = op == "head";
  const std::int64_t rows = head ? 1 : 197, in = op == "fc2" ? 3072 : 768,
                     out = op == "qkv" ? 2304 : op == "fc1" ? 3072 : head ? 1000 : 768;
  const DT src_dt = head ? DT::f32 : DT::bf16;
  const DT dst_dt = op == "proj" || op == "fc2" || head ? DT::f32 : DT::bf16;
  std::vector<float> w(static_cast<std::size_t>(in * out), 0.01f), b(static_cast<std::size_t>(out), 0.1f);
  vitrt::LinearWeights lw{w.data(), b.data(), static_cast<int>(out), static_cast<int>(in)};
  void* src = be->allocate(static_cast<std::size_t>(rows * in) * 4);
  void* dst = be->allocate(static_cast<std::size_t>(rows * out) * 4);
  const vitrt::LinearArgs a{&lw, rows, src, in, src_dt, dst, out, dst_dt,
                            op == "fc1" ? vitrt::Epilogue::gelu_erf : vitrt::Epilogue::none,
                            op == "proj" || op == "fc2", head};
  const bool ok = plan_and_run(*be, s, [&] { be->linear(a); });
  be->release(src);
  be->release(dst);
  return ok;
}

// usedop's OP (see the modes above): a GEMM, a stem op, a block or part of one.
bool backend_op(cudaStream_t s, const std::string& op, const std::string& cache) {
  if (op == "patchify" || op == "tokens" || op == "mean") return backend_stem(s, op, cache);
  if (op.rfind("blockmask", 0) == 0) return backend_block(s, cache, 1, op.substr(9));
  if (op.rfind("block", 0) == 0) {
    return backend_block(s, cache, op.size() > 5 ? std::atoi(op.c_str() + 5) : 1);
  }
  return backend_gemm(s, op, cache);
}

// One n^3 matmul (fp32 accumulation) through cuBLASLt on `s`, with its heuristic's first algorithm: bf16
// or fp32 matrices, with `workspace` bytes of workspace (taken from the end of buf's 4 MiB) allowed.
bool lt_matmul(cudaStream_t s, void* buf, cudaDataType_t type = CUDA_R_16BF, std::size_t workspace = 0,
               int n = 256) {
  cublasLtHandle_t lt = nullptr;
  if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) return false;
  const std::size_t es = type == CUDA_R_32F ? 4 : 2;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t l = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t h{};
  int found = 0;
  const float one = 1.f, zero = 0.f;
  char* b = static_cast<char*>(buf);
  bool ok = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&l, type, n, n, n) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                 sizeof(workspace)) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulAlgoGetHeuristic(lt, op, l, l, l, l, pref, 1, &h, &found) == CUBLAS_STATUS_SUCCESS &&
            found > 0 &&
            cublasLtMatmul(lt, op, &one, b, l, b + n * n * es, l, &zero, b + 2 * n * n * es, l,
                           b + 2 * n * n * es, l, &h.algo, workspace ? b + (4 << 20) - workspace : nullptr,
                           h.workspaceSize, s) == CUBLAS_STATUS_SUCCESS &&
            cudaStreamSynchronize(s) == cudaSuccess;
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (l) cublasLtMatrixLayoutDestroy(l);
  if (op) cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(lt);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: session_order MODEL BATCH COUNT MODE [TUNE_CACHE]\n");
    return 2;
  }
  const std::string model_name = argv[1], mode = argv[4];
  const int batch = std::atoi(argv[2]), count = std::atoi(argv[3]);
  auto model = vitrt::Model::synthetic(model_name);
  vitrt::SessionOptions o;
  o.batch_sizes = {batch};
  o.precision = vitrt::Precision::bf16;
  o.device = vitrt::Device::parse("cuda");
  o.tune_cache = argc > 5 ? argv[5] : "off";
  cudaStream_t stream = nullptr;
  if (mode == "shared-stream") {
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) return 1;
    o.cuda_stream = stream;
  }
  std::vector<cudaStream_t> extra;
  if (mode.rfind("streams:", 0) == 0 || mode.rfind("kept:", 0) == 0 || mode.rfind("used", 0) == 0) {
    extra.resize(static_cast<std::size_t>(std::atoi(mode.c_str() + mode.find(':') + 1)));
    void* scratch = nullptr;
    if (cudaMalloc(&scratch, 4 << 20) != cudaSuccess || cudaMemset(scratch, 0, 4 << 20) != cudaSuccess) return 1;
    for (auto& e : extra) {
      if (cudaStreamCreateWithFlags(&e, cudaStreamNonBlocking) != cudaSuccess) return 1;
      if (mode.rfind("usedop", 0) == 0) {  // usedop:K:OP
        if (!backend_op(e, mode.substr(mode.find(':', mode.find(':') + 1) + 1), o.tune_cache)) return 1;
      } else if (mode.rfind("usedd2h", 0) == 0) {
        std::vector<char> host(1 << 20);
        if (cudaMemcpyAsync(host.data(), scratch, host.size(), cudaMemcpyDeviceToHost, e) != cudaSuccess ||
            cudaStreamSynchronize(e) != cudaSuccess)
          return 1;
      } else if (mode.rfind("usedlt32", 0) == 0) {
        if (!lt_matmul(e, scratch, CUDA_R_32F)) return 1;
      } else if (mode.rfind("usedltsmall", 0) == 0) {  // 64^3 with 1 MiB of workspace: split-K candidates
        if (!lt_matmul(e, scratch, CUDA_R_16BF, 1 << 20, 64)) return 1;
      } else if (mode.rfind("usedevent", 0) == 0) {
        cudaEvent_t a = nullptr, z = nullptr;
        float t = 0;
        if (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&z) != cudaSuccess ||
            cudaEventRecord(a, e) != cudaSuccess || cudaMemsetAsync(scratch, 0, 1 << 20, e) != cudaSuccess ||
            cudaEventRecord(z, e) != cudaSuccess || cudaEventSynchronize(z) != cudaSuccess ||
            cudaEventElapsedTime(&t, a, z) != cudaSuccess)
          return 1;
        cudaEventDestroy(a);
        cudaEventDestroy(z);
      } else if (mode.rfind("usedsession", 0) == 0 || mode.rfind("usedrun", 0) == 0) {
        // usedsession[-nographs]:K:OTHER:B, usedrun:K:OTHER:B
        const std::size_t c1 = mode.find(':'), c2 = mode.find(':', c1 + 1), c3 = mode.find(':', c2 + 1);
        if (c2 == std::string::npos || c3 == std::string::npos) return 2;
        auto other = vitrt::Model::synthetic(mode.substr(c2 + 1, c3 - c2 - 1));
        vitrt::SessionOptions so = o;
        so.batch_sizes = {std::atoi(mode.c_str() + c3 + 1)};
        so.cuda_stream = e;
        so.cuda_graphs = mode.rfind("usedsession-nographs", 0) != 0;
        vitrt::Session os(other, so);
        const auto images = static_cast<std::size_t>(so.batch_sizes[0]);
        std::vector<float> ox(static_cast<std::size_t>(os.input_elements_per_image()) * images, 0.5f);
        if (mode.rfind("usedrun", 0) == 0) {
          std::vector<float> out(static_cast<std::size_t>(os.output_elements_per_image()) * images);
          os.run(ox.data(), so.batch_sizes[0], out.data());
        } else {
          os.benchmark(ox.data(), so.batch_sizes[0], 1, 3);
        }
      } else if (mode.rfind("usedlt", 0) == 0) {
        if (!lt_matmul(e, scratch)) return 1;
      } else if (mode.rfind("usedcopy", 0) == 0) {
        std::vector<char> host(4 << 20, 1);
        if (cudaMemcpyAsync(scratch, host.data(), host.size(), cudaMemcpyHostToDevice, e) != cudaSuccess ||
            cudaStreamSynchronize(e) != cudaSuccess)
          return 1;
      } else if (mode.rfind("usedattn", 0) == 0) {
        vitrt::cuda::AttentionParams p{};
        p.qkv = scratch;
        p.out = static_cast<char*>(scratch) + (2 << 20);
        p.batch = 1;
        p.tokens = 197;
        p.heads = 12;
        p.head_dim = 64;
        p.scale = 0.125f;
        p.dt = vitrt::DT::bf16;
        p.arch = 90;
        // usedattn-cluster:K: the variant that splits the key tiles over a cluster of 2 blocks
        if (mode.rfind("usedattn-cluster", 0) == 0) p.variant = vitrt::cuda::kAttentionWgmmaSplit2;
        vitrt::cuda::attention(p, e);
        if (cudaStreamSynchronize(e) != cudaSuccess) return 1;
      } else if (mode.rfind("usedln", 0) == 0) {
        vitrt::cuda::LayerNormParams p{};
        p.src = scratch;
        p.src_ld = 768;
        p.dst = static_cast<char*>(scratch) + (512 << 10);
        p.dst_ld = 768;
        p.dst_dt = vitrt::DT::bf16;
        p.weight = static_cast<const float*>(scratch);
        p.bias = static_cast<const float*>(scratch);
        p.rows = 64;
        p.dim = 768;
        p.eps = 1e-6f;
        // usedln:K one launch per stream; usedln:K:N N launches
        const std::size_t c2 = mode.find(':', mode.find(':') + 1);
        const int launches = c2 == std::string::npos ? 1 : std::atoi(mode.c_str() + c2 + 1);
        for (int r = 0; r < launches; ++r) vitrt::cuda::layernorm(p, e);
        if (cudaStreamSynchronize(e) != cudaSuccess) return 1;
      } else if (mode.rfind("usedgraph", 0) == 0) {
        cudaGraph_t g = nullptr;
        cudaGraphExec_t ge = nullptr;
        if (cudaStreamBeginCapture(e, cudaStreamCaptureModeThreadLocal) != cudaSuccess ||
            cudaMemsetAsync(scratch, 0, 1 << 20, e) != cudaSuccess || cudaStreamEndCapture(e, &g) != cudaSuccess ||
            cudaGraphInstantiate(&ge, g, 0) != cudaSuccess || cudaGraphLaunch(ge, e) != cudaSuccess ||
            cudaStreamSynchronize(e) != cudaSuccess)
          return 1;
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);
      } else if (mode.rfind("used", 0) == 0 && cudaMemsetAsync(scratch, 0, 1 << 20, e) != cudaSuccess) {
        return 1;
      }
    }
    if (cudaDeviceSynchronize() != cudaSuccess) return 1;
    cudaFree(scratch);
    if (mode[0] == 's' || (mode.rfind("used", 0) == 0 && mode.rfind("usedkept", 0) != 0)) {
      for (auto e : extra) cudaStreamDestroy(e);
      extra.clear();
    }
  }
  std::vector<std::unique_ptr<vitrt::Session>> alive;
  std::vector<void*> pads;
  std::vector<float> x;
  std::printf("%s b%d %s:", model_name.c_str(), batch, mode.c_str());
  for (int i = 0; i < count; ++i) {
    if (mode.rfind("pad:", 0) == 0) {
      void* p = nullptr;
      if (cudaMalloc(&p, static_cast<std::size_t>(std::atoll(mode.c_str() + 4)) << 20) != cudaSuccess) return 1;
      pads.push_back(p);
    }
    cudaStream_t own = nullptr;
    if (mode.rfind("own", 0) == 0) {
      if (cudaStreamCreateWithFlags(&own, cudaStreamNonBlocking) != cudaSuccess) return 1;
      o.cuda_stream = own;
      o.cuda_graphs = mode == "own";
    }
    auto s = std::make_unique<vitrt::Session>(model, o);
    if (x.empty()) {
      x.resize(static_cast<std::size_t>(s->input_elements_per_image()) * batch);
      std::mt19937 rng(1234);
      std::normal_distribution<float> nd(0.f, 1.f);
      for (auto& v : x) v = nd(rng);
    }
    std::vector<double> ms = s->benchmark(x.data(), batch, 20, 200);
    std::sort(ms.begin(), ms.end());
    std::printf(" %.3f", ms[ms.size() / 2]);
    std::fflush(stdout);
    if (mode == "alive") alive.push_back(std::move(s));
    s.reset();
    if (own) cudaStreamDestroy(own);
  }
  if (mode == "alive") {
    std::printf(" | again:");
    for (auto& s : alive) {
      std::vector<double> ms = s->benchmark(x.data(), batch, 20, 200);
      std::sort(ms.begin(), ms.end());
      std::printf(" %.3f", ms[ms.size() / 2]);
    }
  }
  std::printf("\n");
  alive.clear();
  for (void* p : pads) cudaFree(p);
  if (stream) cudaStreamDestroy(stream);
  for (auto e : extra) cudaStreamDestroy(e);
  return 0;
}

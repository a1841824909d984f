// Does a session's speed depend on the sessions made before it in the process? Makes `count` sessions of
// one batch size one after another and times each (median ms of the forward, as `vitrt bench`):
//   session_order MODEL BATCH COUNT MODE [TUNE_CACHE]
// MODE: seq (each session destroyed before the next), alive (all kept), pad:MIB (before each session,
// cudaMalloc MIB and keep it, shifting where the session's memory lands), shared-stream (every session on
// one stream the program owns), streams:K (K streams created and destroyed before the first session),
// kept:K (K streams created before the first session and kept), used:K (K streams that each run one
// memset, then are destroyed, before the first session), usedkept:K (the same, kept), usedgraph:K (K
// streams that each launch a captured graph of one memset, then are destroyed), own (each session on a
// new stream of the program's, destroyed after it: what sessions did before the pool), own-nographs
// (the same without CUDA graphs), usedlt:K (K streams that each run one cuBLASLt bf16 matmul, 256^3,
// then are destroyed), usedln:K (K streams that each run one of vitrt's LayerNorm kernels), usedattn:K
// (K streams that each run vitrt's attention kernel once, 197 tokens, 12 heads of 64, bf16), usedcopy:K
// (K streams that each copy 4 MiB from pageable host memory to the device, as a session's weight upload).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/layernorm.cuh"
#include "vitrt/vitrt.h"

namespace {

// One 256^3 bf16 matmul (fp32 accumulation) through cuBLASLt on `s`, with its heuristic's first algorithm.
bool lt_matmul(cudaStream_t s, void* buf) {
  cublasLtHandle_t lt = nullptr;
  if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) return false;
  const int n = 256;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t l = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t h{};
  int found = 0;
  const float one = 1.f, zero = 0.f;
  char* b = static_cast<char*>(buf);
  bool ok = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&l, CUDA_R_16BF, n, n, n) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulAlgoGetHeuristic(lt, op, l, l, l, l, pref, 1, &h, &found) == CUBLAS_STATUS_SUCCESS &&
            found > 0 &&
            cublasLtMatmul(lt, op, &one, b, l, b + n * n * 2, l, &zero, b + 2 * n * n * 2, l, b + 2 * n * n * 2, l,
                           &h.algo, nullptr, 0, s) == CUBLAS_STATUS_SUCCESS &&
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
      if (mode.rfind("usedlt", 0) == 0) {
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
        vitrt::cuda::layernorm(p, e);
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

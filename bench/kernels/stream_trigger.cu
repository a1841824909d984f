// The third-stream slowdown (docs/performance.md, sessions 24 and 25) without vitrt: does a chain of
// small kernels on one stream slow down once two other streams have each made a few ordinary launches?
//   stream_trigger plain|pdl|graph [KERNELS] [LAUNCHES]
// Times a CUDA graph of KERNELS (default 84) small kernels on the main stream (median of 200 launches,
// CUDA events), then lets one and then a second new stream launch an empty kernel LAUNCHES times (default
// 3) each, and destroys the stream, timing the graph again after each. The launches are ordinary ones
// (plain), carry the programmatic-serialization attribute (pdl), or are the nodes of one captured graph
// that the stream launches once (graph). Build: part of the bench targets (CUDA builds); the file stands
// alone (`nvcc stream_trigger.cu`, for a report upstream), so it times with its own event loop rather
// than bench::event_median_us (gap_kernels.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// One pass over the buffer: as many small kernels of a forward at batch 4 do, a few µs each.
__global__ void pass(float* x, int n, float a) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    x[i] = x[i] * a + 0.5f;
}
__global__ void empty() {}

bool ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
  return false;
}

// Median ms of `iters` launches of the graph on `s`.
double time_graph(cudaGraphExec_t g, cudaStream_t s, int iters) {
  cudaEvent_t a = nullptr, z = nullptr;
  if (!ok(cudaEventCreate(&a), "event") || !ok(cudaEventCreate(&z), "event")) return -1;
  std::vector<float> t;
  for (int i = 0; i < 20; ++i) cudaGraphLaunch(g, s);
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(a, s);
    cudaGraphLaunch(g, s);
    cudaEventRecord(z, s);
    cudaEventSynchronize(z);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, z);
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(z);
  std::nth_element(t.begin(), t.begin() + iters / 2, t.end());
  return t[static_cast<std::size_t>(iters / 2)];
}

// A new stream launches the empty kernel `launches` times (mode: plain, pdl or graph, as above), waits
// for it and is destroyed.
bool other_stream(const std::string& mode, int launches) {
  cudaStream_t e = nullptr;
  if (!ok(cudaStreamCreateWithFlags(&e, cudaStreamNonBlocking), "stream")) return false;
  if (mode == "graph") {
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ge = nullptr;
    if (!ok(cudaStreamBeginCapture(e, cudaStreamCaptureModeThreadLocal), "capture")) return false;
    for (int i = 0; i < launches; ++i) empty<<<1, 32, 0, e>>>();
    const bool done =
        ok(cudaStreamEndCapture(e, &g), "capture") && ok(cudaGraphInstantiate(&ge, g, 0), "graph") &&
        ok(cudaGraphLaunch(ge, e), "graph launch") && ok(cudaStreamSynchronize(e), "other stream");
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    cudaStreamDestroy(e);
    return done;
  }
  for (int i = 0; i < launches; ++i) {
    if (mode == "pdl") {
      cudaLaunchAttribute attr{};
      attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr.val.programmaticStreamSerializationAllowed = 1;
      cudaLaunchConfig_t cfg{};
      cfg.gridDim = dim3(1);
      cfg.blockDim = dim3(32);
      cfg.stream = e;
      cfg.attrs = &attr;
      cfg.numAttrs = 1;
      if (!ok(cudaLaunchKernelEx(&cfg, empty), "launch")) return false;
    } else {
      empty<<<1, 32, 0, e>>>();
      if (!ok(cudaGetLastError(), "launch")) return false;
    }
  }
  const bool done = ok(cudaStreamSynchronize(e), "other stream");
  cudaStreamDestroy(e);
  return done;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "plain" && mode != "pdl" && mode != "graph") {
    std::fprintf(stderr, "usage: stream_trigger plain|pdl|graph [KERNELS] [LAUNCHES]\n");
    return 2;
  }
  const int kernels = argc > 2 ? std::atoi(argv[2]) : 84, launches = argc > 3 ? std::atoi(argv[3]) : 3;
  const int n = 1 << 20;  // 4 MiB: stays in L2, as a small batch's activations do
  float* x = nullptr;
  cudaStream_t s = nullptr;
  if (!ok(cudaMalloc(&x, n * sizeof(float)), "malloc") ||
      !ok(cudaMemset(x, 0, n * sizeof(float)), "memset") ||
      !ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream"))
    return 1;
  cudaGraph_t g = nullptr;
  cudaGraphExec_t ge = nullptr;
  if (!ok(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capture")) return 1;
  for (int k = 0; k < kernels; ++k) pass<<<264, 256, 0, s>>>(x, n, k % 2 ? 0.5f : 2.0f);
  if (!ok(cudaStreamEndCapture(s, &g), "capture") || !ok(cudaGraphInstantiate(&ge, g, 0), "instantiate"))
    return 1;
  std::printf("%s, %d kernels per graph, %d launches per other stream: graph ms", mode.c_str(), kernels,
              launches);
  std::printf(" | alone %.4f", time_graph(ge, s, 200));
  for (int k = 1; k <= 2; ++k) {
    if (!other_stream(mode, launches)) return 1;
    std::printf(" | after %d other stream%s %.4f", k, k > 1 ? "s" : "", time_graph(ge, s, 200));
  }
  std::printf(" | again %.4f\n", time_graph(ge, s, 200));
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  cudaFree(x);
  return 0;
}

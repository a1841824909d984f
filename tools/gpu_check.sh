#!/usr/bin/env bash
# One command on the GPU machine: build (unless BUILD already holds a build), run every test with the
# CUDA backend, compute-sanitizer memcheck and racecheck on the attention, LayerNorm and TF32 GEMM op tests, and
# tools/verify_torch.py against PyTorch. Set VITRT_DATA to a folder with deit_tiny_patch16_224/ and
# imagenet-sample/ for the real-data rows (VITRT_IMAGES: a glob of image names to use).
#   tools/gpu_check.sh [BUILD]      (default build/gpu)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/gpu}
if [ ! -x "$BUILD/bin/vitrt" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DVITRT_NATIVE=OFF || exit 1
  cmake --build "$BUILD" -j || exit 1
fi
export VITRT_GOLDEN_DIR=$PWD/tests/golden
status=0
step() { echo; echo "=== $*"; }

step "unit, op and golden tests (CPU and CUDA)"
"$BUILD/tests/vitrt_tests" --gtest_brief=1 || status=1
step "CLI contract"
python3 tests/scripts/cli_check.py "$BUILD/bin/vitrt" tests/golden > /tmp/cli.log 2>&1 && echo ok || { cat /tmp/cli.log; status=1; }
for tool in memcheck racecheck; do
  step "compute-sanitizer --tool $tool: attention and LayerNorm op tests"
  compute-sanitizer --tool "$tool" --error-exitcode 3 --print-limit 20 \
    "$BUILD/tests/vitrt_tests" --gtest_brief=1 --gtest_filter='*OpTest.Attention/cuda*:*OpTest.LayerNorm/cuda*:CudaAttention.*:CudaGemm.*' || status=1
done
step "verification against PyTorch"
python3 tools/verify_torch.py --vitrt "$BUILD/bin/vitrt" ${VITRT_DATA:+--data "$VITRT_DATA" --images "${VITRT_IMAGES:-*}"} \
  ${VITRT_VERIFY_JSON:+--json "$VITRT_VERIFY_JSON"} || status=1
echo
[ $status -eq 0 ] && echo "gpu_check: all passed" || echo "gpu_check: FAILURES above"
exit $status

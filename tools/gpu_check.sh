#!/usr/bin/env bash
# One command on the GPU machine: build (unless BUILD already holds a build), run every test with the
# CUDA backend, compute-sanitizer memcheck (with the device-memory leak check) and synccheck on every CUDA
# test and racecheck on the op tests of our kernels (judged by tools/racecheck_filter.py, which knows
# racecheck's false reports; it needs a build with -lineinfo, as this script makes), and
# tools/verify_torch.py against PyTorch. Not initcheck: it does not see writes by TMA / bulk copies (a
# probe, docs/performance.md session 42), so every read of a TMA-stored GEMM output is reported. Set
# VITRT_DATA to a folder with deit_tiny_patch16_224/ and imagenet-sample/ for the real-data rows
# (VITRT_IMAGES: a glob of image names to use).
#   tools/gpu_check.sh [BUILD]      (default build/gpu)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/gpu}
if [ ! -x "$BUILD/bin/vitrt" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DVITRT_NATIVE=OFF \
    -DCMAKE_CUDA_FLAGS=-lineinfo || exit 1
  cmake --build "$BUILD" -j || exit 1
fi
export VITRT_GOLDEN_DIR=$PWD/tests/golden
status=0
step() { echo; echo "=== $*"; }

step "unit, op and golden tests (CPU and CUDA)"
"$BUILD/tests/vitrt_tests" --gtest_brief=1 || status=1
step "CLI contract"
python3 tests/scripts/cli_check.py "$BUILD/bin/vitrt" tests/golden > /tmp/cli.log 2>&1 && echo ok || { cat /tmp/cli.log; status=1; }
cuda_tests='Cuda*:SessionCuda.*:Backends/OpTest.*cuda_*:Fixtures/Golden.*cuda_*'
for tool in "memcheck --leak-check full" synccheck; do
  step "compute-sanitizer --tool $tool: every CUDA test"
  # shellcheck disable=SC2086  # the tool's options split into words
  compute-sanitizer --tool $tool --error-exitcode 3 --print-limit 20 \
    "$BUILD/tests/vitrt_tests" --gtest_brief=1 --gtest_filter="$cuda_tests" || status=1
done
# Not the tests that tune: under racecheck a tuning test grew past 128 GB of host memory (run497).
step "compute-sanitizer --tool racecheck: the op tests of our kernels"
compute-sanitizer --tool racecheck --print-limit 0 "$BUILD/tests/vitrt_tests" --gtest_brief=1 \
  --gtest_filter='CudaAttention.*:CudaGemm.*:Backends/OpTest.*cuda_*' > /tmp/racecheck.log 2>&1
python3 tools/racecheck_filter.py /tmp/racecheck.log || status=1
step "verification against PyTorch"
python3 tools/verify_torch.py --vitrt "$BUILD/bin/vitrt" ${VITRT_DATA:+--data "$VITRT_DATA" --images "${VITRT_IMAGES:-*}"} \
  ${VITRT_VERIFY_JSON:+--json "$VITRT_VERIFY_JSON"} || status=1
echo
[ $status -eq 0 ] && echo "gpu_check: all passed" || echo "gpu_check: FAILURES above"
exit $status

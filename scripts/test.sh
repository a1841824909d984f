#!/usr/bin/env bash
# Builds vitrt with warnings as errors and runs every test (GoogleTest + Python reference checks).
# Tests that need ../shared/data skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset ci
cmake --build --preset ci
ctest --preset ci -j "$(nproc)"

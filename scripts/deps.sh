#!/usr/bin/env bash
# Installs vitrt's build and test dependencies from Debian/Ubuntu packages (only what is missing).
set -euo pipefail
pkgs=(build-essential cmake ninja-build git pkg-config libdnnl-dev nlohmann-json3-dev libcli11-dev
      libjpeg62-turbo-dev libpng-dev zlib1g-dev ocl-icd-opencl-dev libgtest-dev libgmock-dev libbenchmark-dev
      python3-numpy python3-torch python3-torchvision python3-pil libopenblas0-pthread)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "vitrt: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

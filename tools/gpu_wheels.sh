#!/usr/bin/env bash
# Download the wheels tools/gpu_check.sh installs on a GPU machine without a
# package index: mmengine 0.10.7 and what the PartialNet backbone imports
# beyond torch, torchvision and timm (all pure Python, plus PyYAML and
# OpenCV's headless build, the only compiled ones). Run it where the index
# is reachable and carry DIR to the GPU machine.
#
# Usage: tools/gpu_wheels.sh DIR [PYTHON_VERSION...]
#   PYTHON_VERSION: the GPU machine's Python, e.g. 3.10 (default: 3.9 to
#   3.13, so that any of them finds its wheels).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$py" ]] || py=python3
dir="${1:?usage: tools/gpu_wheels.sh DIR [PYTHON_VERSION...]}"
shift
versions=("$@")
(( ${#versions[@]} )) || versions=(3.9 3.10 3.11 3.12 3.13)
packages=(mmengine==0.10.7 addict yapf platformdirs termcolor rich
          markdown-it-py mdurl pygments packaging pyyaml
          tomli opencv-python-headless==4.11.0.86)
mkdir -p "$dir"
for version in "${versions[@]}"; do
    echo "[gpu_wheels] Python $version" >&2
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --platform manylinux2014_x86_64 \
        --python-version "$version" --dest "$dir" "${packages[@]}"
done
ls -1 "$dir" >&2
du -sh "$dir" >&2

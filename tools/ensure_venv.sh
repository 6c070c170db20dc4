#!/usr/bin/env bash
# Create or reuse the project's virtual environment at <repo>/.venv.
#
# Idempotent: a stamp file records the hash of this script and of
# requirements.txt; when both are unchanged and the imports still work, the
# script returns in a second. Order matters (see README, "Install"):
#   1. torch + torchvision from the registry (they only import together);
#   2. setuptools<81, because mmcv 2.1.0's setup.py imports pkg_resources;
#   3. mmcv built from source WITH its C++ ops and WITHOUT build isolation
#      (with isolation pip builds it against a throw-away torch, without ops);
#   4. mmengine, mmdet, mmpretrain, mmseg, pycocotools, test tools, and this
#      package.
# Every step installs under a constraints file, so no dependency can move
# torch behind our back.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="$venv/bin/python"
stamp="$venv/.mmpartial-stamp"
want="$(cat "$root/tools/ensure_venv.sh" "$root/requirements.txt" "$root/setup.py" | sha256sum | cut -d' ' -f1)"

check_imports() {
    "$py" - <<'PY'
import torch, torchvision, mmcv, mmengine, mmdet, mmpretrain, mmseg, pycocotools
from mmcv.ops import RoIAlign, nms  # fails when mmcv was built without ops
import mmpartial
assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__
PY
}

if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && check_imports 2>/dev/null; then
    exit 0
fi

log() { echo "[ensure_venv] $*" >&2; }
if [[ ! -x "$py" ]]; then
    base_py="${PYTHON:-python3.11}"
    command -v "$base_py" >/dev/null || base_py=python3
    log "creating $venv with $("$base_py" --version)"
    "$base_py" -m venv "$venv"
fi

constraints="$venv/constraints.txt"
grep -v '^#' "$root/requirements.txt" | grep -v '^$' > "$constraints"
echo 'setuptools>=77,<81' >> "$constraints"
pip=("$py" -m pip install --disable-pip-version-check -c "$constraints")

log "step 1/4: pip, setuptools<81, wheel"
"${pip[@]}" -q -U pip wheel 'setuptools>=77,<81'
log "step 2/4: torch 2.13.0 + torchvision 0.28.0 from the registry (large download the first time)"
"${pip[@]}" -q 'torch===2.13.0' 'torchvision==0.28.0' 'numpy<2'
"$py" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
log "step 3/4: mmcv 2.1.0 with C++ ops (about 15 min to compile the first time; pip caches the wheel)"
"${pip[@]}" -q mmengine==0.10.7 ninja psutil
if ! "$py" -c 'from mmcv.ops import nms' 2>/dev/null; then
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${pip[@]}" --no-build-isolation mmcv==2.1.0
fi
log "step 4/4: mmdet, mmpretrain, mmseg, pycocotools, test tools, mmpartial"
# mmseg imports ftfy and regex without declaring them.
"${pip[@]}" -q mmdet==3.3.0 mmpretrain==1.2.0 mmsegmentation==1.2.2 ftfy regex \
    pycocotools \
    pytest pytest-timeout matplotlib fvcore onnx onnxruntime import-linter
"${pip[@]}" -q --no-deps --no-build-isolation -e "$root"
check_imports
echo "$want" > "$stamp"
log "ready: $venv"

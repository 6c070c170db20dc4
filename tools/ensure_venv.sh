#!/usr/bin/env bash
# Create or reuse the project's virtual environment at <repo>/.venv, with
# the pinned stack of requirements/pinned.txt (docs/get_started.md).
#
# Idempotent: a stamp file records the hash of this script, the
# requirements and setup.py; when none changed and the imports still work,
# the script returns in a second. Order matters:
#   1. torch + torchvision from the registry (they only import together);
#   2. setuptools<81, because mmcv 2.1.0's setup.py imports pkg_resources;
#   3. mmcv built from source WITH its C++ ops and WITHOUT build isolation
#      (with isolation pip builds it against a throw-away torch, without ops);
#   4. mmdet, mmpretrain, mmseg, and this package with all its extras.
# Every step installs under one constraints file, so no dependency can move
# torch. pip's output goes to .venv/install.log; the terminal gets one line
# per step (and the log's last lines if a step fails).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="$venv/bin/python"
stamp="$venv/.mmpartial-stamp"
log_file="$venv/install.log"
want="$(cat "$root/tools/ensure_venv.sh" "$root/requirements/"*.txt "$root/setup.py" \
    | sha256sum | cut -d' ' -f1)"

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
run() {
    # Run a pip step with its output in the log; on failure show its end.
    if ! "$@" >>"$log_file" 2>&1; then
        log "failed: $*"
        log "the last lines of $log_file:"
        tail -25 "$log_file" >&2
        exit 1
    fi
}
start=$(date +%s)
if [[ ! -x "$py" ]]; then
    base_py="${PYTHON:-python3.11}"
    command -v "$base_py" >/dev/null || base_py=python3
    log "creating $venv with $("$base_py" --version)"
    "$base_py" -m venv "$venv"
fi
: > "$log_file"
log "pip's output goes to $log_file"

constraints="$venv/constraints.txt"
grep -v '^#' "$root/requirements/pinned.txt" | grep -v '^$' > "$constraints"
echo 'setuptools>=77,<81' >> "$constraints"
pip=("$py" -m pip install --disable-pip-version-check -c "$constraints")

log "step 1/4: pip, setuptools<81, wheel"
run "${pip[@]}" -U pip wheel 'setuptools>=77,<81'
log "step 2/4: torch 2.13.0 + torchvision 0.28.0 (a large download the first time)"
run "${pip[@]}" 'torch===2.13.0' 'torchvision==0.28.0' 'numpy<2'
log "step 3/4: mmengine, mmcv 2.1.0 with C++ ops (compiled the first time: most of the 14-minute first install on 2 cores; pip caches the wheel)"
run "${pip[@]}" mmengine==0.10.7 ninja psutil
if ! "$py" -c 'from mmcv.ops import nms' 2>/dev/null; then
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        run "${pip[@]}" --no-build-isolation mmcv==2.1.0
fi
log "step 4/4: mmdet, mmpretrain, mmseg and mmpartial with all its extras"
# requirements/seg.txt adds ftfy and regex, which mmseg imports undeclared.
run "${pip[@]}" mmdet==3.3.0 mmpretrain==1.2.0 mmsegmentation==1.2.2
run "${pip[@]}" --no-build-isolation -e "$root[all]"
# The build leaves mmpartial.egg-info in the repository, whose metadata would
# shadow the installed one for code run from the repository root.
rm -rf "$root/mmpartial.egg-info"
check_imports
echo "$want" > "$stamp"
log "ready: $venv ($(( $(date +%s) - start )) s)"

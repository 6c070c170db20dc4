#!/usr/bin/env bash
# GPU readiness of the PartialNet backbone: CUDA against CPU (forward and
# backward, T0 and T2, train and deploy form), throughput at batch 256 in
# bf16/fp16/fp32, eager and compiled, AMP training steps, peak memory.
# The logic is mmpartial/apis/gpu_check.py; figures go to OUT_JSON and a
# Markdown table on stdout. Finishes within 8 minutes (a time budget skips
# what does not fit, and says so).
#
# For a machine whose Python has torch, torchvision and timm but not
# mmengine, and no access to a package index: the few pure-Python packages
# the backbone needs are installed from WHEEL_DIR only (pip --no-index),
# into work_dirs/gpu_site (the machine's Python is not changed). Fill
# WHEEL_DIR beforehand, where an index is reachable, with
# tools/gpu_wheels.sh WHEEL_DIR.
#
# Usage: tools/gpu_check.sh WHEEL_DIR [OUT_JSON] [gpu_check options...]
#   e.g. tools/gpu_check.sh /data/wheels work_dirs/gpu_check.json
#   PYTHON=/opt/conda/bin/python tools/gpu_check.sh /data/wheels
# Exit status: 0 all checks passed; 1 CUDA and CPU differ; 2 no CUDA
# device; 3 a package is missing from WHEEL_DIR; 124 the hard time limit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
wheels="${1:?usage: tools/gpu_check.sh WHEEL_DIR [OUT_JSON] [options]}"
out="${2:-$root/work_dirs/gpu_check.json}"
shift $(( $# >= 2 ? 2 : 1 ))

# 1. A GPU first: without one there is nothing to check or install.
if ! "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
        2>/dev/null; then
    what="$("$py" -c 'import torch; print(f"torch {torch.__version__} (built for CUDA {torch.version.cuda})")' 2>/dev/null || echo "no importable torch in $py")"
    echo "gpu_check: no CUDA device is available to $what on $(hostname); this check needs an NVIDIA GPU" >&2
    exit 2
fi

# 2. What the backbone imports beyond torch/torchvision/timm, from WHEEL_DIR.
site="$root/work_dirs/gpu_site"
export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}"
missing="$("$py" - <<'PY'
import importlib.util
need = {'mmengine': 'mmengine==0.10.7', 'addict': 'addict', 'yapf': 'yapf',
        'platformdirs': 'platformdirs', 'termcolor': 'termcolor',
        'rich': 'rich', 'markdown_it': 'markdown-it-py', 'mdurl': 'mdurl',
        'pygments': 'pygments', 'packaging': 'packaging', 'yaml': 'pyyaml',
        'cv2': 'opencv-python-headless'}
import sys
if sys.version_info < (3, 11):
    need['tomli'] = 'tomli'  # yapf's, before tomllib
print(' '.join(req for mod, req in need.items()
               if importlib.util.find_spec(mod) is None))
PY
)"
if [[ -n "$missing" ]]; then
    echo "[gpu_check] installing from $wheels into $site: $missing" >&2
    # mmengine's declared dependencies include matplotlib and opencv-python,
    # which the backbone never imports: --no-deps, the list above instead.
    if ! "$py" -m pip install --quiet --disable-pip-version-check \
            --no-index --find-links "$wheels" --no-deps --target "$site" \
            $missing; then
        echo "gpu_check: could not install $missing from $wheels (fill it with tools/gpu_wheels.sh)" >&2
        exit 3
    fi
fi

# 3. The check; the Python side keeps to its budget, timeout is the backstop.
cd "$root"
exec timeout --signal=TERM 450 "$py" -m mmpartial.apis.gpu_check \
    --out "$out" --budget 330 "$@"

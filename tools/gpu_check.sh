#!/usr/bin/env bash
# The benchmark's CUDA mode on a GPU machine: every form of T0 and T2
# checked against the CPU (forward and backward, float32), inference at
# batch 256 in bf16/fp16/fp32, channels_last, eager and compiled, train and
# deploy form, peak memory; then AMP training steps. Each run writes
# OUT_DIR/<name>.json and its Markdown table OUT_DIR/<name>.md as it ends,
# most important first, so a run cut short by the time limit keeps the
# ones before it.
#
# For a machine whose Python has torch (and torchvision) but not mmengine,
# and no access to a package index: the few pure-Python packages the
# benchmark needs are installed from WHEEL_DIR only (pip --no-index) into
# work_dirs/gpu_site (the machine's Python is not changed). Fill WHEEL_DIR
# beforehand, where an index is reachable, with tools/gpu_wheels.sh.
#
# Usage: tools/gpu_check.sh WHEEL_DIR [OUT_DIR] [benchmark options...]
#   e.g. tools/gpu_check.sh /data/wheels work_dirs/gpu
#   PYTHON=/opt/conda/bin/python BUDGET=400 tools/gpu_check.sh /data/wheels
# Exit status: 0 every run passed; 1 a run failed (or CUDA and the CPU
# differ); 2 no CUDA device; 3 a package is missing from WHEEL_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
wheels="${1:?usage: tools/gpu_check.sh WHEEL_DIR [OUT_DIR] [options]}"
out="${2:-$root/work_dirs/gpu_check}"
shift $(( $# >= 2 ? 2 : 1 ))
budget="${BUDGET:-450}"  # seconds for all runs together

# 1. A GPU first: without one there is nothing to check or install.
if ! "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
        2>/dev/null; then
    what="$("$py" -c 'import torch; print(f"torch {torch.__version__} (built for CUDA {torch.version.cuda})")' 2>/dev/null || echo "no importable torch in $py")"
    echo "gpu_check: no CUDA device is available to $what on $(hostname); this check needs an NVIDIA GPU" >&2
    exit 2
fi

# 2. What the benchmark imports beyond torch, from WHEEL_DIR.
site="$root/work_dirs/gpu_site"
export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}"
missing="$("$py" - <<'PY'
import importlib.util
import sys
need = {'mmengine': 'mmengine==0.10.7', 'addict': 'addict', 'yapf': 'yapf',
        'platformdirs': 'platformdirs', 'termcolor': 'termcolor',
        'rich': 'rich', 'markdown_it': 'markdown-it-py', 'mdurl': 'mdurl',
        'pygments': 'pygments', 'packaging': 'packaging', 'yaml': 'pyyaml',
        'cv2': 'opencv-python-headless'}
if sys.version_info < (3, 11):
    need['tomli'] = 'tomli'  # yapf's, before tomllib
print(' '.join(req for mod, req in need.items()
               if importlib.util.find_spec(mod) is None))
PY
)"
if [[ -n "$missing" ]]; then
    echo "[gpu_check] installing from $wheels into $site: $missing" >&2
    # mmengine declares matplotlib and opencv-python, which the benchmark
    # never imports: --no-deps, the list above instead.
    if ! "$py" -m pip install --quiet --disable-pip-version-check \
            --no-index --find-links "$wheels" --no-deps --target "$site" \
            $missing; then
        echo "gpu_check: could not install $missing from $wheels (fill it with tools/gpu_wheels.sh)" >&2
        exit 3
    fi
fi

# 3. The runs, most important first, within the budget.
cd "$root"
mkdir -p "$out"
started=$SECONDS status=0
bench() {
    local name="$1" left=$(( budget - (SECONDS - started) ))
    shift
    if (( left < 30 )); then
        echo "[gpu_check] $name: skipped (time budget)" >&2
        return
    fi
    echo "[gpu_check] $name ..." >&2
    timeout --signal=TERM "$left" "$py" tools/benchmark.py --device cuda \
        "$@" --json "$out/$name.json" > "$out/$name.md" || status=1
    cat "$out/$name.md"
}
infer=(--dtype bf16 fp16 fp32 --channels-last --compile --batch 256)
train=(--dtype bf16 fp16 --channels-last --compile --batch 256 --train-step
       --no-inference)
bench t0 --arch t0 "${infer[@]}" "$@"
bench t2 --arch t2 "${infer[@]}" "$@"
bench t0-train-step --arch t0 "${train[@]}" "$@"
bench t2-train-step --arch t2 "${train[@]}" "$@"
exit $status

#!/usr/bin/env bash
# Create or reuse .venv/oldest-torch: the oldest torch the backbone
# supports (requirements/oldest.txt) with mmpartial installed the way a
# user installs it into an existing environment, `pip install -e .`, which
# must leave that torch as it is. No mmcv, mmdet or mmpretrain: the backbone
# and its layers need torch and mmengine only.
#
# Idempotent like tools/ensure_venv.sh: a stamp of this script, the
# requirements and setup.py; returns in a second when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv/oldest-torch"
py="$venv/bin/python"
stamp="$venv/.mmpartial-stamp"
log_file="$root/.venv/oldest-torch-install.log"
want="$(cat "$root/tools/ensure_oldest_venv.sh" "$root/requirements/"*.txt \
    "$root/setup.py" | sha256sum | cut -d' ' -f1)"
torch_version="$(sed -n 's/^torch==//p' "$root/requirements/oldest.txt")"

check_imports() {
    "$py" - "$torch_version" <<'PY'
import sys
import torch, mmengine, mmpartial
assert torch.__version__.split('+')[0] == sys.argv[1], torch.__version__
PY
}

if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && check_imports 2>/dev/null; then
    exit 0
fi

log() { echo "[ensure_oldest_venv] $*" >&2; }
fail() { log "failed; the last lines of $log_file:"; tail -20 "$log_file" >&2; exit 1; }
mkdir -p "$root/.venv"
: > "$log_file"
if [[ ! -x "$py" ]]; then
    base_py="${PYTHON:-python3.11}"
    command -v "$base_py" >/dev/null || base_py=python3
    log "creating $venv with $("$base_py" --version)"
    "$base_py" -m venv "$venv"
fi
pip=("$py" -m pip install --disable-pip-version-check -q)
log "torch $torch_version and numpy 1 (log: $log_file)"
"${pip[@]}" -U pip >>"$log_file" 2>&1 || fail
"${pip[@]}" -c "$root/requirements/oldest.txt" "torch==$torch_version" 'numpy<2' \
    >>"$log_file" 2>&1 || fail
log "pip install -e '.[tests]': mmpartial's own requirements"
# Only numpy is held; torch must stay where it is by itself (checked below).
"${pip[@]}" 'numpy<2' 'mmengine==0.10.7' -e "$root[tests]" >>"$log_file" 2>&1 || fail
# The build leaves mmpartial.egg-info in the repository, whose metadata would
# shadow the installed one for code run from the repository root.
rm -rf "$root/mmpartial.egg-info"
check_imports || { log "installing mmpartial moved torch off $torch_version"; exit 1; }
echo "$want" > "$stamp"
log "ready: $venv (torch $("$py" -c 'import torch; print(torch.__version__)'))"

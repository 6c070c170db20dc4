#!/usr/bin/env bash
# Create or reuse the environments, then run the test suite. .ci/run runs
# exactly this.
#   1. tests/models and the packaging tests on the oldest supported torch
#      (.venv/oldest-torch: torch and mmengine only, mmpartial installed
#      with `pip install -e .`);
#   2. the whole suite in .venv (the pinned stack). Extra arguments go to
#      this run, e.g. `bash tools/run_tests.sh -m "not slow"` for the quick
#      tier.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/ensure_venv.sh
bash tools/ensure_oldest_venv.sh
oldest="$root/.venv/oldest-torch/bin/python"
echo "[run_tests] the backbone and its layers on torch $("$oldest" -c 'import torch; print(torch.__version__)')"
"$oldest" -m pytest tests/models tests/test_packaging.py -q -p no:cacheprovider
echo "[run_tests] the whole suite on the pinned stack"
exec "$root/.venv/bin/python" -m pytest tests -q -p no:cacheprovider "$@"

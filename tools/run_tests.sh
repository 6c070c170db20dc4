#!/usr/bin/env bash
# Create or reuse .venv, then run the test suite. .ci/run runs exactly this.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/ensure_venv.sh
exec "$root/.venv/bin/python" -m pytest tests -q -p no:cacheprovider "$@"

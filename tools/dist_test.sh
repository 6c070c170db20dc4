#!/usr/bin/env bash
# Distributed testing with torchrun (PyTorch DDP).
#   tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args]
# One process per GPU; on a machine without GPUs the processes run on the
# CPU and talk through gloo. NNODES, NODE_RANK, MASTER_ADDR and PORT select
# a multi-node run.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "usage: $0 CONFIG CHECKPOINT NPROC [test.py args...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON=python
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$root/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"

#!/usr/bin/env bash
# The main job on the embedded default data, from a fresh clone:
#   1. create or reuse .venv (tools/ensure_venv.sh);
#   2. write the toy COCO set to data/toy_coco (kept if already there);
#   3. train PartialNet-T0 Mask R-CNN on it (configs/mask-rcnn_partialnet-t0_toy.py),
#      evaluating COCO bbox + segm AP at the end;
#   4. test the final checkpoint and save pictures of its predictions.
# Every run gets its own work dir, so earlier runs are never overwritten.
# Extra arguments go to tools/train.py (e.g. --cfg-options train_cfg.max_epochs=2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/ensure_venv.sh
py="$root/.venv/bin/python"
config=configs/mask-rcnn_partialnet-t0_toy.py
data=data/toy_coco
work_dir="work_dirs/demo_$(date +%Y%m%d_%H%M%S)"

if [[ ! -f "$data/annotations/instances_val2017.json" ]]; then
    "$py" tools/make_toy_coco.py "$data" --train 64 --val 16 --seed 0
fi
echo "== training $config (log and checkpoints in $work_dir)"
"$py" tools/train.py "$config" --work-dir "$work_dir" "$@"
ckpt="$(cat "$work_dir/last_checkpoint")"
echo "== testing $ckpt"
"$py" tools/test.py "$config" "$ckpt" --work-dir "$work_dir/test" \
    --show-dir "$work_dir/pictures"
log="$(ls -t "$work_dir"/*/*.log | tail -n 1)"
echo
echo "Done."
echo "  training log:  $log"
echo "  checkpoint:    $ckpt"
echo "  pictures:      $work_dir/pictures (ground truth left, prediction right)"
echo "  COCO AP:       the 'coco/bbox_mAP' and 'coco/segm_mAP' lines above"

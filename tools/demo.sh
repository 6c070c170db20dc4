#!/usr/bin/env bash
# The main job on embedded data, from a fresh clone: the paper's workflow in
# miniature (tools/toy_pipeline.py, mmpartial/apis/toy_pipeline.py):
#   1. create or reuse .venv (tools/ensure_venv.sh);
#   2. write the toy shapes classification set and the toy COCO set under
#      data/ (kept while unchanged);
#   3. pretrain PartialNet-T0 as a classifier on the shapes
#      (configs/partialnet-t0_toy-shapes.py);
#   4. hand its backbone to Mask R-CNN (init_cfg, prefix='backbone.') and
#      train it on the toy COCO set (configs/mask-rcnn_partialnet-t0_toy.py);
#   5. COCO bbox + segm AP of the final checkpoint, pictures of its
#      predictions, and the paper's tables of both stages.
# Every run gets its own work dir, so earlier runs are never overwritten.
# The terminal shows a few lines per stage and a progress display; each
# stage's full log is <stage>/console.log (beside mmengine's own log).
# Extra arguments go to tools/toy_pipeline.py
# (e.g. --detect-options train_cfg.max_epochs=2 for a quick look).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/ensure_venv.sh
# setuptools < 81 (for mmcv 2.1's setup.py) warns at every import of
# pkg_resources, which mmengine and mmcv do; the warning is about them.
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore:pkg_resources is deprecated:UserWarning}"
work_dir="work_dirs/demo_$(date +%Y%m%d_%H%M%S)"
start=$(date +%s)
"$root/.venv/bin/python" tools/toy_pipeline.py --work-dir "$work_dir" "$@"
echo
echo "Done in $(( $(date +%s) - start )) s."
echo "  classifier:  $work_dir/pretrain"
echo "  detector:    $work_dir/detect (logs, checkpoints, COCO AP)"
echo "  pictures:    $work_dir/pictures (ground truth left, prediction right)"
echo "  tables:      $work_dir/results.md"

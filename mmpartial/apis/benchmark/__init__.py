"""Measure a PartialNet model (``tools/benchmark.py``): parameters, MACs,
latency, throughput and training steps, on the CPU or a GPU, in PyTorch
(eager and compiled) and in ONNX runtimes.

- :mod:`.options`: the settings of a run, their checks, the errors;
- :mod:`.targets`: the models to time (a classifier, a detector or
  segmentor and its backbone) and how to feed them; :mod:`.build`: building
  them from ``--arch`` or a config, and their deploy form; :mod:`.layers`:
  single layers and blocks at one stage's shape (``--layers``);
- :mod:`.device`: the device, the dtypes and the machine's description;
- :mod:`.timing`: side-by-side timing and its summaries;
- :mod:`.runtimes`: onnxruntime and OpenVINO as backends;
- :mod:`.agreement`: a GPU's forward and backward against the CPU's;
- :mod:`.train_step`: training steps and their peak memory;
- :mod:`.run`: a whole run; :mod:`.report`: its Markdown.

Nothing here imports mmpretrain, mmdet or mmcv at import time (a config's
model imports its codebase when built), so ``--arch`` runs with torch and
mmengine alone.
"""
from .device import DTYPES, check_dtype, machine_info, resolve_device
from .options import (BACKENDS, FORMS, BenchmarkError, BenchmarkOptions,
                      UnsupportedError, options_problem)
from .layers import LAYER_KINDS, build_layer_targets
from .report import markdown_report
from .run import failed_rows, run_benchmark, write_json
from .build import ArchClassifier, build_targets, deploy_copy
from .timing import (images_per_second, paired_speedup, summarize,
                     time_side_by_side)

__all__ = [
    'ArchClassifier', 'BACKENDS', 'BenchmarkError', 'BenchmarkOptions',
    'DTYPES', 'FORMS', 'LAYER_KINDS', 'UnsupportedError',
    'build_layer_targets', 'build_targets', 'check_dtype',
    'deploy_copy', 'failed_rows', 'images_per_second', 'machine_info',
    'markdown_report', 'options_problem', 'paired_speedup', 'resolve_device',
    'run_benchmark', 'summarize', 'time_side_by_side', 'write_json'
]

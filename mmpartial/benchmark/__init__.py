"""Helpers of ``tools/benchmark.py``: what to time, how to count and time it,
and how to report it.

- :mod:`.models` builds the models to time (a classifier from ``--arch`` or a
  config, a detector and its backbone) and their deploy form;
- :mod:`.counting` counts parameters and fvcore multiply-adds;
- :mod:`.timing` checks the device and dtypes, times callables and measures
  the float32 matrix-multiply peak;
- :mod:`.report` collects the machine's description and writes the Markdown
  table and the JSON.

Nothing here imports mmpretrain or mmdet at import time: the builders import
them when a model is built, so bad command lines fail fast.
"""
from .counting import MAC_COUNTING, MATMUL_LIKE_OPS, count_macs, count_params
from .models import (BenchmarkError, BenchmarkTarget, build_targets,
                     deploy_copy)
from .report import machine_info, markdown_report
from .timing import (DTYPES, check_dtype, matmul_peak, resolve_device,
                     paired_speedup, summarize,
                     time_side_by_side)

__all__ = [
    'BenchmarkError', 'BenchmarkTarget', 'DTYPES', 'MAC_COUNTING',
    'MATMUL_LIKE_OPS', 'build_targets', 'check_dtype', 'count_macs',
    'count_params', 'deploy_copy', 'machine_info', 'markdown_report',
    'matmul_peak', 'paired_speedup', 'resolve_device', 'summarize',
    'time_side_by_side'
]

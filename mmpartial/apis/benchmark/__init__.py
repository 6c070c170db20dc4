"""Measure a PartialNet model: parameters, MACs, latency and throughput,
against the machine's float32 peak, and training steps
(``tools/benchmark.py``).

- :mod:`.options`: the settings of a run and their checks;
- :mod:`.targets`: the models to time (a classifier from ``--arch`` or a
  config, a detector and its backbone), built through
  :mod:`mmpartial.apis.model`; :mod:`.forms`: their deploy form;
- :mod:`.counting`: parameters and multiply-adds (mmengine.analysis);
- :mod:`.devices`: the device and dtypes, probed; :mod:`.timing`: timing
  loops and summaries; :mod:`.peak`: the float32 peak, a ceiling measured
  on the models' own matrix multiplies;
- :mod:`.train_step`: training steps and their peak memory;
- :mod:`.run`: a whole run; :mod:`.results`: its rows;
  :mod:`.progress`: its progress lines;
- :mod:`.machine` and :mod:`.report`: the machine's description and the
  Markdown report.

Nothing here imports mmpretrain or mmdet at import time: they are imported
when a model is built, so bad command lines fail fast.
"""
from .counting import MAC_COUNTING, MATMUL_LIKE_OPS, count_macs, count_params
from .devices import DTYPES, check_dtype, resolve_device
from .errors import BenchmarkError, UnsupportedError
from .forms import deploy_copy
from .machine import machine_info
from .options import FORMS, BenchmarkOptions, options_problem
from .peak import measure_peak, nominal_peak, record_gemms
from .report import markdown_report
from .run import failed_rows, run_benchmark, write_json
from .targets import (BenchmarkTarget, arch_classifier_config,
                      build_benchmark_model, build_targets)
from .timing import (images_per_second, paired_speedup, summarize,
                     time_side_by_side)
from .train_step import make_train_step, peak_memory

__all__ = [
    'BenchmarkError', 'BenchmarkOptions', 'BenchmarkTarget', 'DTYPES',
    'FORMS', 'MAC_COUNTING', 'MATMUL_LIKE_OPS', 'UnsupportedError',
    'arch_classifier_config', 'build_benchmark_model', 'build_targets',
    'check_dtype', 'count_macs', 'count_params', 'deploy_copy', 'failed_rows',
    'images_per_second', 'machine_info', 'make_train_step',
    'markdown_report', 'measure_peak', 'nominal_peak', 'options_problem',
    'paired_speedup', 'peak_memory', 'record_gemms', 'resolve_device',
    'run_benchmark', 'summarize', 'time_side_by_side', 'write_json'
]

"""The settings of a benchmark run, their checks, and the benchmark's
errors."""
import dataclasses
import os.path as osp
from typing import List, Optional

from mmpartial.models import PartialNet
from .layers import LAYER_KINDS, layer_problem

#: ``train``: the model as built; ``deploy``: after ``switch_to_deploy()``.
FORMS = ('train', 'deploy')
#: How a form runs: PyTorch eagerly or under ``torch.compile``, or exported
#: to ONNX and run by a runtime (see :mod:`~.runtimes`).
BACKENDS = ('eager', 'compiled', 'onnxruntime', 'openvino')
DTYPE_NAMES = ('fp32', 'bf16', 'fp16')


class BenchmarkError(ValueError):
    """A bad input to the benchmark (config, arch, checkpoint, options)."""


class UnsupportedError(BenchmarkError):
    """A device, dtype or runtime this machine cannot run."""


@dataclasses.dataclass
class BenchmarkOptions:
    """What to measure and how; the fields are ``tools/benchmark.py``'s
    options, with its defaults.

    Exactly one of ``config``, ``arch`` and ``layers`` (``[C, H]`` or
    ``[C, H, W]``: the layer profile of :mod:`~.layers`, optionally only
    ``layer_kinds``) names what to time. ``threads`` and
    ``batch_threads`` default to torch's thread count (``batch_threads``
    to ``threads``); :func:`~.run.run_benchmark` fills them in.
    ``compile=True`` is short for adding ``'compiled'`` to ``backend``.
    """
    config: Optional[str] = None
    arch: Optional[str] = None
    layers: Optional[List[int]] = None
    layer_kinds: Optional[List[str]] = None
    checkpoint: Optional[str] = None
    cfg_options: Optional[dict] = None
    device: str = 'cpu'
    dtype: List[str] = dataclasses.field(default_factory=lambda: ['fp32'])
    form: List[str] = dataclasses.field(default_factory=lambda: list(FORMS))
    backend: List[str] = dataclasses.field(default_factory=lambda: ['eager'])
    img_size: Optional[List[int]] = None
    batch: int = 32
    threads: Optional[int] = None
    batch_threads: Optional[int] = None
    repeats: int = 20
    warmup: int = 5
    channels_last: bool = False
    compile: bool = False
    compile_options: Optional[dict] = None
    inference: bool = True
    train_step: bool = False
    json: Optional[str] = None
    quiet: bool = False

    @classmethod
    def default(cls, name):
        """The default of field ``name`` (for a command line's help)."""
        field = cls.__dataclass_fields__[name]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default


def compile_options_unknown(compile_options):
    """The keys of ``compile_options`` that ``torch.compile`` would refuse
    (Inductor's config names, dotted for nested ones), sorted."""
    import torch._inductor.config as inductor_config
    known = inductor_config.get_config_copy()
    return sorted(key for key in compile_options if key not in known)


def _unknown(values, known, what):
    unknown = [value for value in values if value not in known]
    if unknown:
        return f'unknown {what} {unknown}; choose from {list(known)}'
    return None


def options_problem(options):
    """What is contradictory or impossible in ``options``, or None.

    Checked before anything is built. ``compile`` is folded into
    ``backend``, and duplicated dtypes, forms and backends (which would
    only repeat rows) are dropped, in place.
    """
    given = [options.config, options.arch, options.layers]
    if sum(value is not None for value in given) != 1:
        return 'give a config, --arch or --layers (exactly one of them)'
    if options.layer_kinds is not None and options.layers is None:
        return '--layer-kinds needs --layers'
    if options.layers is not None:
        problem = _unknown(options.layer_kinds or [], LAYER_KINDS,
                           'layer kind')
        if problem:
            return problem
        for name in ('img_size', 'checkpoint', 'cfg_options'):
            if getattr(options, name) is not None:
                return (f'--{name.replace("_", "-")} does not apply to '
                        '--layers: it times initialised layers on inputs '
                        'of the shape C H [W]')
        problem = layer_problem(options.layers, options.layer_kinds)
        if problem:
            return problem
    if options.arch is not None and options.arch not in PartialNet.arch_zoo:
        return (f'unknown arch {options.arch!r}; choose from '
                f'{list(PartialNet.arch_zoo)}')
    if options.arch and options.cfg_options:
        return '--cfg-options needs a config, not --arch'
    if options.config is not None and not osp.isfile(options.config):
        return f'config file {options.config!r} does not exist'
    if options.img_size is not None:
        if len(options.img_size) not in (1, 2):
            return '--img-size takes H or H W'
        if min(options.img_size) < PartialNet.stride:
            return (f'--img-size {options.img_size}: each side must be at '
                    f'least {PartialNet.stride}, PartialNet\'s total stride')
    for name in ('batch', 'repeats', 'threads', 'batch_threads'):
        value = getattr(options, name)
        if value is not None and value < 1:
            return f'--{name.replace("_", "-")} must be >= 1, got {value}'
    if options.warmup < 0:
        return f'--warmup must be >= 0, got {options.warmup}'
    problem = (_unknown(options.dtype, DTYPE_NAMES, 'dtype') or
               _unknown(options.form, FORMS, 'form') or
               _unknown(options.backend, BACKENDS, 'backend'))
    if problem:
        return problem
    if options.compile:
        options.backend = [*options.backend, 'compiled']
    options.compile = 'compiled' in options.backend
    if options.compile_options:
        if not options.compile:
            return '--compile-options needs --compile'
        unknown = compile_options_unknown(options.compile_options)
        if unknown:
            return (f'unknown --compile-options {unknown}: the keys are '
                    'those of torch._inductor.config, e.g. freezing, '
                    'max_autotune, cpp.threads')
    if not (options.inference or options.train_step):
        return 'nothing to measure: --no-inference needs --train-step'
    for name in ('dtype', 'form', 'backend'):
        setattr(options, name, list(dict.fromkeys(getattr(options, name))))
    return None

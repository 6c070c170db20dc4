"""The settings of a benchmark run, and their checks."""
import dataclasses
import os.path as osp
from typing import List, Optional

from mmpartial.models import PartialNet
from .devices import DTYPES

#: ``train``: the model as built; ``deploy``: after ``switch_to_deploy()``.
FORMS = ('train', 'deploy')


@dataclasses.dataclass
class BenchmarkOptions:
    """What to measure and how; the fields are ``tools/benchmark.py``'s
    options, with its defaults.

    Exactly one of ``config`` and ``arch`` names the model. ``threads`` and
    ``batch_threads`` default to torch's thread count (``batch_threads``
    to ``threads``); :func:`~.run.run_benchmark` fills them in.
    """
    config: Optional[str] = None
    arch: Optional[str] = None
    checkpoint: Optional[str] = None
    cfg_options: Optional[dict] = None
    device: str = 'cpu'
    dtype: List[str] = dataclasses.field(default_factory=lambda: ['fp32'])
    form: List[str] = dataclasses.field(default_factory=lambda: list(FORMS))
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
    peak_size: Optional[int] = None
    peak_seconds: float = 0.05
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


def options_problem(options):
    """What is contradictory or impossible in ``options``, or None.

    Checked before anything is built. Duplicated dtypes and forms (which
    would only repeat rows) are dropped from ``options`` in place.
    """
    if (options.config is None) == (options.arch is None):
        return 'give a config or --arch (exactly one of them)'
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
    for name in ('batch', 'repeats', 'threads', 'batch_threads',
                 'peak_size'):
        value = getattr(options, name)
        if value is not None and value < 1:
            return f'--{name.replace("_", "-")} must be >= 1, got {value}'
    if options.warmup < 0:
        return f'--warmup must be >= 0, got {options.warmup}'
    if not options.peak_seconds > 0:
        return f'--peak-seconds must be > 0, got {options.peak_seconds}'
    if options.compile_options:
        if not options.compile:
            return '--compile-options needs --compile'
        unknown = compile_options_unknown(options.compile_options)
        if unknown:
            return (f'unknown --compile-options {unknown}: the keys are '
                    'those of torch._inductor.config, e.g. freezing, '
                    'max_autotune, cpp.threads')
    if not (options.inference or options.train_step):
        return ('nothing to measure: --no-inference needs --train-step')
    unknown = [name for name in options.dtype if name not in DTYPES]
    unknown += [name for name in options.form if name not in FORMS]
    if unknown:
        return (f'unknown dtype or form {unknown}; dtypes: {list(DTYPES)}, '
                f'forms: {list(FORMS)}')
    options.dtype = list(dict.fromkeys(options.dtype))
    options.form = list(dict.fromkeys(options.form))
    return None

"""Checking ``PartialNet(dpconv=dict(...))``.

The backbone keeps the checked options as ``dpconv_cfg``;
:class:`~mmpartial.engine.DPConvHook` reads the training ones from there,
so a config sets DPConv in one place.
"""
import math

# option: (default, description of the valid range)
DPCONV_OPTIONS = {
    'mode': ('split', "'split' (DPConv sets each PAT layer's split, the "
             "paper's) or 'auto_div' (DPConv replaces each token mixer, the "
             "reference code's)"),
    'loss_form': ('multiplicative', "'multiplicative' (task losses times "
                  "(T / R)**alpha, the reference's) or 'additive'"),
    'budget': (2., 'a number > 1 (the budget T is the cost at the split '
               '1 / budget**2)'),
    'theta': (0., 'a number in [0, 1) (0 turns the lower bound off)'),
    'alpha': (.01, 'a number > 0 (|alpha| of the multiplicative form)'),
    'complexity_weight': (.01, 'a number >= 0 (additive form)'),
    'ordering_weight': (1., 'a number >= 0'),
    'warmup_epochs': (0, 'an int >= 0'),
    'init_gate': (1e-8, 'a number in (0, 1)'),
    'init_split': (None, "None (1 / n_div; random for auto_div), 'random' "
                   'or 2**-z for an integer z >= 0'),
    'train_form': (None, "None, 'partial' or 'group' (auto_div only; None "
                   "is 'group', the reference's)"),
}
_CHOICES = {
    'mode': ('split', 'auto_div'),
    'loss_form': ('multiplicative', 'additive'),
}


def _in_range(name, value):
    if name == 'budget':
        return value > 1
    if name == 'theta':
        return 0 <= value < 1
    if name in ('init_gate', ):
        return 0 < value < 1
    if name == 'alpha':
        return value > 0
    return value >= 0


def _check_init_split(value):
    valid = DPCONV_OPTIONS['init_split'][1]
    if value is None or (isinstance(value, str) and value == 'random'):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'PartialNet dpconv init_split must be {valid}, got '
                        f'{type(value).__name__} {value!r}')
    if not 0 < value <= 1 or 2.**-round(-math.log2(value)) != value:
        raise ValueError(f'PartialNet dpconv init_split must be {valid}, got '
                         f'{value!r}')


def parse_dpconv_cfg(cfg):
    """Check the ``dpconv`` options of :class:`PartialNet`, fill defaults.

    Args:
        cfg (dict, optional): Any of the keys of :data:`DPCONV_OPTIONS`.
            None turns DPConv off; ``dict()`` is DPConv with the defaults.

    Returns:
        dict | None: Every option, as a plain dict.

    Raises:
        ValueError: An unknown key, or a value out of its range (the message
            names the option and the range).
        TypeError: ``cfg`` is not a dict, or a value is not of its type.
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise TypeError(f'PartialNet dpconv must be a dict of options (or '
                        f'None for no DPConv), got {type(cfg).__name__}')
    unknown = sorted(set(cfg) - set(DPCONV_OPTIONS))
    if unknown:
        raise ValueError(f'unknown PartialNet dpconv option(s) '
                         f'{", ".join(map(repr, unknown))}; valid options are '
                         f'{", ".join(DPCONV_OPTIONS)}')
    parsed = {name: default for name, (default, _) in DPCONV_OPTIONS.items()}
    parsed.update(cfg)
    for name, value in parsed.items():
        valid = DPCONV_OPTIONS[name][1]
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise ValueError(f'PartialNet dpconv {name} must be {valid}, '
                                 f'got {value!r}')
            continue
        if name == 'init_split':
            _check_init_split(value)
            continue
        if name == 'train_form':
            if value not in (None, 'partial', 'group'):
                raise ValueError(f'PartialNet dpconv train_form must be '
                                 f'{valid}, got {value!r}')
            continue
        wanted = int if name == 'warmup_epochs' else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise TypeError(f'PartialNet dpconv {name} must be {valid}, got '
                            f'{type(value).__name__} {value!r}')
        if not (math.isfinite(value) and _in_range(name, value)):
            raise ValueError(f'PartialNet dpconv {name} must be {valid}, got '
                             f'{value!r}')
    if parsed['train_form'] is not None and parsed['mode'] != 'auto_div':
        raise ValueError("PartialNet dpconv train_form is an option of "
                         "mode='auto_div' (a learned PAT split always trains "
                         "in its partial form); remove it or set "
                         "mode='auto_div'")
    return parsed

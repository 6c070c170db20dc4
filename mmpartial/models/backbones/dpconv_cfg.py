"""Checking ``PartialNet(dpconv=dict(...))``.

The backbone keeps the checked options as ``dpconv_cfg``;
:class:`~mmpartial.engine.DPConvHook` reads the training ones from there,
so a config sets DPConv in one place.
"""
import math

# option: (default, description of the valid range)
DPCONV_OPTIONS = {
    'budget': (2., 'a number > 1 (the budget is sum_l C_l**2 / budget**2)'),
    'theta': (.5, 'a number in [0, 1) (0 turns the lower bound off)'),
    'complexity_weight': (.01, 'a number >= 0'),
    'ordering_weight': (1., 'a number >= 0'),
    'warmup_epochs': (0, 'an int >= 0'),
    'init_gate': (1e-8, 'a number in (0, 1)'),
}


def _in_range(name, value):
    if name == 'budget':
        return value > 1
    if name == 'theta':
        return 0 <= value < 1
    if name == 'init_gate':
        return 0 < value < 1
    return value >= 0


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
        TypeError: ``cfg`` is not a dict, or a value is not a number (not an
            int for ``warmup_epochs``).
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
        wanted = int if name == 'warmup_epochs' else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise TypeError(f'PartialNet dpconv {name} must be {valid}, got '
                            f'{type(value).__name__} {value!r}')
        if not (math.isfinite(value) and _in_range(name, value)):
            raise ValueError(f'PartialNet dpconv {name} must be {valid}, got '
                             f'{value!r}')
    return parsed

"""Checking ``PartialNet(dpconv=dict(...))``.

The backbone keeps the checked options as ``dpconv_cfg``;
:class:`~mmpartial.engine.DPConvHook` reads the training ones from there,
so a config sets DPConv in one place.
"""
import math

from ..layers.dpconv import check_number, split_zeros

# option: (default, the valid values in words, their test: a tuple of the
# choices, or a predicate of a number)
DPCONV_OPTIONS = {
    'mode': ('split', "'split' (DPConv sets each PAT layer's split, the "
             "paper's) or 'auto_div' (DPConv replaces each token mixer, the "
             "reference code's)", ('split', 'auto_div')),
    'loss_form': ('multiplicative', "'multiplicative' (task losses times "
                  "(T / R)**alpha, the reference's) or 'additive'",
                  ('multiplicative', 'additive')),
    'budget': (2., 'a number > 1 (the budget T is the cost at the split '
               '1 / budget**2)', lambda v: v > 1),
    'theta': (0., 'a number in [0, 1) (0 turns the lower bound off)',
              lambda v: 0 <= v < 1),
    'alpha': (.01, 'a number > 0 (|alpha| of the multiplicative form)',
              lambda v: v > 0),
    'complexity_weight': (.01, 'a number >= 0 (additive form)',
                          lambda v: v >= 0),
    'ordering_weight': (1., 'a number >= 0', lambda v: v >= 0),
    'warmup_epochs': (0, 'an int >= 0', lambda v: v >= 0),
    'init_gate': (1e-8, 'a number in (0, 1)', lambda v: 0 < v < 1),
    'init_split': (None, "None (1 / n_div; random for auto_div), 'random' "
                   'or 2**-z for an integer z >= 0',
                   lambda v: split_zeros(v) is not None),
    'train_form': (None, "None, 'partial' or 'group' (auto_div only; None "
                   "is 'group', the reference's)", (None, 'partial', 'group')),
}


def parse_dpconv_cfg(cfg):
    """Check the ``dpconv`` options of :class:`PartialNet` (None: no
    DPConv) and return all of them, defaults filled in. Raises TypeError or
    ValueError naming the option and its valid values."""
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
    parsed = {name: default for name, (default, _, _) in
              DPCONV_OPTIONS.items()}
    parsed.update(cfg)
    for name, value in parsed.items():
        _, valid, ok = DPCONV_OPTIONS[name]
        what = f'PartialNet dpconv {name}'
        if isinstance(ok, tuple):
            if value not in ok:
                raise ValueError(f'{what} must be {valid}, got {value!r}')
        elif not (name == 'init_split' and (value is None or
                                            value == 'random')):
            check_number(what, value, valid,
                         lambda v: math.isfinite(v) and ok(v),
                         int if name == 'warmup_epochs' else (int, float))
    if parsed['train_form'] is not None and parsed['mode'] != 'auto_div':
        raise ValueError("PartialNet dpconv train_form is an option of "
                         "mode='auto_div' (a learned PAT split always trains "
                         "in its partial form); remove it or set "
                         "mode='auto_div'")
    return parsed

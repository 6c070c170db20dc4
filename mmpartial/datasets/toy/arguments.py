"""Checks of the integer arguments of the toy-data generators.

The functions and the command lines share them so that a bad value gets
the same message either way, naming the argument (``num_classes`` in
Python, ``--classes`` on the command line) and the allowed range.
"""
import argparse

import numpy as np


def check_int(arg, value, lo, hi=None, hint=''):
    """Raise ValueError naming ``arg`` unless lo <= value (<= hi).

    ``hint`` is appended to the out-of-range message (e.g. where a maximum
    comes from). Floats and bools are refused even when integral: a count
    of ``2.5`` or ``True`` images is a mistake, not a request.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f'{arg} must be an integer, got {value!r}')
    if value < lo or (hi is not None and value > hi):
        allowed = f'between {lo} and {hi}' if hi is not None else f'>= {lo}'
        raise ValueError(f'{arg} must be {allowed}, got {value}{hint}')


def int_arg(arg, lo, hi=None, hint=''):
    """argparse ``type`` for an integer flag ``arg`` in [lo, hi].

    A bad value becomes argparse's usual error (exit status 2, usage on
    stderr) whose message names the flag and the allowed range.
    """

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'must be an integer, got {text!r}') from None
        try:
            check_int(arg, value, lo, hi, hint)
        except ValueError as e:
            # argparse already prefixes "argument <arg>: ".
            raise argparse.ArgumentTypeError(
                str(e).replace(f'{arg} ', '', 1)) from None
        return value

    parse.__name__ = arg.lstrip('-')
    return parse

"""Run a tool's ``main(argv)`` in this process, as its command line would.

The bad-input tests of the tools need no new interpreter: their errors come
from argument parsing or from the first file written. An unexpected
exception propagates and fails the test, which a spawned run would show as
a traceback on stderr. Each tool keeps one spawned test of its entry point.
"""
import os.path as osp
import runpy
from collections import namedtuple

from conftest import REPO

Result = namedtuple('Result', 'returncode stdout stderr')


def run_main(tool, capsys, *args):
    """``tools/<tool>``'s ``main`` on ``args`` (each converted with
    ``str``), its output captured by pytest's ``capsys``.

    Returns:
        Result: The exit status (``main``'s return value, or the code of
        the SystemExit it raised: argparse's 2, ``sys.exit('message')``'s
        1) and what it printed.
    """
    main = runpy.run_path(osp.join(REPO, 'tools', tool))['main']
    capsys.readouterr()  # drop what earlier steps of the test printed
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    if isinstance(code, str):  # sys.exit('message') prints it to stderr
        code, err = 1, err + code
    return Result(code or 0, out, err)

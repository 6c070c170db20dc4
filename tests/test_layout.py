"""The repository's layout contract: layers import downwards only (the
import-linter contract in .importlinter), tools stay thin, tests use the
package and nothing outside the repository."""
import glob
import os.path as osp
import re
import subprocess
import sys

from conftest import REPO

MAX_TOOL_LINES = 150


def test_import_contract_holds():
    lint = osp.join(osp.dirname(sys.executable), 'lint-imports')
    done = subprocess.run([lint, '--no-cache'], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert 'Contracts: 1 kept, 0 broken' in done.stdout


def test_tools_are_thin():
    lengths = {}
    for path in glob.glob(osp.join(REPO, 'tools', '*.py')):
        with open(path) as f:
            lengths[osp.basename(path)] = len(f.readlines())
    assert lengths, 'no tools found'
    too_long = {name: n for name, n in lengths.items()
                if n > MAX_TOOL_LINES}
    assert not too_long, f'tools over {MAX_TOOL_LINES} lines: {too_long}'


def test_tests_import_the_package_and_stay_inside_the_repository():
    # Patterns assembled here so that this file does not match itself.
    patterns = {
        'sys.path edit': r'sys\.path\.(insert|append)',
        'loading by file path': 'spec_from_file' + '_location',
        'path outside the repository': r"'\.\.', 'shared'|\.\./shared|"
                                       r"dirname\(REPO\)",
    }
    found = []
    for path in glob.glob(osp.join(REPO, 'tests', '**', '*.py'),
                          recursive=True):
        with open(path) as f:
            text = f.read()
        for what, pattern in patterns.items():
            if re.search(pattern, text):
                found.append(f'{osp.basename(path)}: {what}')
    assert not found, found


def test_tests_mirror_the_package():
    # Test folders are named after the package's layers (and tools/,
    # configs/); test files have unique names (pytest imports them by
    # basename, without packages).
    package = {osp.basename(osp.dirname(path)) for path in glob.glob(
        osp.join(REPO, 'mmpartial', '*', '__init__.py'))}
    folders = {osp.basename(osp.dirname(path)) for path in glob.glob(
        osp.join(REPO, 'tests', '*', 'test_*.py'))}
    assert folders <= package | {'tools', 'configs'}, folders - package
    names = [osp.basename(path) for path in glob.glob(
        osp.join(REPO, 'tests', '**', 'test_*.py'), recursive=True)]
    assert len(names) == len(set(names)), sorted(names)

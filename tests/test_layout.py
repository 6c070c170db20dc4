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


def _anchors(path):
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    with open(path) as f:
        for line in f:
            if line.startswith('#'):
                title = line.lstrip('#').strip().lower()
                title = re.sub(r'[^\w\- ]', '', title)
                anchors.add(title.replace(' ', '-'))
    return anchors


def test_every_relative_link_in_the_docs_resolves():
    pages = [osp.join(REPO, 'README.md')] + glob.glob(
        osp.join(REPO, 'docs', '*.md'))
    broken = []
    for page in pages:
        with open(page) as f:
            text = re.sub(r'```.*?```', '', f.read(), flags=re.S)
        for target in re.findall(r'\]\(([^)\s]+)\)', text):
            if re.match(r'[a-z]+://', target):
                continue
            path, _, anchor = target.partition('#')
            path = osp.normpath(osp.join(osp.dirname(page), path)) \
                if path else page
            if not osp.exists(path):
                broken.append(f'{osp.basename(page)}: {target}')
            elif anchor and path.endswith('.md') and \
                    anchor not in _anchors(path):
                broken.append(f'{osp.basename(page)}: {target} (anchor)')
    assert not broken, broken

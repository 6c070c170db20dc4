"""The installed metadata declares every package mmpartial's code imports,
and the requirement files are what setup.py reads."""
import ast
import glob
import os.path as osp
import re
import sys
from importlib.metadata import requires

from conftest import REPO

# Import names whose distribution has another name.
DISTRIBUTIONS = {'cv2': 'opencv-python', 'PIL': 'pillow', 'yaml': 'pyyaml',
                 'mmseg': 'mmsegmentation'}


def imported_packages():
    names = set()
    for path in glob.glob(osp.join(REPO, 'mmpartial', '**', '*.py'),
                          recursive=True):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split('.')[0])
    return {name for name in names
            if name not in sys.stdlib_module_names and name != 'mmpartial'}


def declared():
    """{distribution: set of extras ('' for the base requirements)}."""
    out = {}
    for line in requires('mmpartial'):
        name = re.match(r'[A-Za-z0-9_.\-]+', line).group(0).lower()
        extra = re.search(r'extra == "([^"]+)"', line)
        out.setdefault(name, set()).add(extra.group(1) if extra else '')
    return out


def test_every_import_is_declared():
    have = declared()
    missing = sorted(name for name in imported_packages()
                     if DISTRIBUTIONS.get(name, name).lower() not in have)
    assert not missing, f'imported but not declared: {missing}'


def test_the_backbone_needs_only_the_base_requirements():
    base = {name for name, extras in declared().items() if '' in extras}
    assert {'torch', 'mmengine', 'numpy'} <= base
    # What only some users need stays in extras.
    for heavy in ('mmcv', 'mmdet', 'mmpretrain', 'mmsegmentation', 'onnx',
                  'onnxruntime', 'openvino', 'matplotlib'):
        assert heavy not in base, heavy


def test_torch_range_admits_both_tested_torches():
    lines = [line for line in requires('mmpartial')
             if re.match(r'torch\W', line)]
    assert len(lines) == 1 and '>=2.1.0' in lines[0] and '<2.14' in lines[0]

import os.path as osp
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REFERENCE_DIR = osp.join(osp.dirname(REPO), 'shared', 'reference',
                         'official-state-dicts')
VARIANTS = ('t0', 't1', 't2', 's', 'm', 'l')
# The spec's table (shared/docs/partialnet-architecture.md): params in M and
# fvcore MACs in G of the 1000-class classifier at 224x224.
SPEC = {
    't0': (3.56, 0.247), 't1': (6.14, 0.546), 't2': (12.27, 1.039),
    's': (28.01, 2.716), 'm': (59.18, 6.693), 'l': (100.64, 11.909)
}

if REPO not in sys.path:
    sys.path.insert(0, REPO)


def reference_layout(name):
    """{key: (shape, dtype)} of a reference state-dict listing."""
    path = osp.join(REFERENCE_DIR, f'partialnet_{name}.txt')
    if not osp.exists(path):
        pytest.skip(f'reference listing {path} is not available')
    layout = {}
    with open(path) as f:
        for line in f:
            key, shape, dtype = line.rstrip('\n').split('\t')
            layout[key] = (tuple(eval(shape)) if shape != '()' else (),
                           getattr(torch, dtype))
    return layout


def reference_param_count(name):
    return sum(
        torch.Size(shape).numel()
        for key, (shape, _) in reference_layout(name).items()
        if not key.endswith(('running_mean', 'running_var',
                             'num_batches_tracked')))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

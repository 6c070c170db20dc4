import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Key, shape and dtype of every tensor of the reference implementation's
# models (copied from the reference code's state dicts; see README).
REFERENCE_DIR = osp.join(REPO, 'tests', 'data', 'official-state-dicts')
VARIANTS = ('t0', 't1', 't2', 's', 'm', 'l')
# The spec's table (shared/docs/partialnet-architecture.md): params in M and
# MACs in G (fvcore's count, as mmengine.analysis makes it) of the
# 1000-class classifier at 224x224.
SPEC = {
    't0': (3.56, 0.247), 't1': (6.14, 0.546), 't2': (12.27, 1.039),
    's': (28.01, 2.716), 'm': (59.18, 6.693), 'l': (100.64, 11.909)
}


def reference_layout(name):
    """{key: (shape, dtype)} of a reference state-dict listing."""
    path = osp.join(REFERENCE_DIR, f'partialnet_{name}.txt')
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


# Deprecation warnings of the pinned third-party stack, hundreds per run;
# filtered so that a warning from this package's own code stands out.
THIRD_PARTY_WARNINGS = (
    # setuptools, through mmengine and mmcv's package utilities
    'ignore:pkg_resources is deprecated:UserWarning',
    'ignore:Deprecated call to `pkg_resources:DeprecationWarning',
    # torch, through mmcv's and mmdet's scripted helpers
    r'ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning',
    # mmengine's own FileClient, used by mmcv 2.1 and mmdet 3.3 transforms
    'ignore:"FileClient" will be deprecated:DeprecationWarning',
    'ignore:"HardDiskBackend" is the alias:DeprecationWarning',
)


def pytest_configure(config):
    for line in THIRD_PARTY_WARNINGS:
        config.addinivalue_line('filterwarnings', line)

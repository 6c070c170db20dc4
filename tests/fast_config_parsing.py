"""Faster parsing of configs with ``mmdet::`` / ``mmseg::`` bases.

For every such base of every config, mmengine re-reads all metafiles of
the installed package (mmdet's are hundreds of YAML files: seconds per
config on a shared CPU). They do not change during a test session, so a
module-scoped fixture can read each file once.
"""
import functools

import mmengine.config.utils
import pytest


@pytest.fixture(scope='module')
def fast_config_parsing():
    original = mmengine.config.utils.load
    mmengine.config.utils.load = functools.lru_cache(maxsize=None)(original)
    yield
    mmengine.config.utils.load = original

"""The model index (configs/metafile.yml, model-index.yml): every config is
listed, every listed config exists and builds, and the counts are the
models' own."""
import gc
import os.path as osp

import pytest
import yaml

from conftest import REPO, SPEC
from fast_config_parsing import fast_config_parsing  # noqa: F401
from mmpartial.apis import build_model, load_config
from mmpartial.apis.counting import SCOPES, count_params
from mmpartial.apis.metafile import (count_config, listed_configs,
                                     make_metafile, model_entry)


def read_yaml(*parts):
    with open(osp.join(REPO, *parts)) as f:
        return yaml.safe_load(f)


METAFILE = read_yaml('configs', 'metafile.yml')
MODELS = {model['Name']: model for model in METAFILE['Models']}


pytestmark = pytest.mark.usefixtures('fast_config_parsing')


def test_model_index_imports_the_metafile():
    index = read_yaml('model-index.yml')
    assert index == {'Import': ['configs/metafile.yml']}


def test_every_config_is_listed_once_with_its_collection():
    names = [model['Name'] for model in METAFILE['Models']]
    assert len(names) == len(set(names))
    expected = [osp.splitext(osp.basename(p))[0]
                for p in listed_configs(osp.join(REPO, 'configs'))]
    assert sorted(names) == sorted(expected)
    for family in ('retinanet', 'cascade-mask-rcnn', 'upernet', 'fpn',
                   'mask-rcnn'):
        assert sum(name.startswith(family + '_') for name in names) >= 6
    collections = {c['Name'] for c in METAFILE['Collections']}
    for model in METAFILE['Models']:
        assert model['In Collection'] in collections
        assert model['Config'] == f'configs/{model["Name"]}.py'
        assert osp.isfile(osp.join(REPO, model['Config']))
        assert model['Results'] is None and 'Weights' not in model
        meta = model['Metadata']
        assert isinstance(meta['Parameters'], int) and \
            isinstance(meta['FLOPs'], int)
        assert meta['Parameters'] > 1e6 and meta['FLOPs'] > 1e8


def test_classifier_counts_are_the_papers():
    for variant, (params, macs) in SPEC.items():
        meta = MODELS[f'partialnet-{variant}_in1k']['Metadata']
        assert round(meta['Parameters'] / 1e6, 2) == params
        assert meta['FLOPs'] / 1e9 == pytest.approx(macs, rel=0.01)


def test_detector_counts_include_the_roi_heads():
    # Backbone, neck and RPN as the Mask R-CNN's: a cascade's two more
    # stages of box and mask heads cost more, as the header says.
    cascades = [name for name in MODELS if name.startswith('cascade-')]
    for name in cascades:
        single = MODELS[name[len('cascade-'):].replace('_coco-3x', '_coco')]
        assert MODELS[name]['Metadata']['FLOPs'] > \
            single['Metadata']['FLOPs']
    with open(osp.join(REPO, 'configs', 'metafile.yml')) as f:
        header = ' '.join(line[1:].strip() for line in f
                          if line.startswith('#'))
    assert SCOPES['detector'] in header


@pytest.fixture
def no_weight_init(monkeypatch):
    """Layers built without filling their weights: the structure and the
    parameter count are under test, not the values (filling the 43 models'
    2 billion weights takes most of a minute on a shared CPU)."""
    import torch.nn.init

    def unchanged(tensor, *args, **kwargs):
        return tensor

    for name in ('uniform_', 'normal_', 'trunc_normal_', 'constant_',
                 'ones_', 'zeros_', 'xavier_uniform_', 'xavier_normal_',
                 'kaiming_uniform_', 'kaiming_normal_'):
        monkeypatch.setattr(torch.nn.init, name, unchanged)


@pytest.mark.usefixtures('no_weight_init')
@pytest.mark.parametrize('name', sorted(MODELS))
def test_listed_config_builds_with_its_parameter_count(name):
    path = osp.join(REPO, MODELS[name]['Config'])
    model = build_model(load_config(path))
    assert count_params(model) == MODELS[name]['Metadata']['Parameters']
    del model
    gc.collect()


def test_counting_a_config_gives_its_entry():
    # Recounted here (the smallest segmentor, at 512x512): the tool's
    # numbers, written as the metafile has them.
    path = osp.join(REPO, 'configs', 'fpn_partialnet-t0_ade20k.py')
    counts = count_config(path)
    assert counts['input_size'] == (512, 512)
    entry = model_entry(path, counts, root=REPO)
    assert entry == MODELS['fpn_partialnet-t0_ade20k']


def test_only_recounts_the_named_configs(monkeypatch):
    counted = []

    def fake_count(path):
        counted.append(osp.basename(path))
        return dict(params=1, flops=2, input_size=(224, 224))

    monkeypatch.setattr('mmpartial.apis.metafile.count_config', fake_count)
    content = make_metafile(osp.join(REPO, 'configs'), root=REPO,
                            only=['partialnet-t0_in1k'], previous=MODELS)
    assert counted == ['partialnet-t0_in1k.py']
    models = {model['Name']: model for model in content['Models']}
    assert models['partialnet-t0_in1k']['Metadata']['FLOPs'] == 2
    assert models['partialnet-t1_in1k'] == MODELS['partialnet-t1_in1k']
    assert content['Collections'] == METAFILE['Collections']

"""The model index: ``configs/metafile.yml`` and ``model-index.yml``.

Both in mmpretrain's format (OpenMMLab's model index, as ``mim`` and
mmpretrain's own tools read it): a collection per
model family and one entry per config with its parameters and FLOPs,
counted here on the model the config builds (:func:`count_config`).
Results and weight URLs come once trained weights exist.
"""
import glob
import os
import os.path as osp

import yaml

from .config import load_config
from .counting import SCOPES, count_params, model_macs
from .model import build_model

METAFILE = 'configs/metafile.yml'
MODEL_INDEX = 'model-index.yml'
PAPER = {
    'Title': 'Partial Channel Network: Compute Fewer, Perform Better',
    'URL': 'https://arxiv.org/abs/2502.01303',
}
# (collection, training data, architecture) by config-name prefix.
FAMILIES = (
    ('mask-rcnn_', 'Mask R-CNN', 'COCO', ['PartialNet', 'FPN', 'Mask R-CNN']),
    ('cascade-mask-rcnn_', 'Cascade Mask R-CNN', 'COCO',
     ['PartialNet', 'FPN', 'Cascade R-CNN', 'Mask R-CNN']),
    ('retinanet_', 'RetinaNet', 'COCO', ['PartialNet', 'FPN', 'RetinaNet']),
    ('upernet_', 'UperNet', 'ADE20K', ['PartialNet', 'UperNet']),
    ('fpn_', 'Semantic FPN', 'ADE20K', ['PartialNet', 'FPN']),
    ('partialnet-', 'PartialNet', 'ImageNet-1k',
     ['PartialNet', 'PAT_ch', 'PAT_sp', 'PAT_sf']),
    # PAT_ch in a standard ResNet, and the ResNet it is compared with.
    ('pat-resnet', 'PAT-ResNet', 'ImageNet-1k', ['ResNet', 'PAT_ch']),
    ('resnet', 'ResNet', 'ImageNet-1k', ['ResNet']),
)
# Image size (height, width) FLOPs are counted at, as papers report them:
# ImageNet 224x224; COCO 1280x800; ADE20K UperNet 2048x512 (Swin,
# ConvNeXt), Semantic FPN 512x512 (PoolFormer, EfficientFormer).
INPUT_SIZES = {'partialnet-': (224, 224), 'pat-resnet': (224, 224),
               'resnet': (224, 224), 'mask-rcnn_': (800, 1280),
               'cascade-mask-rcnn_': (800, 1280), 'retinanet_': (800, 1280),
               'upernet_': (512, 2048), 'fpn_': (512, 512)}
COUNTED = (
    'FLOPs are multiply-adds counted by mmengine.analysis (fvcore\'s '
    'counter, as the paper counts them; mmpartial.apis.counting.model_macs) '
    'for one image of {sizes}. '
    f'Classifiers: {SCOPES["classifier"]}. '
    f'Segmentors: {SCOPES["segmentor"]}. '
    f'Detectors: {SCOPES["detector"]}. '
    'Parameters: every parameter of the model as built for training '
    '(auxiliary heads included).')


class MetafileError(ValueError):
    """A config the model index cannot list."""


def family_of(name):
    """(prefix, collection, training data, architecture) of a config name."""
    for family in FAMILIES:
        if name.startswith(family[0]):
            return family
    raise MetafileError(
        f'config {name!r} belongs to no model family of the index (names '
        f'start with {", ".join(repr(f[0]) for f in FAMILIES)})')


def listed_configs(config_dir='configs'):
    """The configs the index lists: every config directly in
    ``config_dir``, except the toy-data ones (``*_toy*``), sorted."""
    paths = sorted(glob.glob(osp.join(config_dir, '*.py')))
    return [p for p in paths if '_toy' not in osp.basename(p)]


def count_config(path):
    """Parameters and FLOPs of the model of config file ``path``.

    Returns:
        dict: ``params`` (int), ``flops`` (int, multiply-adds, see
        :data:`COUNTED`) and ``input_size`` ((height, width) counted at).
    """
    name = osp.splitext(osp.basename(path))[0]
    prefix = family_of(name)[0]
    cfg = load_config(path)
    model = build_model(cfg)  # counts do not depend on the weights
    size = INPUT_SIZES[prefix]
    return dict(params=count_params(model),
                flops=model_macs(model, size)['total'], input_size=size)


def model_entry(path, counts, root='.'):
    """The ``Models`` entry of one config."""
    name = osp.splitext(osp.basename(path))[0]
    _, collection, data, _ = family_of(name)
    config = osp.relpath(osp.abspath(path), osp.abspath(root))
    return {
        'Name': name,
        'Metadata': {
            'FLOPs': int(counts['flops']),
            'Parameters': int(counts['params']),
            'Training Data': data,
        },
        'In Collection': collection,
        'Results': None,  # no trained weights yet
        'Config': config.replace(os.sep, '/'),
    }


def collections(names):
    """The ``Collections`` of the families that ``names`` belong to."""
    used = {family_of(name)[1] for name in names}
    return [{
        'Name': collection,
        'Metadata': {'Training Data': data, 'Architecture': list(arch)},
        'Paper': dict(PAPER),
        'README': 'README.md',
    } for _, collection, data, arch in FAMILIES if collection in used]


def _header():
    sizes = ', '.join(
        f'{w}x{h} ({prefix.rstrip("_-")})'
        for prefix, (h, w) in INPUT_SIZES.items())
    words, lines, line = COUNTED.format(sizes=sizes).split(), [], '#'
    for word in words:
        if len(line) + len(word) + 1 > 78:
            lines.append(line)
            line = '#'
        line += ' ' + word
    lines.append(line)
    return ('# The model index of mmpartial, in mmpretrain\'s format: every '
            'config in\n# configs/ but the toy-data ones (*_toy*). Written by '
            'tools/make_metafile.py;\n# regenerate it rather than edit it.\n'
            + '\n'.join(lines) + '\n')


def read_metafile(path=METAFILE):
    """The ``Models`` entries of an existing metafile, by name ({} when
    there is no file)."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    return {model['Name']: model for model in data.get('Models') or []}


def make_metafile(config_dir='configs', root='.', only=None, previous=None,
                  progress=None):
    """The metafile's content for the configs of ``config_dir``.

    Args:
        config_dir (str): Where the configs are.
        root (str): The repository root (config paths are relative to it).
        only (list[str], optional): Count just these config names; the
            others keep their entries from ``previous``.
        previous (dict, optional): Entries by name (:func:`read_metafile`).
        progress (callable, optional): Takes one message string.

    Returns:
        dict: ``Collections`` and ``Models``.
    """
    previous = previous or {}
    paths = listed_configs(config_dir)
    names = [osp.splitext(osp.basename(p))[0] for p in paths]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise MetafileError(f'no such config in {config_dir}: {unknown}')
    models = []
    for path, name in zip(paths, names):
        if only is not None and name not in only and name in previous:
            models.append(model_entry(path, {
                'params': previous[name]['Metadata']['Parameters'],
                'flops': previous[name]['Metadata']['FLOPs']}, root))
            continue
        counts = count_config(path)
        if progress:
            progress(f'{name}: {counts["params"] / 1e6:.2f} M params, '
                     f'{counts["flops"] / 1e9:.3f} GFLOPs at '
                     f'{counts["input_size"][1]}x{counts["input_size"][0]}')
        models.append(model_entry(path, counts, root))
    return {'Collections': collections(names), 'Models': models}


def write_metafile(content, path=METAFILE, model_index=MODEL_INDEX):
    """Write the metafile (with its header) and the model index that
    imports it; both through temporary files, so no half-written file
    stays."""
    index_dir = osp.dirname(osp.abspath(model_index))
    texts = {
        path: _header() + yaml.safe_dump(content, sort_keys=False,
                                         width=79),
        model_index: yaml.safe_dump(
            {'Import': [osp.relpath(osp.abspath(path), index_dir)]},
            sort_keys=False),
    }
    for target, text in texts.items():
        tmp = osp.join(osp.dirname(osp.abspath(target)),
                       '.' + osp.basename(target) + '.tmp')
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, target)


__all__ = [
    'COUNTED', 'FAMILIES', 'INPUT_SIZES', 'METAFILE', 'MODEL_INDEX',
    'MetafileError', 'collections', 'count_config', 'family_of',
    'listed_configs', 'make_metafile', 'model_entry', 'read_metafile',
    'write_metafile'
]

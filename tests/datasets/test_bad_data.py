"""Bad data: the checked datasets skip and report bad annotations and
images, training data keeps flowing, and a file that is not a dataset at
all stops everything at once with its name in the message."""
import copy
import json
import logging
import os.path as osp
import re
import shutil
import uuid

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DATASETS, init_default_scope

from conftest import REPO
from mmpartial.datasets import (CocoFormatError, DatasetFolderError,
                                ImageLoadError)
from mmpartial.datasets.toy import make_toy_coco, make_toy_imagenet

TOY_CONFIG = osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_toy.py')
GARBAGE = b'this is not an image \x00\x01\x02' * 8


@pytest.fixture
def log_lines():
    """The messages logged through mmengine's current logger."""
    # A new MMLogger becomes the current one, which print_log uses.
    logger = MMLogger.get_instance(f'test_bad_data_{uuid.uuid4().hex}')
    lines = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


# ---------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def toy_coco(tmp_path_factory):
    out = tmp_path_factory.mktemp('toy_coco')
    make_toy_coco(out, num_train=6, num_val=1, seed=0)
    return out


@pytest.fixture(scope='module')
def toy_cfg():
    return Config.fromfile(TOY_CONFIG)


def _coco_dataset(toy_cfg, data_root, ann_file, **kwargs):
    """The toy config's training dataset (its pipeline loads masks)."""
    init_default_scope('mmdet')
    cfg = copy.deepcopy(toy_cfg.train_dataloader.dataset)
    cfg.update(data_root=str(data_root), ann_file=str(ann_file),
               data_prefix=dict(img='train2017/'), **kwargs)
    return DATASETS.build(cfg)


@pytest.fixture
def bad_coco(toy_coco, tmp_path):
    """A copy of the toy training split with one of each problem.

    Returns ``(data_root, ann_file, expected)``; ``expected`` maps each bad
    annotation id to the image file name in its warning (None: no image)
    and the words that say what is wrong.
    """
    shutil.copytree(toy_coco / 'train2017', tmp_path / 'train2017')
    coco = json.loads(
        (toy_coco / 'annotations' / 'instances_train2017.json').read_text())
    images = {image['id']: image for image in coco['images']}
    anns = coco['annotations']
    name = {ann['id']: images[ann['image_id']]['file_name'] for ann in anns}
    expected = {}

    # A polygon of two points, the annotation's only one: skipped.
    anns[0]['segmentation'] = [[10.0, 10.0, 20.0, 20.0]]
    expected[anns[0]['id']] = (name[anns[0]['id']], 'has 2 point(s)')
    # A polygon of one point next to good ones: only the polygon goes.
    anns[1]['segmentation'].append([5.0, 5.0])
    expected[anns[1]['id']] = (name[anns[1]['id']], 'has 1 point(s)')
    # A degenerate box (zero width).
    anns[2]['bbox'][2] = 0
    anns[2]['area'] = 0
    expected[anns[2]['id']] = (name[anns[2]['id']], 'degenerate box')
    # A category that is not in 'categories'.
    anns[3]['category_id'] = 99
    expected[anns[3]['id']] = (name[anns[3]['id']], 'category_id 99')
    # An annotation of an image that does not exist.
    anns[4]['image_id'] = 12345
    expected[anns[4]['id']] = (None, 'image_id 12345')
    # A good box but a zero area.
    anns[5]['area'] = 0
    expected[anns[5]['id']] = (name[anns[5]['id']], 'zero or invalid area')

    # An image entry whose file is missing, with a good annotation so that
    # filter_empty_gt keeps it.
    coco['images'].append(dict(images[anns[6]['image_id']], id=999,
                               file_name='missing.jpg'))
    anns.append(dict(anns[6], id=10 ** 6, image_id=999))
    # An image file replaced by garbage bytes.
    garbage = images[anns[-2]['image_id']]['file_name']
    (tmp_path / 'train2017' / garbage).write_bytes(GARBAGE)

    ann_file = tmp_path / 'bad.json'
    ann_file.write_text(json.dumps(coco))
    return tmp_path, ann_file, expected, garbage


def test_bad_annotations_are_skipped_and_reported(toy_cfg, bad_coco,
                                                  log_lines):
    data_root, ann_file, expected, _ = bad_coco
    dataset = _coco_dataset(toy_cfg, data_root, ann_file, filter_cfg=None)

    problems = {p.ann_id: p for p in dataset.annotation_problems}
    assert set(problems) == set(expected)
    for ann_id, (file_name, what) in expected.items():
        # One warning line per problem, naming json, image and annotation.
        lines = [line for line in log_lines
                 if f'annotation {ann_id}:' in line]
        assert len(lines) == 1, (ann_id, log_lines)
        assert str(ann_file) in lines[0] and what in lines[0]
        if file_name is not None:
            assert f"image '{file_name}'" in lines[0]
    assert any('6 annotation problem(s): 5 annotation(s) skipped, 1 kept'
               in line for line in log_lines), log_lines

    # Only the annotation with good polygons left is kept.
    assert [p.skipped for p in problems.values()].count(False) == 1
    assert not next(p for p in problems.values() if 'has 1 point' in
                    p.message).skipped
    # What is left is valid.
    for idx in range(len(dataset)):
        for instance in dataset.get_data_info(idx)['instances']:
            x1, y1, x2, y2 = instance['bbox']
            assert x2 - x1 >= 1 and y2 - y1 >= 1
            assert all(len(polygon) >= 6 for polygon in instance['mask'])


def test_bad_images_are_skipped_while_iterating(toy_cfg, bad_coco,
                                                log_lines):
    data_root, ann_file, _, garbage = bad_coco
    dataset = _coco_dataset(toy_cfg, data_root, ann_file)
    bad_files = {'missing.jpg', garbage}
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    assert bad_files <= {osp.basename(p) for p in paths}

    for idx in range(len(dataset)):  # every index, the bad ones included
        sample = dataset[idx]
        assert osp.basename(sample['data_samples'].img_path) not in bad_files
        assert sample['inputs'].shape[0] == 3
        assert len(sample['data_samples'].gt_instances) > 0

    for file_name in bad_files:
        lines = [line for line in log_lines if file_name in line]
        # Reported once, with the reason, however often it is drawn.
        assert len(lines) == 1, log_lines
        assert ('file not found' in lines[0]
                or 'not a decodable image' in lines[0])
        assert 'another sample is used' in lines[0]


def test_image_without_annotations_follows_filter_cfg(toy_cfg, toy_coco):
    ann_file = toy_coco / 'annotations' / 'instances_train2017.json'
    coco = json.loads(ann_file.read_text())
    annotated = {ann['image_id'] for ann in coco['annotations']}
    empty = [i['file_name'] for i in coco['images']
             if i['id'] not in annotated]
    assert empty, 'the toy set should have an image without objects'

    def names(dataset):
        return {osp.basename(dataset.get_data_info(i)['img_path'])
                for i in range(len(dataset))}

    kept = _coco_dataset(toy_cfg, toy_coco, ann_file, filter_cfg=None)
    assert set(empty) <= names(kept)
    assert kept.annotation_problems == []
    filtered = _coco_dataset(toy_cfg, toy_coco, ann_file)  # filter_empty_gt
    assert not set(empty) & names(filtered)
    # The image goes through the pipeline with zero instances.
    idx = sorted(names(kept)).index(empty[0])
    sample = kept[idx]
    assert len(sample['data_samples'].gt_instances) == 0


def test_same_data_as_mmdet_on_clean_data(toy_cfg, toy_coco):
    ann_file = toy_coco / 'annotations' / 'instances_train2017.json'
    checked = _coco_dataset(toy_cfg, toy_coco, ann_file)
    plain = _coco_dataset(toy_cfg, toy_coco, ann_file, type='CocoDataset')
    assert len(checked) == len(plain)
    assert checked.cat_ids == plain.cat_ids
    for idx in range(len(plain)):
        assert checked.get_data_info(idx) == plain.get_data_info(idx)


def test_all_images_bad_fails_clearly(toy_cfg, toy_coco, tmp_path):
    (tmp_path / 'train2017').mkdir()  # no image at all
    ann_file = toy_coco / 'annotations' / 'instances_train2017.json'
    dataset = _coco_dataset(toy_cfg, tmp_path, ann_file)
    with pytest.raises(ImageLoadError, match=r'none of the \d+ images'):
        dataset[0]


def test_bad_image_in_test_mode_names_the_file(toy_cfg, bad_coco):
    data_root, ann_file, _, garbage = bad_coco
    dataset = _coco_dataset(toy_cfg, data_root, ann_file, test_mode=True)
    idx = next(i for i in range(len(dataset)) if dataset.get_data_info(i)
               ['img_path'].endswith(garbage))
    with pytest.raises(ImageLoadError, match=re.escape(garbage)):
        dataset[idx]


def test_pipeline_errors_are_not_swallowed(toy_cfg, toy_coco):
    def broken(results):
        raise ZeroDivisionError('a bug in a transform')

    ann_file = toy_coco / 'annotations' / 'instances_train2017.json'
    dataset = _coco_dataset(
        toy_cfg, toy_coco, ann_file,
        pipeline=[dict(type='LoadImageFromFile'), broken])
    with pytest.raises(ZeroDivisionError, match='a bug in a transform'):
        dataset[0]


@pytest.mark.parametrize('content, what', [
    ('[1, 2, 3]', 'the top level is a list'),
    ('{"foo": 1}', "missing the key(s) 'images', 'annotations', "
     "'categories'"),
    ('{"images": [], "annotations": [', 'not valid JSON'),
    ('{"images": {}, "annotations": [], "categories": []}',
     "'images' is an object, expected a list"),
    ('{"images": [{"id": 1, "width": 4, "height": 4}], "annotations": [],'
     ' "categories": []}', "'images'[0] has no 'file_name'"),
    ('{"images": [], "annotations": [7], "categories": []}',
     "'annotations'[0] is a number, expected an object"),
])
def test_not_coco_stops_at_once(toy_cfg, toy_coco, tmp_path, content, what):
    ann_file = tmp_path / 'not_coco.json'
    ann_file.write_text(content)
    with pytest.raises(CocoFormatError) as info:
        _coco_dataset(toy_cfg, toy_coco, ann_file)
    assert str(ann_file) in str(info.value)
    assert what in str(info.value)


def test_binary_file_is_not_coco(toy_cfg, toy_coco, tmp_path):
    ann_file = tmp_path / 'image.json'
    ann_file.write_bytes(b'\xff\xd8\xff\xe0' + GARBAGE)
    with pytest.raises(CocoFormatError, match=re.escape(str(ann_file))):
        _coco_dataset(toy_cfg, toy_coco, ann_file)


def test_configs_use_the_checked_datasets():
    det = Config.fromfile(TOY_CONFIG)
    cls = Config.fromfile(osp.join(REPO, 'configs', 'partialnet-t0_in1k.py'))
    for cfg, expected in ((det, 'mmpartial.CheckedCocoDataset'),
                          (cls, 'mmpartial.CheckedImageNet')):
        for split in ('train', 'val', 'test'):
            assert cfg[f'{split}_dataloader'].dataset.type == expected


# ---------------------------------------------------------------------------
# Classification folders
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def toy_imagenet(tmp_path_factory):
    out = tmp_path_factory.mktemp('toy_imagenet')
    summary = make_toy_imagenet(
        out, num_classes=3, train_per_class=3, val_per_class=1, size=32,
        seed=0, verbose=False)
    return out, tuple(summary['classes'])


def _folder_dataset(data_root, data_prefix='train', type='CheckedImageNet',
                    **kwargs):
    init_default_scope('mmpretrain')
    return DATASETS.build(dict(
        type=f'mmpartial.{type}', data_root=str(data_root),
        data_prefix=data_prefix,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')],
        **kwargs))


def test_folder_dataset_loads(toy_imagenet):
    root, classes = toy_imagenet
    dataset = _folder_dataset(root, metainfo=dict(classes=classes))
    assert len(dataset) == 9 and dataset.CLASSES == classes
    assert len(_folder_dataset(root, type='CheckedCustomDataset')) == 9


def test_empty_folder_names_the_folder(tmp_path):
    (tmp_path / 'train').mkdir()
    with pytest.raises(DatasetFolderError, match='no class folders') as info:
        _folder_dataset(tmp_path, type='CheckedCustomDataset')
    assert str(tmp_path / 'train') in str(info.value)
    with pytest.raises(DatasetFolderError, match='not found') as info:
        _folder_dataset(tmp_path, data_prefix='nowhere')
    assert str(tmp_path / 'nowhere') in str(info.value)


def test_empty_class_folder_names_the_folder(toy_imagenet, tmp_path):
    root, classes = toy_imagenet
    shutil.copytree(root / 'train', tmp_path / 'train')
    (tmp_path / 'train' / 'zz_empty').mkdir()
    (tmp_path / 'train' / 'zz_empty' / 'notes.txt').write_text('no image')
    with pytest.raises(DatasetFolderError, match='without images') as info:
        _folder_dataset(tmp_path, type='CheckedCustomDataset')
    assert str(tmp_path / 'train' / 'zz_empty') in str(info.value)
    # ImageNet's 1000 classes against 4 folders: named, with both counts.
    with pytest.raises(DatasetFolderError, match='4 class folders, but the '
                       'dataset has 1000 classes') as info:
        _folder_dataset(tmp_path)
    assert str(tmp_path / 'train') in str(info.value)


def test_corrupt_image_is_reported_and_skipped(toy_imagenet, tmp_path,
                                               log_lines):
    root, classes = toy_imagenet
    shutil.copytree(root / 'train', tmp_path / 'train')
    corrupt = next((tmp_path / 'train' / classes[1]).iterdir())
    corrupt.write_bytes(GARBAGE)
    empty = next((tmp_path / 'train' / classes[2]).iterdir())
    empty.write_bytes(b'')
    dataset = _folder_dataset(tmp_path, metainfo=dict(classes=classes))
    assert len(dataset) == 9
    for idx in range(len(dataset)):
        sample = dataset[idx]
        assert sample['data_samples'].img_path not in (str(corrupt),
                                                       str(empty))
    for path, reason in ((corrupt, 'not a decodable image'),
                         (empty, 'the file is empty')):
        lines = [line for line in log_lines if str(path) in line]
        assert len(lines) == 1 and reason in lines[0], log_lines


def test_annotation_file_without_images(toy_imagenet, tmp_path):
    root, _ = toy_imagenet
    (tmp_path / 'empty.txt').write_text('')
    with pytest.raises(DatasetFolderError, match='lists no image') as info:
        _folder_dataset(root, type='CheckedCustomDataset',
                        ann_file=str(tmp_path / 'empty.txt'))
    assert 'empty.txt' in str(info.value)

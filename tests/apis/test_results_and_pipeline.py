"""The paper's tables from finished runs (tools/results_table.py) and the
toy pipeline of tools/demo.sh (pretrain, hand-off, detection) on tiny
settings."""
import glob
import json
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import yaml
from mmengine.config import Config
from mmengine.registry import RUNNERS

from conftest import REPO
from mmpartial.apis.config import load_config
from mmpartial.apis.counting import (NUM_MASK_ROIS, NUM_PROPOSALS,
                                     CountedForward, count_macs)
from mmpartial.apis.metafile import count_config
from mmpartial.apis.model import build_model
from mmpartial.apis.results import (DETECTION_FLOPS_SIZE, ResultsError,
                                    collect, find_results, format_tables,
                                    model_complexity)
from mmpartial.apis.toy_pipeline import (DETECT_CONFIG, PRETRAIN_CONFIG,
                                         STAGE_FILE, pretrain,
                                         run_toy_pipeline,
                                         skip_repeated_validation)
from mmpartial.datasets.toy import make_toy_shapes
from toy_detection import make_toy_set, toy_detection_cfg

TINY_DATA = {
    'toy_shapes': dict(generator='make_toy_shapes', num_train_per_class=4,
                       num_val_per_class=2, size=32, seed=0),
    'toy_coco': dict(generator='make_toy_coco', num_train=4, num_val=2,
                     seed=3),
}
TINY_PRETRAIN = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
                 'train_dataloader.batch_size': 8,
                 'train_dataloader.num_workers': 0,
                 'train_dataloader.persistent_workers': False,
                 'val_dataloader.num_workers': 0,
                 'val_dataloader.persistent_workers': False,
                 'test_dataloader.num_workers': 0,
                 'test_dataloader.persistent_workers': False,
                 'default_hooks.checkpoint.interval': 1}


def tiny_detect_options():
    return {'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop',
                              max_iters=2),
            'param_scheduler': [], 'log_processor.by_epoch': False,
            # Two iterations leave every score low: keep all detections,
            # so that the test stage has results to evaluate.
            'model.test_cfg.rcnn.score_thr': 0.0,
            'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False,
            'train_dataloader.sampler': dict(type='InfiniteSampler'),
            'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False,
            'default_hooks.checkpoint': dict(type='CheckpointHook',
                                             by_epoch=False, interval=2)}


@pytest.fixture(scope='module')
def detection_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('det')
    cfg = toy_detection_cfg(make_toy_set(root / 'toy', 4, 2), root / 'work',
                            max_epochs=1)
    cfg.train_cfg.val_interval = 1
    RUNNERS.build(cfg).train()
    return str(root / 'work')


@pytest.fixture(scope='module')
def classification_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls')
    make_toy_shapes(root / 'shapes', 4, 2, size=32, seed=0, verbose=False)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'partialnet-t0_toy-shapes.py'))
    cfg.merge_from_dict(TINY_PRETRAIN)
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].dataset.data_root = str(root / 'shapes')
    cfg.work_dir = str(root / 'work')
    RUNNERS.build(cfg).train()
    return str(root / 'work')


def logged_val_metrics(work_dir):
    """The last validation line of the run's scalars.json, read here."""
    path, = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return [line for line in lines if 'loss' not in line][-1]


@pytest.mark.slow
def test_table_prints_the_numbers_the_logs_hold(detection_run,
                                                classification_run):
    det = logged_val_metrics(detection_run)
    cls = logged_val_metrics(classification_run)
    done = subprocess.run(
        [sys.executable, 'tools/results_table.py', detection_run,
         classification_run, '--no-flops'], cwd=REPO, capture_output=True,
        text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split('|')[-2].strip(): line
            for line in done.stdout.splitlines() if line.startswith('| P')}
    det_cells = [c.strip() for c in rows[detection_run].split('|')[1:-1]]
    assert det_cells[0] == 'PartialNet-T0'
    keys = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP',
            'segm_mAP_50', 'segm_mAP_75']
    assert det_cells[1:7] == [f'{det["coco/" + k] * 100:.1f}' for k in keys]
    cls_cells = [c.strip() for c in rows[classification_run].split('|')[1:-1]]
    assert cls_cells[1] == f'{cls["accuracy/top1"]:.1f}'
    assert cls_cells[2] == '-'  # no top-5 on four classes
    csv = subprocess.run(
        [sys.executable, 'tools/results_table.py', classification_run,
         '--no-flops', '--format', 'csv'], cwd=REPO, capture_output=True,
        text=True)
    assert csv.stdout.splitlines()[1].startswith(
        f'classification,PartialNet-T0,{cls["accuracy/top1"]:.1f},-,val,')


@pytest.mark.slow
def test_test_metrics_win_and_bad_runs_are_named(detection_run, tmp_path):
    found = find_results(detection_run)
    assert found['stage'] == 'val' and found['task'] == 'detection'
    # A test run's <timestamp>.json (what tools/test.py leaves) wins.
    stamp = osp.basename(osp.dirname(osp.dirname(found['config_file'])))
    test_file = osp.join(detection_run, stamp, f'{stamp}.json')
    with open(test_file, 'w') as f:
        json.dump(dict(found['metrics'], **{'coco/bbox_mAP': 0.625}), f)
    assert find_results(detection_run)['metrics']['coco/bbox_mAP'] == 0.625
    # No run; a run of another task; a metrics file mmengine did not write.
    empty = tmp_path / 'empty'
    empty.mkdir()
    other = tmp_path / 'seg' / '20261130_101010'
    (other / 'vis_data').mkdir(parents=True)
    (other / '20261130_101010.json').write_text('{"mIoU": 41.2}')
    broken = tmp_path / 'broken' / '20261130_101010'
    broken.mkdir(parents=True)
    (broken / '20261130_101010.json').write_text('[1, 2]')
    for path, reason in ((empty, 'no finished run'),
                         (tmp_path / 'seg', 'a run of another task'),
                         (tmp_path / 'broken', 'not a metrics file written '
                          'by mmengine'),
                         (tmp_path / 'nowhere', 'no such work dir')):
        with pytest.raises(ResultsError, match=reason):
            find_results(str(path))
    tables, missing = collect([detection_run, str(empty)],
                              with_complexity=False)
    text = format_tables(tables, missing, with_complexity=False)
    assert f'no results: {empty}: ' in text and 'AP^b' in text
    done = subprocess.run(
        [sys.executable, 'tools/results_table.py', str(empty), '--no-flops'],
        cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and str(empty) in done.stdout


@pytest.mark.slow
def test_detector_flops_match_an_independent_count():
    """The T0 Mask R-CNN at 1280x800 (mmdet's get_flops convention):
    fvcore's conv/linear/matmul multiply-adds against PyTorch's own
    dispatcher-level counter (which counts 2 FLOPs per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_coco.py'))
    counts = model_complexity(cfg, 'detection')
    module = CountedForward(build_model(cfg).eval())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, 3, 800, 1280))
    independent = counter.get_total_flops() / 2
    assert counts['conv_linear_matmul'] == pytest.approx(independent,
                                                         rel=1e-3)
    # Norms, pooling and upsampling add a little on top.
    assert 1 < counts['flops'] / counts['conv_linear_matmul'] < 1.05
    assert counts['params'] == sum(
        p.numel() for p in module.model.parameters())


class FeaturesAndRPN(nn.Module):
    """Backbone, neck and RPN head of a two-stage detector."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, images):
        feats = self.detector.extract_feat(images)
        return feats, self.detector.rpn_head(feats)


def roi_head_inputs(roi_head):
    """(head, RoI features) of every box head on ``NUM_PROPOSALS`` RoIs
    and every mask head on ``NUM_MASK_ROIS``, a cascade's stages each."""
    cascade = hasattr(roi_head, 'num_stages')
    pieces = []
    for heads, extractors, num in (
            (roi_head.bbox_head, roi_head.bbox_roi_extractor, NUM_PROPOSALS),
            (roi_head.mask_head, roi_head.mask_roi_extractor,
             NUM_MASK_ROIS)):
        if not cascade:
            heads, extractors = [heads], [extractors]
        for head, extractor in zip(heads, extractors):
            size = extractor.roi_layers[0].output_size
            pieces.append(
                (head, torch.zeros(num, extractor.out_channels, *size)))
    return pieces


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mask-rcnn_partialnet-t0_coco',
                                  'cascade-mask-rcnn_partialnet-t0_coco-3x'])
def test_detector_flops_are_the_metafiles_and_count_the_roi_heads(name):
    """The results table, the metafile tool and configs/metafile.yml give
    one count: features and RPN on the image plus every RoI head on its
    fixed number of RoIs, counted here piece by piece."""
    path = osp.join(REPO, 'configs', f'{name}.py')
    flops = model_complexity(Config.fromfile(path), 'detection')['flops']
    assert count_config(path)['flops'] == flops
    with open(osp.join(REPO, 'configs', 'metafile.yml')) as f:
        listed = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    assert listed[name]['Metadata']['FLOPs'] == flops
    model = build_model(load_config(path)).eval()
    images = torch.zeros(1, 3, *DETECTION_FLOPS_SIZE)
    dense = count_macs(FeaturesAndRPN(model), (images, ))['total']
    heads = [count_macs(head, (rois, ))['total']
             for head, rois in roi_head_inputs(model.roi_head)]
    assert len(heads) == (6 if name.startswith('cascade') else 2)
    assert min(heads) > 0 and flops > dense > 0
    assert flops == dense + sum(heads)


@pytest.mark.slow
def test_detector_flops_leave_out_either_roi_align():
    """The toy detector pools with mmpartial's RoIAlign, whose matrix
    products the tracer sees; the count leaves them out, as it leaves out
    mmcv's: the same figure with either extractor."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_toy.py'))
    ours = model_complexity(cfg, 'detection')
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        assert cfg.model.roi_head[name].type == 'mmpartial.TorchRoIExtractor'
        cfg.model.roi_head[name].type = 'SingleRoIExtractor'
    assert ours == model_complexity(cfg, 'detection')


@pytest.mark.slow
def test_pipeline_pretrains_hands_over_and_detects(tmp_path, capsys):
    runs = tmp_path / 'work_dirs'
    data = tmp_path / 'data'
    table = run_toy_pipeline(
        str(runs / 'first'), data_root=str(data), data=TINY_DATA,
        pretrain_options=TINY_PRETRAIN,
        detect_options=tiny_detect_options())
    first = runs / 'first'
    for stage in ('pretrain', 'detect'):
        assert (first / stage / STAGE_FILE).exists()
    with open(first / 'pretrain' / STAGE_FILE) as f:
        backbone = str(first / 'pretrain' / json.load(f)['checkpoint'])
    # The terminal gets a few lines per stage and the progress display;
    # everything the runners print goes to each stage's console.log.
    terminal = capsys.readouterr().out
    assert len(terminal.splitlines()) < 60, terminal
    for label in ('pretrain', 'detect', 'test'):
        assert re.search(rf'\[{label}\] \w+ \[#+\] (\d+)/\1 ', terminal), label
    assert '[test] test: coco/bbox_mAP ' in terminal
    assert 'paramwise_options' not in terminal and 'Iter(' not in terminal
    log = (first / 'detect' / 'console.log').read_text()
    assert 'Iter(train)' in log
    # The hand-off: the detector's backbone started from the classifier's.
    assert f'PartialNet: loaded {backbone}' in log
    # ...with the classifier's BN statistics kept.
    dumped = Config.fromfile(glob.glob(str(first / 'detect' / '*.py'))[0])
    assert dumped.model.backbone.norm_eval is True
    assert glob.glob(str(first / 'pictures' / '*'))
    # Evaluated once, by the test stage: training skipped the validation
    # that would only repeat it on the same images.
    logs = glob.glob(str(first / 'detect' / '*' / '*.log'))
    assert len(logs) == 2
    logged = ''.join(open(f).read() for f in logs)
    assert 'Iter(test)' in logged and 'Iter(val)' not in logged
    assert 'Detection' in table and 'Classification' in table
    assert (first / 'results.md').read_text() == table
    assert 'no results' not in table
    # Unchanged config and data: the pretraining stage is reused...
    pretrain(str(runs / 'second'), str(data / 'toy_shapes'),
             options=TINY_PRETRAIN)
    assert f'reusing {first / "pretrain"}' in capsys.readouterr().out
    # ...but not after a change of config (half the config's own lr).
    lr = Config.fromfile(osp.join(REPO, PRETRAIN_CONFIG)).optim_wrapper \
        .optimizer.lr
    pretrain(str(runs / 'third'), str(data / 'toy_shapes'),
             options={**TINY_PRETRAIN, 'optim_wrapper.optimizer.lr': lr / 2})
    assert 'reusing' not in capsys.readouterr().out
    with pytest.raises(Exception, match='holds a finished run already'):
        run_toy_pipeline(str(first), data_root=str(data), data=TINY_DATA)


@pytest.mark.parametrize('options, kept', [
    (None, False), ({'train_cfg.max_epochs': 1}, False),
    ({'train_cfg.val_interval': 4}, True),
    ({'train_cfg': dict(max_epochs=2, val_interval=2)}, True),
    ({'val_evaluator.metric': ['bbox']}, True)])
def test_detect_stage_validates_only_when_asked(options, kept):
    cfg = load_config(osp.join(REPO, DETECT_CONFIG))
    skip_repeated_validation(cfg, options)
    assert (cfg.val_cfg is not None) == kept
    assert (cfg.val_dataloader is not None) == kept

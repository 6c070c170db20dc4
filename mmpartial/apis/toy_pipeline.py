"""The paper's workflow in miniature, on embedded data (``tools/demo.sh``).

Stages, each writing into the run's own work dir:

1. ``data``: the toy shapes classification set and the toy COCO set, drawn
   by the same renderer (so pretraining sees the detection domain), written
   under ``data_root`` once and kept while their generator arguments stay
   the same;
2. ``pretrain``: the PartialNet backbone as an mmpretrain classifier on the
   shapes set (``<run>/pretrain``);
3. ``detect``: Mask R-CNN on the toy COCO set, its backbone handed over
   from the classifier through ``init_cfg`` (``prefix='backbone.'``)
   (``<run>/detect``);
4. ``test``: COCO bbox and segm AP of the final checkpoint, and pictures of
   its predictions (``<run>/pictures``);
5. ``table``: the paper's tables of both stages (:mod:`.results`), printed
   and written to ``<run>/results.md``.

A finished pretraining stage of an earlier run is reused (copied into the
new run) only when its config and its data are unchanged: both are
fingerprinted (the resolved config without its work dir, and the bytes of
every data file).

The terminal shows a few lines per stage and a progress display
(:class:`~mmpartial.engine.ProgressHook`); everything the runners print
(mmengine's log, the config, COCO's summaries, warnings) goes to
``<stage>/console.log``, beside mmengine's own log in the stage's work dir.
"""
import contextlib
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import sys
import time

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmpartial.datasets.toy import make_toy_coco, make_toy_shapes
from mmpartial.engine import ProgressHook
from mmpartial.utils.checkpoint import (check_checkpoint_file,
                                        find_latest_complete_checkpoint)
from .config import configure_test, load_config
from .results import collect, format_tables

PRETRAIN_CONFIG = 'configs/partialnet-t0_toy-shapes.py'
DETECT_CONFIG = 'configs/mask-rcnn_partialnet-t0_toy.py'
# Generator arguments of the demo's data, by data folder name. 64 val
# images (about 240 shapes): with 16, the segm AP of one config moved 6
# points between runs; testing 64 takes seconds.
DEMO_DATA = {
    'toy_shapes': dict(generator='make_toy_shapes', num_train_per_class=500,
                       num_val_per_class=50, size=64, seed=0),
    'toy_coco': dict(generator='make_toy_coco', num_train=1000, num_val=64,
                     seed=0),
}
GENERATORS = {'make_toy_shapes': make_toy_shapes,
              'make_toy_coco': make_toy_coco}
STAMP = 'generator.json'  # the arguments a data folder was written with
STAGE_FILE = 'stage.json'  # written when a stage has finished


class PipelineError(RuntimeError):
    """A stage that cannot run, named with what to do."""


def _say(message):
    print(f'[toy pipeline] {message}', flush=True)


def ensure_data(data_root, name, spec):
    """Write the data folder ``data_root/name`` unless it holds exactly
    this data already. Returns its path."""
    folder = osp.join(data_root, name)
    stamp = osp.join(folder, STAMP)
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == spec:
                _say(f'data: {folder} kept (written with the same '
                     'generator arguments)')
                return folder
        _say(f'data: {folder} was written with other arguments; '
             'writing it again')
    args = {k: v for k, v in spec.items() if k != 'generator'}
    start = time.time()
    GENERATORS[spec['generator']](folder, **args)
    with open(stamp, 'w') as f:
        json.dump(spec, f, indent=1)
    _say(f'data: wrote {folder} in {time.time() - start:.1f} s')
    return folder


def data_fingerprint(folder):
    """sha256 of every file's relative path and bytes under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(folder, '**', '*'),
                                 recursive=True)):
        if osp.isfile(path) and osp.basename(path) != STAMP:
            digest.update(osp.relpath(path, folder).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def config_fingerprint(cfg):
    """sha256 of the resolved config, without where it runs (its work dir
    and the names derived from it)."""
    settings = cfg.to_dict()
    for key in ('work_dir', 'experiment_name'):
        settings.pop(key, None)
    if isinstance(settings.get('visualizer'), dict):
        settings['visualizer'].pop('name', None)
    return hashlib.sha256(Config(settings).pretty_text.encode()).hexdigest()


def _finished_stage(stage_dir):
    path = osp.join(stage_dir, STAGE_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_stage(stage_dir, **info):
    with open(osp.join(stage_dir, STAGE_FILE), 'w') as f:
        json.dump(info, f, indent=1)


def find_reusable_pretraining(runs_root, fingerprint, exclude):
    """The newest ``<runs_root>/*/pretrain`` finished with ``fingerprint``
    whose checkpoint is complete, or None."""
    for stage_dir in sorted(glob.glob(osp.join(runs_root, '*', 'pretrain')),
                            key=osp.getmtime, reverse=True):
        if osp.abspath(stage_dir) == osp.abspath(exclude):
            continue
        info = _finished_stage(stage_dir)
        if not info or info.get('fingerprint') != fingerprint:
            continue
        checkpoint = osp.join(stage_dir, info.get('checkpoint', ''))
        try:
            check_checkpoint_file(checkpoint)
        except Exception:  # noqa: BLE001  a damaged earlier run: retrain
            continue
        return stage_dir
    return None


def _point_to_data(cfg, data_dir):
    """Make every data loader (and COCO evaluator) of ``cfg`` read
    ``data_dir``."""
    data_dir = data_dir.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader):
            cfg[loader].dataset.data_root = data_dir
    for evaluator in ('val_evaluator', 'test_evaluator'):
        if isinstance(cfg.get(evaluator), dict) and \
                'ann_file' in cfg[evaluator]:
            cfg[evaluator].ann_file = \
                data_dir + 'annotations/instances_val2017.json'


def _stage_config(config, work_dir, name, options):
    cfg = load_config(config, options)
    cfg.work_dir = work_dir
    # Unique per stage: the stages share one process, and mmengine keeps
    # one logger and one visualizer per name (the configs' visualizer is
    # always named 'visualizer': a classifier's would serve the detector).
    cfg.experiment_name = f'{name}_{osp.basename(osp.dirname(work_dir))}'
    if cfg.get('visualizer'):
        cfg.visualizer.name = cfg.experiment_name
    return cfg


def _build_runner(cfg):
    return RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)


@contextlib.contextmanager
def _runner_to_log(cfg, label):
    """Build ``cfg``'s runner with its console output going to
    ``<work_dir>/console.log``; the terminal gets a progress display."""
    os.makedirs(cfg.work_dir, exist_ok=True)
    log = osp.join(cfg.work_dir, 'console.log')
    terminal = sys.stdout
    with open(log, 'a') as f:
        try:
            # mmengine's logger binds sys.stdout when the runner makes it.
            with contextlib.redirect_stdout(f), \
                    contextlib.redirect_stderr(f):
                runner = _build_runner(cfg)
                runner.register_hook(ProgressHook(label, stream=terminal))
                yield runner
        except BaseException:
            terminal.write('\n')
            _say(f'{label}: failed; the full log is {log}')
            raise


def _train(cfg, label):
    with _runner_to_log(cfg, label) as runner:
        runner.train()
    checkpoint = find_latest_complete_checkpoint(cfg.work_dir)
    if checkpoint is None:
        raise PipelineError(f'{cfg.work_dir}: training wrote no checkpoint')
    return checkpoint


def pretrain(run_dir, data_dir, config=PRETRAIN_CONFIG, options=None,
             reuse=True):
    """Stage 2. Returns the classifier's checkpoint."""
    stage_dir = osp.join(run_dir, 'pretrain')
    cfg = _stage_config(config, stage_dir, 'pretrain', options)
    _point_to_data(cfg, data_dir)
    fingerprint = hashlib.sha256(
        (config_fingerprint(cfg) + data_fingerprint(data_dir)).encode()
    ).hexdigest()
    previous = find_reusable_pretraining(osp.dirname(run_dir), fingerprint,
                                         stage_dir) if reuse else None
    if previous is not None:
        shutil.copytree(previous, stage_dir, dirs_exist_ok=True)
        info = _finished_stage(stage_dir)
        _write_stage(stage_dir, **dict(info, reused_from=previous))
        _say(f'pretrain: reusing {previous} (config and data unchanged; '
             'pass --no-reuse to train again)')
        return osp.join(stage_dir, info['checkpoint'])
    _say(f'pretrain: training {config} -> {stage_dir}')
    start = time.time()
    checkpoint = _train(cfg, 'pretrain')
    _write_stage(stage_dir, fingerprint=fingerprint, config=config,
                 checkpoint=osp.basename(checkpoint),
                 seconds=round(time.time() - start, 1))
    return checkpoint


def _keep_bn_statistics(cfg, options):
    # The classifier's BN statistics come with its weights: keep them, as
    # mmdet does with ImageNet backbones, rather than re-estimate them
    # from batches of 2 images (measured: bbox AP 0.16 -> 0.35 together
    # with the better classifier). An explicit option wins.
    if 'model.backbone.norm_eval' not in (options or {}):
        cfg.model.backbone.norm_eval = True


def skip_repeated_validation(cfg, options):
    """Drop the detect stage's validation from ``cfg`` (in place), unless
    ``options`` (the stage's ``--cfg-options``) name a ``val_*`` entry or
    ``train_cfg.val_interval``.

    The test stage evaluates the final checkpoint on the same val images
    right after training, so the validation that mmengine's loops run at
    the end of training would only repeat it (about 40 s of the demo's
    15 minutes).
    """
    options = options or {}
    if any(key.startswith('val_') for key in options) or \
            'train_cfg.val_interval' in options or \
            'val_interval' in (options.get('train_cfg') or {}):
        return
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None


def detect(run_dir, data_dir, backbone_checkpoint, config=DETECT_CONFIG,
           options=None):
    """Stages 3 and 4. Returns the detector's checkpoint."""
    stage_dir = osp.join(run_dir, 'detect')
    cfg = _stage_config(config, stage_dir, 'detect', options)
    _point_to_data(cfg, data_dir)
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=backbone_checkpoint,
        prefix='backbone.')
    _keep_bn_statistics(cfg, options)
    skip_repeated_validation(cfg, options)
    _say(f'detect: training {config} from the classifier\'s backbone '
         f'{backbone_checkpoint} (norm_eval='
         f'{cfg.model.backbone.norm_eval}) -> {stage_dir}')
    start = time.time()
    checkpoint = _train(cfg, 'detect')
    _write_stage(stage_dir, config=config, checkpoint=osp.basename(
        checkpoint), seconds=round(time.time() - start, 1))
    pictures = osp.join(run_dir, 'pictures')
    _say(f'test: COCO AP of {checkpoint}, pictures in {pictures}')
    cfg = _stage_config(config, stage_dir, 'test', options)
    _point_to_data(cfg, data_dir)
    cfg.model.backbone.init_cfg = None  # every weight is in the checkpoint
    _keep_bn_statistics(cfg, options)  # the config dump shows what trained
    configure_test(cfg, checkpoint, show_dir=pictures)
    with _runner_to_log(cfg, 'test') as runner:
        runner.test()
    return checkpoint


def run_toy_pipeline(run_dir, data_root='data', reuse=True,
                     pretrain_config=PRETRAIN_CONFIG,
                     detect_config=DETECT_CONFIG, pretrain_options=None,
                     detect_options=None, data=None):
    """Run every stage; returns the results table (Markdown).

    Args:
        run_dir (str): The run's own work dir (must not hold a run yet).
        data_root (str): Where the data folders are kept.
        reuse (bool): Reuse an unchanged pretraining stage of another run
            under the same parent folder. Defaults to True.
        pretrain_options, detect_options (dict, optional): Config
            overrides of each stage, as ``--cfg-options``.
        data (dict, optional): Generator arguments by data folder name;
            defaults to :data:`DEMO_DATA`.
    """
    if osp.exists(osp.join(run_dir, 'detect', STAGE_FILE)):
        raise PipelineError(f'{run_dir} holds a finished run already; give '
                            'a new work dir (its results are kept)')
    os.makedirs(run_dir, exist_ok=True)
    data = data or DEMO_DATA
    start = time.time()
    shapes = ensure_data(data_root, 'toy_shapes', data['toy_shapes'])
    coco = ensure_data(data_root, 'toy_coco', data['toy_coco'])
    backbone = pretrain(run_dir, shapes, pretrain_config, pretrain_options,
                        reuse)
    detect(run_dir, coco, backbone, detect_config, detect_options)
    tables, missing = collect([osp.join(run_dir, 'pretrain'),
                               osp.join(run_dir, 'detect')])
    table = format_tables(tables, missing)
    with open(osp.join(run_dir, 'results.md'), 'w') as f:
        f.write(table)
    _say(f'all stages done in {(time.time() - start) / 60:.1f} min')
    return table

"""Loading a config for a run, and the changes the tools' flags make to it.

The tools serve mmdet, mmpretrain (and mmseg) configs alike; what differs
between the codebases (visualisation hooks, result dumping) is chosen here
from the config's ``default_scope``. Everything here runs before a runner
is built, so a bad path or flag is a one-line message, not a traceback.
"""
import os
import os.path as osp

from mmengine.config import Config, DictAction

from mmpartial.engine.amp import enable_amp
from mmpartial.utils.checkpoint import check_checkpoint_file
from .config_checks import ConfigError, check_partialnet_config

# The files mmengine's Config.fromfile reads.
CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')


def add_runner_args(parser):
    """The arguments both tools take after their own: ``--cfg-options``
    and the launcher's (``--launcher``, ``--local-rank``)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser, argv=None):
    """Parse; ``torch.distributed.launch`` passes the rank as an argument,
    mmengine reads it from ``LOCAL_RANK``."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path, cfg_options=None):
    """Read a config file, apply overrides and check the PartialNet parts.

    Raises:
        FileNotFoundError: There is no such file.
        ConfigError: Not a config file (by its suffix), or the model
            config is inconsistent (the message names the key and the
            value it should have).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'config file {path!r} does not exist; the configs of this '
            'repository are in configs/ (e.g. '
            'configs/mask-rcnn_partialnet-t2_coco.py)')
    if osp.splitext(path)[1] not in CONFIG_SUFFIXES:
        raise ConfigError(
            f'{path!r} is not a config file: mmengine reads '
            f'{", ".join(CONFIG_SUFFIXES)} files (e.g. '
            'configs/mask-rcnn_partialnet-t2_coco.py)')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_partialnet_config(cfg)
    return cfg


def set_work_dir(cfg, config_path, work_dir=None):
    """Command line first, then the config, then ./work_dirs/<name>."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(config_path))[0]
        cfg.work_dir = osp.join('./work_dirs', name)


def set_resume(cfg, resume):
    """``--resume``: ``'auto'`` continues from the newest checkpoint in the
    work dir (:class:`~mmpartial.engine.CheckedRunner` skips incomplete
    files), a path from that checkpoint, None starts a new run."""
    if resume is None:
        return
    cfg.resume = True
    if resume == 'auto':
        cfg.load_from = None
    else:
        check_checkpoint_file(resume)
        cfg.load_from = resume


def set_auto_scale_lr(cfg):
    """``--auto-scale-lr``: scale the lr to the actual total batch size."""
    if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
        raise ValueError('--auto-scale-lr needs auto_scale_lr.'
                         'base_batch_size in the config')
    cfg.auto_scale_lr.enable = True


def configure_training(cfg, amp=False, auto_scale_lr=False, resume=None):
    """The changes ``tools/train.py``'s flags make to a config."""
    if amp:
        enable_amp(cfg)
    if auto_scale_lr:
        set_auto_scale_lr(cfg)
    set_resume(cfg, resume)


def scope_of(cfg):
    return cfg.get('default_scope') or 'mmengine'


def enable_visualization(cfg, out_dir):
    """Save pictures of test predictions under ``out_dir``."""
    out_dir = osp.abspath(out_dir)
    hooks = cfg.setdefault('default_hooks', {})
    if scope_of(cfg) == 'mmdet':
        hooks['visualization'] = dict(type='DetVisualizationHook', draw=True,
                                      test_out_dir=out_dir)
    elif scope_of(cfg) == 'mmpretrain':
        hooks['visualization'] = dict(type='VisualizationHook', enable=True,
                                      out_dir=out_dir)
    elif scope_of(cfg) == 'mmseg':
        # SegVisualizationHook has no folder of its own: the visualizer's
        # backends write under its save_dir (out_dir/vis_data/vis_image/,
        # ground truth left, prediction right). Every test image.
        hooks['visualization'] = dict(type='SegVisualizationHook',
                                      draw=True, interval=1)
        visualizer = cfg.get('visualizer') or dict(
            type='SegLocalVisualizer', name='visualizer',
            vis_backends=[dict(type='LocalVisBackend')])
        visualizer['save_dir'] = out_dir
        cfg.visualizer = visualizer
    else:
        raise ValueError(
            '--show-dir needs an mmdet, mmpretrain or mmseg config')


def add_dump_metric(cfg, out_file):
    """Also write raw test predictions to ``out_file`` (a .pkl)."""
    if not out_file.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must name a .pkl file, got {out_file!r}')
    dump = dict(type='DumpDetResults' if scope_of(cfg) == 'mmdet' else
                'DumpResults', out_file_path=out_file)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = [*evaluator, dump]
    elif 'metrics' in evaluator:
        evaluator.metrics = [*evaluator.metrics, dump]
    else:
        cfg.test_evaluator = [evaluator, dump]


def configure_test(cfg, checkpoint, show_dir=None, out=None):
    """The changes ``tools/test.py``'s arguments make to a config."""
    check_checkpoint_file(checkpoint)
    cfg.load_from = checkpoint
    if show_dir:
        enable_visualization(cfg, show_dir)
    if out:
        add_dump_metric(cfg, out)


__all__ = [
    'add_dump_metric', 'add_runner_args', 'configure_test',
    'configure_training', 'enable_visualization', 'load_config',
    'parse_runner_args', 'scope_of', 'set_auto_scale_lr', 'set_resume',
    'set_work_dir'
]

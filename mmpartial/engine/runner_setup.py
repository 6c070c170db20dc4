"""Config handling shared by tools/train.py and tools/test.py.

The tools serve mmdet and mmpretrain configs alike; what differs between the
two codebases (visualisation hooks, result dumping) is chosen here from the
config's ``default_scope``.
"""
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction

from .config_checks import check_partialnet_config


def add_runner_args(parser):
    """The arguments both tools take after their own: ``--cfg-options``
    and the launcher's (``--launcher``, ``--local-rank``)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser):
    """Parse; ``torch.distributed.launch`` passes the rank as an argument,
    mmengine reads it from ``LOCAL_RANK``."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path, cfg_options=None):
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'config file {path!r} does not exist; the configs of this '
            'repository are in configs/ (e.g. '
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


def setup_cpu_distributed(cfg):
    """Let DDP run on CPUs: gloo backend, no device ids.

    mmengine defaults to NCCL and one device per process; on a machine
    without GPUs the processes talk through gloo and DDP must be given no
    device ids.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or {}
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if not torch.distributed.is_initialized():
        # mmengine's own init calls torch.cuda.set_device, which fails
        # without a GPU; initialise the process group ourselves.
        torch.distributed.init_process_group(backend='gloo')


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
    else:
        raise ValueError('--show-dir needs an mmdet or mmpretrain config')


def add_dump_metric(runner, out_file):
    """Write raw predictions to ``out_file`` (a .pkl) after testing."""
    if not out_file.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must name a .pkl file, got {out_file!r}')
    if scope_of(runner.cfg) == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=out_file))
    else:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=out_file))

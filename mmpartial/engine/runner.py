"""A Runner with this project's guard rails, named by configs.

``runner_type = 'mmpartial.CheckedRunner'`` in a config gives every tool
that builds runners through the registry (this project's
``tools/train.py``, mmdet's and mmpretrain's own) the same behaviour:

- distributed training on machines without GPUs: the processes talk
  through gloo, and DDP wraps the model without device ids (mmengine
  defaults to NCCL and one CUDA device per process);
- ``resume=True`` without ``load_from`` resumes from the newest *complete*
  checkpoint in the work dir: a file a killed run left half-written is
  skipped, where mmengine's ``last_checkpoint`` pointer would name it;
- each run gets its own visualizer (the configs all name theirs
  'visualizer', which mmengine would share between runners of one process);
- a truncated checkpoint file is refused before it is unpickled, and a
  checkpoint that does not fit the model fails the run, naming the file
  (:class:`~mmpartial.engine.CheckpointCheckHook`, added unless the config
  lists it already).
"""
import torch
import torch.distributed as dist
from mmengine.runner import Runner

from mmpartial.registry import RUNNERS
from mmpartial.utils.checkpoint import (check_checkpoint_file,
                                        find_latest_complete_checkpoint)


def _cpu_only():
    return not torch.cuda.is_available()


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner` with the guard rails
    described in this module's docstring; otherwise unchanged."""

    def setup_env(self, env_cfg):
        if self.distributed and _cpu_only() and not dist.is_initialized():
            # mmengine's init_dist calls torch.cuda.set_device first, which
            # fails without a GPU: start the gloo process group here.
            dist.init_process_group(backend='gloo')
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if self.distributed and _cpu_only():
            model_wrapper_cfg = dict(
                model_wrapper_cfg or dict(
                    broadcast_buffers=False,
                    find_unused_parameters=self.cfg.get(
                        'find_unused_parameters', False)))
            model_wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
            model_wrapper_cfg['device_ids'] = None  # CPU modules
        return super().wrap_model(model_wrapper_cfg, model)

    def build_visualizer(self, visualizer=None):
        # mmengine keeps one visualizer per name, and the codebases'
        # default runtimes all name theirs 'visualizer': a second runner in
        # the same process (a pipeline, a test) would get the first one's,
        # and write its logs and pictures into the first run's work dir.
        if isinstance(visualizer, dict) and \
                visualizer.get('name') == 'visualizer':
            visualizer = dict(visualizer, name=self._experiment_name)
        return super().build_visualizer(visualizer)

    def register_hooks(self, default_hooks=None, custom_hooks=None):
        custom_hooks = list(custom_hooks or [])
        if not any(isinstance(hook, dict) and str(hook.get('type', ''))
                   .endswith('CheckpointCheckHook') for hook in custom_hooks):
            custom_hooks.append(dict(type='mmpartial.CheckpointCheckHook'))
        super().register_hooks(default_hooks, custom_hooks)

    def load_or_resume(self):
        if self._resume and self._load_from is None and not self._has_loaded:
            latest = find_latest_complete_checkpoint(self.work_dir)
            if latest is None:
                self.logger.warning(
                    f'resume: no complete checkpoint in {self.work_dir}; '
                    'starting a new run')
                self._resume = False
            else:
                self._load_from = latest
        super().load_or_resume()

    def load_checkpoint(self, filename, *args, **kwargs):
        check_checkpoint_file(filename)
        return super().load_checkpoint(filename, *args, **kwargs)

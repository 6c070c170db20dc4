"""Refuse a checkpoint that does not fit the model, in any runner."""
from mmengine.hooks import Hook
from mmengine.runner import find_latest_checkpoint

from mmpartial.registry import HOOKS
from mmpartial.utils.checkpoint import check_state_dict_fits, unwrap_state_dict


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Make ``load_from`` and ``resume`` fail on a checkpoint that does not
    fit the model, naming the file.

    mmengine loads checkpoints with ``strict=False``: a tensor of another
    shape is skipped with a warning, so a checkpoint of another PartialNet
    variant leaves the model untrained and the run goes on. The runner
    calls ``after_load_checkpoint`` with the loaded dict before it copies
    the tensors into the model; the comparison is made against the
    unwrapped model, so under DDP (where every parameter name starts with
    ``module.``) it still compares like with like.

    Works with mmengine's own ``Runner`` (name it in ``custom_hooks``, e.g.
    when training with mmdet's ``tools/train.py``);
    :class:`~mmpartial.engine.CheckedRunner` adds it by itself.

    Args:
        ignore_keys (Sequence[str]): Regular expressions of model keys whose
            shapes may differ: e.g. ``['fc_cls', 'conv_logits']`` to
            fine-tune a COCO detector on other classes with ``load_from``.
    """
    priority = 'VERY_HIGH'

    def __init__(self, ignore_keys=()):
        self.ignore_keys = tuple(ignore_keys)

    def after_load_checkpoint(self, runner, checkpoint):
        source = runner._load_from or find_latest_checkpoint(runner.work_dir)
        check_state_dict_fits(unwrap_state_dict(checkpoint), runner.model,
                              source=source, ignore_keys=self.ignore_keys)

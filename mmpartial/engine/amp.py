"""Mixed precision for ``tools/train.py --amp`` on GPUs and CPUs."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmpartial.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the forward pass under ``torch.autocast`` without loss scaling.

    mmengine's ``AmpOptimWrapper`` needs a GPU-like device for its gradient
    scaler. bfloat16 has float32's exponent range, so it needs no scaler,
    and CPUs run it natively: this wrapper is ``--amp`` on a CPU.

    Args:
        dtype (str): ``'bfloat16'`` (default) or ``'float16'``.
        device_type (str): Autocast device, ``'cpu'`` by default.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype='bfloat16', device_type='cpu', **kwargs):
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f'AutocastOptimWrapper dtype must be "bfloat16" '
                             f'or "float16", got {dtype!r}')
        self.dtype = getattr(torch, dtype)
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                device_type=self.device_type, dtype=self.dtype):
            yield


def enable_amp(cfg):
    """Switch a config's optimiser wrapper to mixed precision.

    CUDA: mmengine's ``AmpOptimWrapper`` (fp16 with dynamic loss scaling).
    CPU: :class:`AutocastOptimWrapper` with bfloat16.
    """
    wrapper = cfg.optim_wrapper
    wrappable = ('OptimWrapper', 'AmpOptimWrapper',
                 'mmpartial.AutocastOptimWrapper')
    if wrapper.get('type', 'OptimWrapper') not in wrappable:
        raise ValueError(f'--amp cannot wrap optim_wrapper type '
                         f'{wrapper.type!r}; use OptimWrapper in the config')
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.type = 'mmpartial.AutocastOptimWrapper'
        wrapper.pop('loss_scale', None)  # bf16 needs no loss scaling
        wrapper.setdefault('dtype', 'bfloat16')

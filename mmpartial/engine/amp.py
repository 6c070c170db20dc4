"""Mixed precision for ``tools/train.py --amp`` on GPUs and CPUs."""
from contextlib import contextmanager

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper

from mmpartial.registry import OPTIM_WRAPPERS


def _to_float32(output, dtype):
    """``output`` with its tensors of ``dtype`` cast to float32."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.dtype == dtype else output
    if isinstance(output, list):
        return [_to_float32(item, dtype) for item in output]
    if isinstance(output, tuple):  # backbones and necks return tuples
        return tuple(_to_float32(item, dtype) for item in output)
    if isinstance(output, dict):
        return {key: _to_float32(value, dtype)
                for key, value in output.items()}
    return output


def cpu_has_native_bf16():
    """Whether this CPU computes bfloat16 natively (oneDNN's own test).

    Without avx512_bf16 or AMX, oneDNN emulates bfloat16 and a convolution
    is slower than in float32, which defeats the purpose.
    """
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the training forward pass under ``torch.autocast``, unscaled.

    mmengine's ``AmpOptimWrapper`` needs a GPU-like device for its gradient
    scaler. bfloat16 has float32's exponent range, so it needs no scaler,
    and CPUs with avx512_bf16 or AMX run it natively: this wrapper is
    ``--amp`` on a CPU.

    With ``modules`` it autocasts only those submodules' forwards and casts
    what they return back to float32. A detector needs that: its
    convolutions and FCs gain from bfloat16, but box decoding, NMS (mmcv's
    CPU kernel refuses bfloat16) and the losses must stay in float32; in
    bfloat16 (8 significant bits) a box corner at 300 px moves by up to
    1 px. Validation and testing never autocast.

    Args:
        dtype (str): ``'bfloat16'`` (default) or ``'float16'``.
        device_type (str): Autocast device, ``'cpu'`` by default. On a CPU
            without native bfloat16 the wrapper says so once and trains in
            float32.
        modules (list[str], optional): Names of submodules of the model
            (as in ``model.named_modules()``, e.g. ``'backbone'``,
            ``'roi_head.bbox_head.shared_convs'``) to autocast; a
            ``ModuleList`` stands for each of its members. None (default):
            the whole forward pass.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype='bfloat16', device_type='cpu', modules=None,
                 **kwargs):
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f'AutocastOptimWrapper dtype must be "bfloat16" '
                             f'or "float16", got {dtype!r}')
        if modules is not None and (isinstance(modules, str)
                                    or not all(isinstance(name, str)
                                               for name in modules)):
            raise ValueError(f'AutocastOptimWrapper modules must be a list '
                             f'of submodule names, got {modules!r}')
        self.dtype = getattr(torch, dtype)
        self.device_type = device_type
        self.modules = None if modules is None else list(modules)
        self.enabled = not (device_type == 'cpu' and dtype == 'bfloat16'
                            and not cpu_has_native_bf16())
        if not self.enabled:
            print_log(f'AutocastOptimWrapper: this CPU has no native {dtype} '
                      f'(oneDNN needs avx512_bf16 or AMX); training in '
                      f'float32', logger='current', level=30)
        self._hooked_model = None
        self._handles = []
        self._active = False
        self._contexts = []

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model):
            if not self.enabled:
                yield
            elif self.modules is None:
                with torch.autocast(device_type=self.device_type,
                                    dtype=self.dtype):
                    yield
            else:
                self._hook(model)
                self._active = True
                try:
                    yield
                finally:
                    self._active = False

    def _hook(self, model):
        """Put autocast hooks on ``self.modules`` of ``model``, once."""
        model = model.module if is_model_wrapper(model) else model
        if self._hooked_model is model:
            return
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for name in self.modules:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                children = [n for n, _ in model.named_children()]
                raise ValueError(
                    f'AutocastOptimWrapper modules: the model has no '
                    f'submodule {name!r}; its top-level modules are '
                    f'{children} (names as in model.named_modules())'
                ) from None
            members = list(module) if isinstance(
                module, torch.nn.ModuleList) else [module]
            for member in members:
                self._handles.append(
                    member.register_forward_pre_hook(self._enter))
                self._handles.append(
                    member.register_forward_hook(self._exit,
                                                 always_call=True))
        self._hooked_model = model

    def _enter(self, module, args):
        context = None
        if self._active:
            context = torch.autocast(device_type=self.device_type,
                                     dtype=self.dtype)
            context.__enter__()
        self._contexts.append(context)

    def _exit(self, module, args, output):
        context = self._contexts.pop()
        if context is None:
            return None
        context.__exit__(None, None, None)
        return _to_float32(output, self.dtype)


DETECTOR_HEADS = ('rpn_head', 'roi_head', 'bbox_head')


def enable_amp(cfg):
    """Switch a config's optimiser wrapper to mixed precision.

    CUDA: mmengine's ``AmpOptimWrapper`` (fp16 with dynamic loss scaling).
    CPU: :class:`AutocastOptimWrapper` with bfloat16; for a detector
    (a model with ``rpn_head``, ``roi_head`` or ``bbox_head``) only the
    backbone and neck, unless the config names its ``modules``: mmcv's CPU
    NMS refuses bfloat16 boxes.
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
        wrapper.pop('modules', None)  # mmengine's wrapper casts everything
    else:
        wrapper.type = 'mmpartial.AutocastOptimWrapper'
        wrapper.pop('loss_scale', None)  # bf16 needs no loss scaling
        wrapper.setdefault('dtype', 'bfloat16')
        model = cfg.get('model', {})
        if any(head in model for head in DETECTOR_HEADS):
            wrapper.setdefault('modules', ['backbone', 'neck'])

"""Layout helpers of the deploy (inference) forward of PartialNet.

The deploy forward of every layer takes and returns ``(B, C, H, W)``
tensors, like the train form, and keeps them in ``torch.channels_last``
memory format from the stem on (``PartialNet.forward_deploy``):

* the MLP's 1x1 convolutions (``nn.Linear`` layers in the deploy
  checkpoint) run as 1x1 convolutions of channels_last tensors
  (:func:`conv1x1`): measured on the development CPU, as fast as a
  matrix multiply over the NHWC tokens, in eager mode and compiled;
* the 3x3 and patchify convolutions, too, work on channels_last memory
  natively;
* PAT_ch and PAT_sf split, gate and concatenate channels-first
  (statistics over dims ``(2, 3)``, concatenation on dim 1): in PyTorch
  the same memory operations as on the ``(B, H, W, C)`` view, and in an
  exported graph no layout change at all (only PAT_sf's attention
  transposes its ``(B, N, C)`` tokens, as the train form does);
* PAT_sp alone computes on the ``(B, H, W, C)`` view in PyTorch, which
  ``permute`` gives for free (:func:`nhwc`, :func:`nchw`), and
  channels-first when exported (:func:`exporting_onnx`): there every
  permute would be a Transpose node over the whole tensor.

There is one deploy forward per layer: it runs as it is in eager mode,
under autograd, under ``torch.compile`` (whose compiler fuses the
element-wise work) and in exporters (ONNX, ``torch.jit.trace``, MAC
counting); :func:`exporting_onnx` picks the cheapest form of the same
arithmetic in the two places where a graph runtime and PyTorch differ.
Where autograd and tracers are off (inference), it overwrites the large
intermediates it created itself (the MLP's activation and residual sum)
instead of allocating new ones (:func:`may_overwrite`).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def nhwc(x):
    """The ``(B, H, W, C)`` view of a ``(B, C, H, W)`` tensor (contiguous
    when ``x`` is in ``channels_last`` format)."""
    return x.permute(0, 2, 3, 1)


def nchw(t):
    """The ``(B, C, H, W)`` view of a ``(B, H, W, C)`` tensor (in
    ``channels_last`` format when ``t`` is contiguous)."""
    return t.permute(0, 3, 1, 2)


def exporting_onnx():
    """Whether the ONNX exporter records the forward. The graph then runs
    in another runtime (onnxruntime, OpenVINO), where every reshape is an
    operator of its own and a multiply-add with broadcasting is two: the
    few places where the cheapest form differs from PyTorch's ask this
    (:class:`~.pat_spatial.PATSpatial`, :class:`~.conv_bn.ChannelAffine`).
    """
    return torch.onnx.is_in_onnx_export()


def conv1x1(x, linear):
    """An ``nn.Linear`` applied to every position of ``(B, C, H, W)`` ``x``
    as a 1x1 convolution (of a view of its weight); the output has ``x``'s
    memory format."""
    return F.conv2d(x, linear.weight[:, :, None, None], linear.bias)


def may_overwrite():
    """Whether a deploy forward may compute in place on tensors it created.

    Only when autograd records nothing (``torch.no_grad``, inference mode)
    and no tracer records the operators (``torch.jit.trace``, the ONNX
    exporter, the MAC counter: they keep seeing the out-of-place graph
    they were written and tested against). Why it pays: a new tensor of
    tens of megabytes (the MLP's hidden activations at batch 32) comes
    from the operating system page by page, and on the development VM
    those page faults cost as much as the convolution that fills it; an
    in-place activation and residual sum allocate nothing. Under
    ``torch.compile`` the in-place operators are traced like the others.
    """
    return not torch.is_grad_enabled() and not torch.jit.is_tracing()


def activate(act, x):
    """``act(x)`` for ``x`` that the caller created and reads no more: in
    place (see :func:`may_overwrite`) for ReLU and GELU, the activations
    of PartialNet's variants; any other activation module out of place."""
    if may_overwrite():
        if isinstance(act, nn.ReLU):
            return x.relu_()
        if isinstance(act, nn.GELU):
            return torch.ops.aten.gelu_(x, approximate=act.approximate)
    return act(x)


def add_residual(out, residual):
    """``residual + out`` for ``out`` that the caller created: in place on
    ``out`` when allowed (:func:`may_overwrite`) and when that gives the
    same result: same dtype (under autocast a float32 residual plus a
    bfloat16 ``out`` is float32, which ``out`` cannot hold)."""
    if may_overwrite() and out.dtype == residual.dtype:
        return out.add_(residual)
    return residual + out

"""Building blocks of the deploy (inference) forward of PartialNet.

The deploy forward keeps activations in NHWC order: a ``(B, H, W, C)``
tensor, which is the same memory as a ``(B, C, H, W)`` tensor in
``torch.channels_last`` format (``permute`` switches between the two views
for free). In that layout

* every 1x1 convolution is one matrix multiply over all positions of the
  batch (``F.linear``), with no per-sample loop and no layout conversion;
* a PAT layer's channel split is a slice of the last dimension, and its
  two parts can be written straight into one preallocated output instead
  of ``torch.split`` + ``torch.cat``;
* a residual can be added inside the last matrix multiply (``addmm``).

The 3x3 and patchify convolutions take the channels_last view of the same
memory, which oneDNN handles natively.

These writes into preallocated buffers are for plain inference (under
``torch.no_grad()``). While a graph is recorded (ONNX export, fvcore's
counting, ``torch.jit.trace``, ``torch.compile``) or autograd is recording,
the forward uses out-of-place operators instead (:func:`functional`), which
exporters map one to one.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def functional(*tensors):
    """Whether the deploy forward must take its functional path.

    That is while the forward is recorded as a graph, i.e. traced (ONNX
    export, ``torch.jit.trace``, fvcore's counting) or compiled
    (``torch.compile``), and when autograd records it (a tensor requires
    grad). The functional path uses out-of-place operators only: no
    ``out=`` writes into views (which tracers do not record, dynamo
    refuses and autograd cannot differentiate) and no in-place updates.
    Compilers fuse the element-wise work themselves.

    Args:
        *tensors (Tensor): The tensors about to be combined.
    """
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or \
        torch.compiler.is_compiling() or \
        any(t.requires_grad for t in tensors)


def nhwc(x):
    """The ``(B, H, W, C)`` view of a ``(B, C, H, W)`` tensor (contiguous
    when ``x`` is in ``channels_last`` format)."""
    return x.permute(0, 2, 3, 1)


def nchw(t):
    """The ``(B, C, H, W)`` view of a ``(B, H, W, C)`` tensor."""
    return t.permute(0, 3, 1, 2)


def pointwise(t, layer):
    """Apply an ``nn.Linear`` (or a 1x1 ``nn.Conv2d``) to NHWC ``t``."""
    weight = layer.weight
    if weight.dim() > 2:
        weight = weight.flatten(1)
    return F.linear(t, weight, layer.bias)


def activate_(act, t):
    """Apply ``act`` to a freshly computed ``t``, in place where possible
    (one buffer less per MLP; see :func:`functional`)."""
    if functional(t):
        return act(t)
    if isinstance(act, nn.ReLU):
        return t.relu_()
    if isinstance(act, nn.GELU):
        return torch.ops.aten.gelu_(t, approximate=act.approximate)
    return act(t)


def cat_channels(first, second, scale=None):
    """``cat([first, second * scale], -1)`` of NHWC tensors.

    Written into one contiguous output: ``second`` is read once (scaled on
    the way) and ``first`` copied, rather than a product and a
    concatenation each making a full pass.

    Args:
        first (Tensor): ``(B, H, W, C1)``, any strides.
        second (Tensor): ``(B, H, W, C2)``, any strides.
        scale (Tensor, optional): ``(B, C2)`` per-sample channel factors.

    Returns:
        Tensor: ``(B, H, W, C1 + C2)``, contiguous.
    """
    if scale is not None:
        scale = scale.view(scale.shape[0], 1, 1, scale.shape[1])
    if functional(first, second, *([] if scale is None else [scale])):
        if scale is not None:
            second = second * scale
        return torch.cat((first, second), -1)
    c1 = first.shape[-1]
    out = second.new_empty(second.shape[:-1] + (c1 + second.shape[-1], ))
    out[..., :c1] = first
    if scale is None:
        out[..., c1:] = second
    else:
        torch.mul(second, scale, out=out[..., c1:])
    return out


def add_cat_channels(base, first, second):
    """``base + cat([first, second], -1)`` of NHWC tensors, in one output.

    Args:
        base (Tensor): ``(B, H, W, C1 + C2)``.
        first (Tensor): ``(B, H, W, C1)``.
        second (Tensor): ``(B, H, W, C2)``.

    Returns:
        Tensor: A new contiguous ``(B, H, W, C1 + C2)`` tensor.
    """
    if functional(base, first, second):
        return base + torch.cat((first, second), -1)
    c1 = first.shape[-1]
    out = torch.empty_like(base, memory_format=torch.contiguous_format)
    torch.add(base[..., :c1], first, out=out[..., :c1])
    torch.add(base[..., c1:], second, out=out[..., c1:])
    return out

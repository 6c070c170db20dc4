"""Layout helpers of the deploy (inference) forward of PartialNet.

The deploy forward of every layer takes and returns ``(B, C, H, W)``
tensors, like the train form, but works on their ``(B, H, W, C)`` view:
a ``(B, C, H, W)`` tensor in ``torch.channels_last`` memory format is a
contiguous ``(B, H, W, C)`` tensor, and ``permute`` switches between the
two views for free. In that view

* every 1x1 convolution is one matrix multiply over all positions of the
  batch (``F.linear`` / ``torch.addmm``), with no layout conversion;
* a PAT layer's channel split is a slice of the last dimension;
* a residual is added inside the last matrix multiply (``torch.addmm``).

The 3x3 and patchify convolutions take the channels_last view of the same
memory, which oneDNN (and cuDNN) handle natively.

There is one deploy forward per layer, written with out-of-place
operators only: it runs as it is in eager mode, under autograd, under
``torch.compile`` (whose compiler fuses the element-wise work) and in
exporters (ONNX, ``torch.jit.trace``, fvcore's counting).
"""
import torch


def nhwc(x):
    """The ``(B, H, W, C)`` view of a ``(B, C, H, W)`` tensor (contiguous
    when ``x`` is in ``channels_last`` format)."""
    return x.permute(0, 2, 3, 1)


def nchw(t):
    """The ``(B, C, H, W)`` view of a ``(B, H, W, C)`` tensor (in
    ``channels_last`` format when ``t`` is contiguous)."""
    return t.permute(0, 3, 1, 2)


def linear_residual(residual, t, weight):
    """``residual + t @ weight.T`` over the last dimension, in one matrix
    multiply (``addmm``: the residual is the accumulator).

    Args:
        residual (Tensor): ``(..., N)``.
        t (Tensor): ``(..., K)``, the same leading dimensions.
        weight (Tensor): ``(N, K)`` (an ``nn.Linear`` weight).

    Returns:
        Tensor: ``(..., N)``, contiguous.
    """
    out = torch.addmm(residual.reshape(-1, residual.shape[-1]),
                      t.reshape(-1, t.shape[-1]), weight.t())
    return out.view(residual.shape)

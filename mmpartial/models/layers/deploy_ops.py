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
* the few token-wise parts (PAT_ch's gate statistics, PAT_sp, the
  attention) use the ``(B, H, W, C)`` view of the same memory, which
  ``permute`` gives for free (:func:`nhwc`, :func:`nchw`).

There is one deploy forward per layer, written with out-of-place
operators only: it runs as it is in eager mode, under autograd, under
``torch.compile`` (whose compiler fuses the element-wise work) and in
exporters (ONNX, ``torch.jit.trace``, fvcore's counting).
"""
import torch.nn.functional as F


def nhwc(x):
    """The ``(B, H, W, C)`` view of a ``(B, C, H, W)`` tensor (contiguous
    when ``x`` is in ``channels_last`` format)."""
    return x.permute(0, 2, 3, 1)


def nchw(t):
    """The ``(B, C, H, W)`` view of a ``(B, H, W, C)`` tensor (in
    ``channels_last`` format when ``t`` is contiguous)."""
    return t.permute(0, 3, 1, 2)


def conv1x1(x, linear):
    """An ``nn.Linear`` applied to every position of ``(B, C, H, W)`` ``x``
    as a 1x1 convolution (of a view of its weight); the output has ``x``'s
    memory format."""
    return F.conv2d(x, linear.weight[:, :, None, None], linear.bias)

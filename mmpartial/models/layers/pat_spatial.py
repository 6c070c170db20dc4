import torch
import torch.nn as nn
import torch.nn.functional as F

from .builders import build_norm
from .conv_bn import (ChannelAffine, conv_to_linear, fold_input_affine,
                      merge_linear_rows, norm_affine)
from .deploy_ops import conv1x1, exporting_onnx, nchw, nhwc


class PATSpatial(nn.Module):
    """PAT_sp: partial spatial attention, the last layer of an MLP.

    Channels split into ``[C - C // 2, C // 2]``. The first half is scaled by
    a one-channel spatial gate (Conv1x1 + Hardsigmoid) and normalised; the
    second half is normalised and mixed by a Conv1x1. Both parts of the
    second half are linear, so at inference they fold into the MLP's last
    convolution (see ``PartialMLP``).

    Deploy form, in two steps: :meth:`switch_to_deploy` folds ``pre_norm``
    into ``conv`` (which gets a bias); ``PartialMLP.switch_to_deploy`` then
    merges that ``conv`` into the rows of its ``fc2`` that feed the second
    half (:meth:`merge_linear_into`), after which the second half passes
    through unchanged. The gated half keeps its ops; its norm becomes a
    :class:`ChannelAffine` (a per-channel scale and shift: the gating in
    front of it is not linear, so it folds into nothing). In PyTorch the
    deploy form runs on the channels-last view of its input
    (:meth:`forward_tokens`); exported to ONNX, channels-first like the
    train form, the gate a 1x1 convolution.

    Args:
        channels (int): Input and output channels.
        norm_cfg (dict): Config of the norm layers.
        deploy (bool): Build the merged inference form (``gate_conv`` and
            ``norm`` only). Defaults to False.
    """

    def __init__(self, channels, norm_cfg=None, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.linear_merged = deploy
        self.linear_channels = channels // 2
        self.gated_channels = channels - self.linear_channels
        # Deploy form: the 1x1 gate convolution as a Linear (the deploy
        # checkpoint's layout), applied as a 1x1 convolution.
        self.gate_conv = nn.Linear(self.gated_channels, 1, bias=False) \
            if deploy else nn.Conv2d(self.gated_channels, 1, 1, bias=False)
        self.gate_act = nn.Hardsigmoid()
        self.norm = ChannelAffine(self.gated_channels) if deploy else \
            build_norm(norm_cfg, self.gated_channels)
        if deploy:
            self.pre_norm = nn.Identity()
            self.conv = nn.Identity()
        else:
            self.pre_norm = build_norm(norm_cfg, self.linear_channels)
            self.conv = nn.Conv2d(self.linear_channels, self.linear_channels,
                                  1, bias=False)

    def forward(self, x):
        if self.deploy and not exporting_onnx():
            return nchw(self.forward_tokens(nhwc(x)))
        x1, x2 = torch.split(x, [self.gated_channels, self.linear_channels],
                             1)
        if self.deploy:  # exported: a 1x1 convolution is one graph node
            gate = conv1x1(x1, self.gate_conv)
        else:
            gate = self.gate_conv(x1)
        if not self.linear_merged:  # else the MLP's fc2 computed it
            x2 = self.conv(self.pre_norm(x2))
        return torch.cat((self.norm(x1 * self.gate_act(gate)), x2), dim=1)

    def forward_tokens(self, t):
        """Deploy form in PyTorch, on channels-last tokens ``t``
        (``(..., C)``, the MLP's ``fc2`` output); returns ``(..., C)``.

        In PyTorch the channels-last view is free (a permute of
        channels_last memory), and on it the gate is a matrix product of
        the strided channel slice, which a 1x1 convolution would copy
        (2-3x the time at batch 32 on the development CPU); compiled, the
        concatenation of channels-first views measured 5% slower over T0's
        blocks at batch 32. Exported, the permutes would be Transposes,
        so the exporter gets the channels-first form of :meth:`forward`.
        """
        c1 = self.gated_channels
        gated, rest = t[..., :c1], t[..., c1:]
        gate = self.gate_act(self.gate_conv(gated))
        # The norm after the gating, as its per-channel affine.
        gated = torch.addcmul(self.norm.bias, gated * gate, self.norm.weight)
        if not self.linear_merged:  # deployed on its own: a 1x1 Conv2d
            rest = F.linear(rest, self.conv.weight.flatten(1),
                            self.conv.bias)
        return torch.cat((gated, rest), -1)

    def switch_to_deploy(self):
        """Fold ``pre_norm`` into ``conv`` (which gets a bias). The enclosing
        MLP then merges ``conv`` into its ``fc2``. Eval-mode outputs are
        unchanged."""
        if self.deploy:
            return
        fold_input_affine(self.conv, *norm_affine(self.pre_norm))
        self.pre_norm = nn.Identity()
        self.norm = ChannelAffine.from_norm(self.norm)
        self.gate_conv = conv_to_linear(self.gate_conv)
        self.deploy = True

    def merge_linear_into(self, fc2):
        """Merge the (pre_norm-folded) ``conv`` of the second half into the
        rows of ``fc2`` that feed it; the second half then passes through.

        Args:
            fc2 (nn.Conv2d): The MLP's last 1x1 convolution, whose output
                this layer reads. Changed in place (it gets a bias).
        """
        self.switch_to_deploy()
        if self.linear_merged:
            return
        merge_linear_rows(fc2, self.conv, start=self.gated_channels)
        self.conv = nn.Identity()
        self.linear_merged = True

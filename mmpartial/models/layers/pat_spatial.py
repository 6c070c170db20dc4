import torch
import torch.nn as nn

from .builders import build_norm


class PATSpatial(nn.Module):
    """PAT_sp: partial spatial attention, the last layer of an MLP.

    Channels split into ``[C - C // 2, C // 2]``. The first half is scaled by
    a one-channel spatial gate (Conv1x1 + Hardsigmoid) and normalised; the
    second half is normalised and mixed by a Conv1x1. Both parts of the
    second half are linear, so at inference they fold into the MLP's last
    convolution (see ``PartialMLP``).

    Args:
        channels (int): Input and output channels.
        norm_cfg (dict): Config of the norm layers.
    """

    def __init__(self, channels, norm_cfg=None):
        super().__init__()
        self.linear_channels = channels // 2
        self.gated_channels = channels - self.linear_channels
        self.gate_conv = nn.Conv2d(self.gated_channels, 1, 1, bias=False)
        self.gate_act = nn.Hardsigmoid()
        self.norm = build_norm(norm_cfg, self.gated_channels)
        self.pre_norm = build_norm(norm_cfg, self.linear_channels)
        self.conv = nn.Conv2d(self.linear_channels, self.linear_channels, 1,
                              bias=False)

    def forward_gated(self, x1):
        return self.norm(x1 * self.gate_act(self.gate_conv(x1)))

    def forward(self, x):
        x1, x2 = torch.split(x, [self.gated_channels, self.linear_channels],
                             1)
        return torch.cat((self.forward_gated(x1), self.conv(self.pre_norm(x2))),
                         dim=1)

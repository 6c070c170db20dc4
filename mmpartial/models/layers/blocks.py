import torch.nn as nn

from .builders import build_act, build_norm
from .drop_path import DropPath
from .pat_channel import PATChannel
from .pat_self_attn import PATSelfAttention
from .pat_spatial import PATSpatial


class PartialMLP(nn.Module):
    """Conv1x1 (C -> ratio*C), norm, act, Conv1x1 (-> C), optional PAT_sp.

    Args:
        channels (int): Input and output channels.
        mlp_ratio (float): Hidden width as a multiple of ``channels``.
        act_cfg (dict): Activation config.
        norm_cfg (dict): Norm config.
        use_pat_sp (bool): End with a :class:`PATSpatial` layer.
    """

    def __init__(self, channels, mlp_ratio=2., act_cfg=dict(type='GELU'),
                 norm_cfg=None, use_pat_sp=False):
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.norm = build_norm(norm_cfg, hidden)
        self.act = build_act(act_cfg)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.pat_sp = PATSpatial(channels, norm_cfg) if use_pat_sp else None

    def forward(self, x):
        x = self.fc2(self.act(self.norm(self.fc1(x))))
        return x if self.pat_sp is None else self.pat_sp(x)


class PartialBlock(nn.Module):
    """PartialNet block v1 (stages 1-3): ``x + DropPath(MLP(PAT_ch(x)))``.

    Args:
        channels (int): Channels of the stage.
        n_div (int): Split ratio of PAT_ch (``channels // n_div`` convolved).
        mlp_ratio (float): MLP expansion.
        drop_path (float): Stochastic depth rate of this block.
        act_cfg (dict): Activation config.
        norm_cfg (dict): Norm config.
        use_pat_sp (bool): End the MLP with PAT_sp.
        conv (nn.Module, optional): Replacement of PAT_ch's 3x3 convolution.
        dpconv (nn.Module, optional): A DPConv over all channels in front of
            PAT_ch's split (see :class:`PATChannel`).
    """

    def __init__(self, channels, n_div=4, mlp_ratio=2., drop_path=0.,
                 act_cfg=dict(type='GELU'), norm_cfg=None, use_pat_sp=False,
                 conv=None, dpconv=None):
        super().__init__()
        self.token_mixer = PATChannel(channels, n_div, norm_cfg, conv=conv,
                                      dpconv=dpconv)
        self.mlp = PartialMLP(channels, mlp_ratio, act_cfg, norm_cfg,
                              use_pat_sp)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        return x + self.drop_path(self.mlp(self.token_mixer(x)))


class PartialAttnBlock(nn.Module):
    """PartialNet block v2 (stage 4).

    ``x = x + PAT_sf(x)`` (no drop-path there, as in the reference), then
    ``x = x + DropPath(MLP(x))``.

    Args:
        channels (int): Channels of the stage.
        n_div (int): Split ratio of PAT_sf.
        mlp_ratio (float): MLP expansion.
        drop_path (float): Stochastic depth rate of the MLP branch.
        act_cfg (dict): Activation config.
        norm_cfg (dict): Norm config.
        use_pat_sp (bool): End the MLP with PAT_sp.
        num_heads (int): Attention heads of PAT_sf.
        attn_drop (float): Dropout on the attention map.
        proj_drop (float): Dropout after the attention projection.
        conv (nn.Module, optional): Replacement of PAT_sf's 3x3 convolution.
        dpconv (nn.Module, optional): A DPConv over all channels in front of
            PAT_sf's split (see :class:`PATSelfAttention`).
    """

    def __init__(self, channels, n_div=4, mlp_ratio=2., drop_path=0.,
                 act_cfg=dict(type='GELU'), norm_cfg=None, use_pat_sp=False,
                 num_heads=4, attn_drop=0.1, proj_drop=0.1, conv=None,
                 dpconv=None):
        super().__init__()
        self.token_mixer = PATSelfAttention(channels, n_div, num_heads,
                                            attn_drop, proj_drop, conv=conv,
                                            dpconv=dpconv)
        self.mlp = PartialMLP(channels, mlp_ratio, act_cfg, norm_cfg,
                              use_pat_sp)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = x + self.token_mixer(x)
        return x + self.drop_path(self.mlp(x))

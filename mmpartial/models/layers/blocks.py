import torch
import torch.nn as nn

from .builders import build_act, build_norm
from .conv_bn import (conv_to_linear, fold_input_affine, fold_output_affine,
                      norm_affine)
from .deploy_ops import activate_, functional, nchw, nhwc, pointwise
from .drop_path import DropPath
from .pat_channel import PATChannel
from .pat_self_attn import PATSelfAttention
from .pat_spatial import PATSpatial


class PartialMLP(nn.Module):
    """Conv1x1 (C -> ratio*C), norm, act, Conv1x1 (-> C), optional PAT_sp.

    Deploy form (:meth:`switch_to_deploy`): the norm folded into ``fc1``;
    with PAT_sp, its linear half merged into ``fc2``, so that ``fc2``
    outputs the gated half's input and the linear half's output directly.
    Both become ``nn.Linear`` layers on channels-last tokens.

    Args:
        channels (int): Input and output channels.
        mlp_ratio (float): Hidden width as a multiple of ``channels``.
        act_cfg (dict): Activation config.
        norm_cfg (dict): Norm config.
        use_pat_sp (bool): End with a :class:`PATSpatial` layer.
        deploy (bool): Build the inference form. Defaults to False.
    """

    def __init__(self, channels, mlp_ratio=2., act_cfg=dict(type='GELU'),
                 norm_cfg=None, use_pat_sp=False, deploy=False):
        super().__init__()
        self.deploy = deploy
        hidden = int(channels * mlp_ratio)
        # Deploy form: the 1x1 convolutions as Linear layers on NHWC
        # tokens, fc1 with the norm folded in (a bias).
        self.fc1 = nn.Linear(channels, hidden) if deploy else nn.Conv2d(
            channels, hidden, 1, bias=False)
        self.norm = nn.Identity() if deploy else build_norm(norm_cfg, hidden)
        self.act = build_act(act_cfg)
        self.fc2 = nn.Linear(hidden, channels, bias=use_pat_sp) if deploy \
            else nn.Conv2d(hidden, channels, 1, bias=False)
        self.pat_sp = PATSpatial(channels, norm_cfg, deploy) \
            if use_pat_sp else None

    def forward(self, x):
        if self.deploy:
            return nchw(self.forward_nhwc(nhwc(x)))
        x = self.fc2(self.act(self.norm(self.fc1(x))))
        return x if self.pat_sp is None else self.pat_sp(x)

    def forward_nhwc(self, t, residual=None):
        """Deploy form on NHWC ``t``, plus ``residual`` if given.

        Without PAT_sp the residual is added inside ``fc2``'s matrix
        multiply (``addmm``) rather than in a separate pass.

        Args:
            t (Tensor): ``(B, H, W, C)`` input.
            residual (Tensor, optional): ``(B, H, W, C)`` added to the
                output.

        Returns:
            Tensor: ``(B, H, W, C)``, contiguous.
        """
        if functional(t, self.fc1.weight):
            out = self._forward_rows(t)
            return out if residual is None else out + residual
        channels = self.fc2.out_features
        rows = t.reshape(-1, t.shape[-1])
        out = rows.new_empty(rows.shape[0], channels)
        self._forward_rows(
            rows, None if residual is None else residual.reshape(-1, channels),
            out)
        return out.view(t.shape[:-1] + (channels, ))

    def _forward_rows(self, x, residual=None, out=None):
        """The deployed MLP on rows ``x`` (``(..., C)``).

        With ``out`` (in place, not while exporting): the result plus
        ``residual`` is written there. Without: the MLP's output is
        returned, the residual not added.
        """
        hidden = activate_(self.act, pointwise(x, self.fc1))
        if out is None:
            y = pointwise(hidden, self.fc2)
            return y if self.pat_sp is None else self.pat_sp.forward_nhwc(y)
        weight = self.fc2.weight.t()
        if self.pat_sp is None and self.fc2.bias is None:
            if residual is None:
                return torch.mm(hidden, weight, out=out)
            return torch.addmm(residual, hidden, weight, out=out)
        y = pointwise(hidden, self.fc2)
        if self.pat_sp is not None:
            y = self.pat_sp.forward_nhwc(y, inplace=True)
        if residual is None:
            return out.copy_(y)
        return torch.add(y, residual, out=out)

    def switch_to_deploy(self):
        """Fold the norm into ``fc1`` and PAT_sp's linear half into ``fc2``
        (both get a bias; ``fc2`` only with PAT_sp); both become
        ``nn.Linear``. Eval-mode outputs are unchanged."""
        if self.deploy:
            return
        fold_output_affine(self.fc1, *norm_affine(self.norm))
        self.norm = nn.Identity()
        if self.pat_sp is not None:
            self.pat_sp.merge_linear_into(self.fc2)
        self.fc1 = conv_to_linear(self.fc1)
        self.fc2 = conv_to_linear(self.fc2)
        self.deploy = True


class PartialBlock(nn.Module):
    """PartialNet block v1 (stages 1-3): ``x + DropPath(MLP(PAT_ch(x)))``.

    Deploy form (:meth:`switch_to_deploy`): both parts deployed, PAT_ch's
    norm after the gating folded into the input columns of the MLP's
    ``fc1`` (PAT_ch's output feeds nothing else), no drop-path.

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
        deploy (bool): Build the inference form. Defaults to False.
    """

    def __init__(self, channels, n_div=4, mlp_ratio=2., drop_path=0.,
                 act_cfg=dict(type='GELU'), norm_cfg=None, use_pat_sp=False,
                 conv=None, dpconv=None, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.token_mixer = PATChannel(channels, n_div, norm_cfg, conv=conv,
                                      dpconv=dpconv, deploy=deploy)
        self.mlp = PartialMLP(channels, mlp_ratio, act_cfg, norm_cfg,
                              use_pat_sp, deploy=deploy)
        self.drop_path = DropPath(drop_path) \
            if drop_path > 0 and not deploy else nn.Identity()

    def forward(self, x):
        if self.deploy:
            return nchw(self.forward_nhwc(nhwc(x)))
        return x + self.drop_path(self.mlp(self.token_mixer(x)))

    def forward_nhwc(self, t):
        """Deploy form on NHWC ``t``; returns a contiguous NHWC tensor."""
        return self.mlp.forward_nhwc(self.token_mixer.forward_nhwc(t),
                                     residual=t)

    def switch_to_deploy(self):
        """Deploy both parts and fold PAT_ch's trailing norm into the MLP.
        Eval-mode outputs are unchanged."""
        if self.deploy:
            return
        self.token_mixer.switch_to_deploy()
        self.mlp.switch_to_deploy()
        mixer = self.token_mixer
        if not isinstance(mixer.norm, nn.Identity):
            fold_input_affine(self.mlp.fc1, *norm_affine(mixer.norm),
                              start=mixer.conv_channels)
            mixer.norm = nn.Identity()
        self.drop_path = nn.Identity()
        self.deploy = True


class PartialAttnBlock(nn.Module):
    """PartialNet block v2 (stage 4).

    ``x = x + PAT_sf(x)`` (no drop-path there, as in the reference), then
    ``x = x + DropPath(MLP(x))``. Deploy form: both parts deployed, no
    drop-path.

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
        deploy (bool): Build the inference form. Defaults to False.
    """

    def __init__(self, channels, n_div=4, mlp_ratio=2., drop_path=0.,
                 act_cfg=dict(type='GELU'), norm_cfg=None, use_pat_sp=False,
                 num_heads=4, attn_drop=0.1, proj_drop=0.1, conv=None,
                 dpconv=None, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.token_mixer = PATSelfAttention(channels, n_div, num_heads,
                                            attn_drop, proj_drop, conv=conv,
                                            dpconv=dpconv, deploy=deploy)
        self.mlp = PartialMLP(channels, mlp_ratio, act_cfg, norm_cfg,
                              use_pat_sp, deploy=deploy)
        self.drop_path = DropPath(drop_path) \
            if drop_path > 0 and not deploy else nn.Identity()

    def forward(self, x):
        if self.deploy:
            return nchw(self.forward_nhwc(nhwc(x)))
        x = x + self.token_mixer(x)
        return x + self.drop_path(self.mlp(x))

    def forward_nhwc(self, t):
        """Deploy form on NHWC ``t``; returns a contiguous NHWC tensor."""
        t = self.token_mixer.forward_nhwc(t, residual=t)
        return self.mlp.forward_nhwc(t, residual=t)

    def switch_to_deploy(self):
        """Deploy both parts and drop the drop-path. Eval-mode outputs are
        unchanged."""
        if self.deploy:
            return
        self.token_mixer.switch_to_deploy()
        self.mlp.switch_to_deploy()
        self.drop_path = nn.Identity()
        self.deploy = True

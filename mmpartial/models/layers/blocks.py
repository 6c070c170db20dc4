import torch.nn as nn

from .builders import build_act, build_norm
from .conv_bn import (conv_to_linear, fold_input_affine, fold_output_affine,
                      norm_affine)
from .deploy_ops import activate, add_residual, conv1x1
from .dpconv import DPConv
from .drop_path import DropPath
from .pat_channel import PATChannel
from .pat_self_attn import PATSelfAttention
from .pat_spatial import PATSpatial


class PartialMLP(nn.Module):
    """Conv1x1 (C -> ratio*C), norm, act, Conv1x1 (-> C), optional PAT_sp.

    Deploy form (:meth:`switch_to_deploy`): the norm folded into ``fc1``;
    with PAT_sp, its linear half merged into ``fc2``, so that ``fc2``
    outputs the gated half's input and the linear half's output directly.
    Both become ``nn.Linear`` layers (the deploy checkpoint's layout),
    applied as 1x1 convolutions (:meth:`forward_deploy`).

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
        # Deploy form: the 1x1 convolutions as Linear layers (fc1 with the
        # norm folded in, a bias), applied as 1x1 convolutions.
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
            return self.forward_deploy(x)
        x = self.fc2(self.act(self.norm(self.fc1(x))))
        return x if self.pat_sp is None else self.pat_sp(x)

    def forward_deploy(self, x, residual=None):
        """Deploy form, plus ``residual`` if given.

        ``fc1`` and ``fc2`` (``nn.Linear`` since the switch) run as 1x1
        convolutions of their weights, on ``channels_last`` activations.
        Measured on the development CPU (T0 and T2, batch 1 and 32, eager
        and compiled), this is as fast as one matrix multiply over the
        NHWC tokens with the residual as its accumulator, and simpler.
        Without autograd the activation and the residual sum overwrite the
        convolutions' outputs (:func:`~.deploy_ops.may_overwrite`): at
        batch 32 on the development CPU, eager T0 and T2 backbones went
        from 1.46x and 1.44x the train form to 1.60x and 1.59x.

        Args:
            x (Tensor): ``(B, C, H, W)``, best in channels_last format.
            residual (Tensor, optional): ``(B, C, H, W)`` added to the
                output.
        """
        hidden = activate(self.act, conv1x1(x, self.fc1))
        out = conv1x1(hidden, self.fc2)
        if self.pat_sp is not None:
            out = self.pat_sp(out)
        return out if residual is None else add_residual(out, residual)

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


DPCONV_MODES = ('split', 'auto_div')


def build_auto_div_mixer(channels, dpconv, deploy=False):
    """The reference code's ``auto_div`` token mixer: one DPConv over all
    channels, no attention. Its gates start at random signs and it trains
    in the reference's group form (``train_form='group'``) unless
    ``dpconv`` says otherwise."""
    options = dict(init_split='random', train_form='group')
    options.update(dpconv or {})
    return DPConv(channels, deploy=deploy, **options)


def _check_mode(dpconv_mode):
    if dpconv_mode not in DPCONV_MODES:
        raise ValueError(f'dpconv_mode must be one of {DPCONV_MODES}, got '
                         f'{dpconv_mode!r}')


class PartialBlock(nn.Module):
    """PartialNet block v1 (stages 1-3): ``x + DropPath(MLP(PAT_ch(x)))``.

    Deploy form (:meth:`switch_to_deploy`): both parts deployed, PAT_ch's
    norm after the gating folded into the input columns of the MLP's
    ``fc1`` (PAT_ch's output feeds nothing else), no drop-path.

    With ``dpconv_mode='auto_div'`` the token mixer is a :class:`DPConv`
    instead of PAT_ch (the reference code's ``auto_div`` network).

    Args:
        channels (int): Channels of the stage.
        n_div (int): Split ratio of PAT_ch (``channels // n_div`` convolved).
        mlp_ratio (float): MLP expansion.
        drop_path (float): Stochastic depth rate of this block.
        act_cfg (dict): Activation config.
        norm_cfg (dict): Norm config.
        use_pat_sp (bool): End the MLP with PAT_sp.
        conv (nn.Module, optional): Replacement of PAT_ch's 3x3 convolution.
        dpconv (dict, optional): DPConv options: PAT_ch learns its split
            (see :class:`PATChannel`), or with ``dpconv_mode='auto_div'``
            they are the token mixer's.
        dpconv_mode (str): ``'split'`` or ``'auto_div'``. Defaults to
            ``'split'``.
        channel_attn (bool): PAT_ch's channel attention; False makes it
            FasterNet's plain partial convolution. Defaults to True.
        deploy (bool): Build the inference form. Defaults to False.
    """

    def __init__(self, channels, n_div=4, mlp_ratio=2., drop_path=0.,
                 act_cfg=dict(type='GELU'), norm_cfg=None, use_pat_sp=False,
                 conv=None, dpconv=None, dpconv_mode='split',
                 channel_attn=True, deploy=False):
        super().__init__()
        _check_mode(dpconv_mode)
        self.deploy = deploy
        if dpconv is not None and dpconv_mode == 'auto_div':
            self.token_mixer = build_auto_div_mixer(channels, dpconv, deploy)
        else:
            self.token_mixer = PATChannel(channels, n_div, norm_cfg,
                                          conv=conv, dpconv=dpconv,
                                          channel_attn=channel_attn,
                                          deploy=deploy)
        self.mlp = PartialMLP(channels, mlp_ratio, act_cfg, norm_cfg,
                              use_pat_sp, deploy=deploy)
        self.drop_path = DropPath(drop_path) \
            if drop_path > 0 and not deploy else nn.Identity()

    def forward(self, x):
        if self.deploy:
            return self.mlp.forward_deploy(self.token_mixer(x), residual=x)
        return x + self.drop_path(self.mlp(self.token_mixer(x)))

    def switch_to_deploy(self):
        """Deploy both parts and fold PAT_ch's trailing norm into the MLP.
        Eval-mode outputs are unchanged."""
        if self.deploy:
            return
        self.token_mixer.switch_to_deploy()
        self.mlp.switch_to_deploy()
        mixer = self.token_mixer
        norm = getattr(mixer, 'norm', None)
        if norm is not None and not isinstance(norm, nn.Identity):
            scale, shift = norm_affine(norm)
            if mixer.channel_perm is None:
                fold_input_affine(self.mlp.fc1, scale, shift,
                                  start=mixer.conv_channels)
            else:
                # A learned split out of order: the normalised channels
                # are where the layer scatters its attention part back.
                index = mixer.attn_index()
                full_scale = scale.new_ones(mixer.channels)
                full_shift = shift.new_zeros(mixer.channels)
                full_scale[index] = scale
                full_shift[index] = shift
                fold_input_affine(self.mlp.fc1, full_scale, full_shift)
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
        dpconv (dict, optional): DPConv options: PAT_sf learns its split
            (see :class:`PATSelfAttention`), or with
            ``dpconv_mode='auto_div'`` they are the token mixer's.
        dpconv_mode (str): ``'split'`` or ``'auto_div'``. Defaults to
            ``'split'``.
        deploy (bool): Build the inference form. Defaults to False.
    """

    def __init__(self, channels, n_div=4, mlp_ratio=2., drop_path=0.,
                 act_cfg=dict(type='GELU'), norm_cfg=None, use_pat_sp=False,
                 num_heads=4, attn_drop=0.1, proj_drop=0.1, conv=None,
                 dpconv=None, dpconv_mode='split', deploy=False):
        super().__init__()
        _check_mode(dpconv_mode)
        self.deploy = deploy
        if dpconv is not None and dpconv_mode == 'auto_div':
            self.token_mixer = build_auto_div_mixer(channels, dpconv, deploy)
        else:
            self.token_mixer = PATSelfAttention(
                channels, n_div, num_heads, attn_drop, proj_drop, conv=conv,
                dpconv=dpconv, deploy=deploy)
        self.mlp = PartialMLP(channels, mlp_ratio, act_cfg, norm_cfg,
                              use_pat_sp, deploy=deploy)
        self.drop_path = DropPath(drop_path) \
            if drop_path > 0 and not deploy else nn.Identity()

    def forward(self, x):
        if self.deploy:
            x = x + self.token_mixer(x)
            return self.mlp.forward_deploy(x, residual=x)
        x = x + self.token_mixer(x)
        return x + self.drop_path(self.mlp(x))

    def switch_to_deploy(self):
        """Deploy both parts and drop the drop-path. Eval-mode outputs are
        unchanged."""
        if self.deploy:
            return
        self.token_mixer.switch_to_deploy()
        self.mlp.switch_to_deploy()
        self.drop_path = nn.Identity()
        self.deploy = True

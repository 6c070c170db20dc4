import logging

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import load_state_dict
from torch.nn.modules.batchnorm import _BatchNorm

from mmpartial.registry import MODELS
from mmpartial.utils.checkpoint import (check_state_dict_fits,
                                        load_checkpoint_file,
                                        unwrap_state_dict)
from mmpartial.utils.torch_compat import register_load_state_dict_pre_hook
from ..layers import ConvBN, PartialAttnBlock, PartialBlock
from ..layers.builders import build_norm
from .dpconv_cfg import parse_dpconv_cfg
from .layer_depth import layer_depth
from .state_dict_check import refuse_misfit


@MODELS.register_module()
class PartialNet(BaseModule):
    """PartialNet backbone.

    A four-stage hierarchical network of partial-channel blocks, from
    `Partial Channel Network: Compute Fewer, Perform Better
    <https://arxiv.org/abs/2502.01303>`_. Stages 1-3 use PAT_ch blocks,
    stage 4 PAT_sf (self-attention) blocks; variants with ``use_pat_sp`` end
    every MLP with PAT_sp.

    Args:
        arch (str | dict): A variant of :attr:`arch_zoo` (``'t0'``, ``'t1'``,
            ``'t2'``, ``'s'``, ``'m'``, ``'l'``) or a dict with the keys
            ``embed_dim`` (int), ``depths`` (4 ints) and optionally
            ``act_cfg`` (dict, default GELU), ``use_pat_sp`` (bool, default
            False) and ``drop_path_rate`` (float, default 0).
        use_pat_sp (bool, optional): End every MLP with PAT_sp. Defaults to
            None: the variant's setting (the paper's ablation, its Table 4,
            switches it).
        use_pat_sf (bool): Stage 4 uses PAT_sf blocks (v2, self-attention).
            False gives it PAT_ch blocks (v1) like the other stages, as the
            "PAT_ch only" and "+ PAT_sp" rows of the ablation. Defaults to
            True.
        use_channel_attn (bool): The channel attention of every PAT_ch
            layer. False turns each PAT_ch layer into FasterNet's plain
            partial convolution (the convolved part beside an identity; the
            reference's ``use_channel_attn=False``). Defaults to True.
        in_channels (int): Channels of the input images. Defaults to 3.
        n_div (int): The convolution of a PAT layer gets ``1 / n_div`` of the
            channels. Defaults to 4.
        mlp_ratio (float): MLP expansion. Defaults to 2.
        num_heads (int): Attention heads of PAT_sf. Defaults to 4.
        attn_drop_rate (float): Dropout on attention maps. Defaults to 0.1.
        proj_drop_rate (float): Dropout after the attention projection.
            Defaults to 0.1.
        drop_path_rate (float, optional): Stochastic depth, rising linearly
            to this rate over the blocks. Defaults to the variant's rate.
        out_indices (Sequence[int] | int): Stages (0-3) whose outputs are
            returned. Defaults to -1 (the last stage).
        out_norm (bool): Put a norm layer on every output, as the reference
            detection model does. Defaults to False (classification).
        frozen_stages (int): Freeze the first ``frozen_stages`` stages, each
            with its downsampling layer (stage 0's is the stem), and their
            output norms: no gradients, norms in eval mode. 0 freezes none.
            Defaults to 0.
        norm_cfg (dict): Config of the BN layers. Defaults to
            ``dict(type='BN')``.
        norm_eval (bool): Keep every BN layer in eval mode during training
            (frozen statistics), as detection fine-tuning usually does.
            Defaults to False.
        with_cp (bool): Gradient checkpointing of every block: less memory,
            more compute. Defaults to False.
        dpconv (dict, optional): Learn the split of every PAT layer (PAT_ch
            and PAT_sf) with a DPConv, starting at ``1 / n_div`` (the plain
            layer): the convolution takes the first ``r * C`` channels, the
            attention the rest (``mode='split'``, the paper's DPConv); or,
            with ``mode='auto_div'``, replace every token mixer by a DPConv
            (the reference code's network). Options, all optional:
            ``mode``, ``loss_form`` (``'multiplicative'`` or
            ``'additive'``), ``budget`` (> 1, default 2), ``theta`` ([0, 1),
            default 0), ``alpha`` (> 0, default 0.01),
            ``complexity_weight`` (>= 0, default 0.01, additive form),
            ``ordering_weight`` (>= 0, default 1), ``warmup_epochs`` (int >=
            0, default 0), ``init_gate`` ((0, 1), default 1e-8),
            ``init_split`` (None, a ratio ``2**-z`` or ``'random'``),
            ``train_form`` (``auto_div`` only); see
            :func:`parse_dpconv_cfg`. Kept as :attr:`dpconv_cfg`, where
            :class:`~mmpartial.engine.DPConvHook` reads the training ones
            (the regulariser and the warm-up). ``dict()`` uses the
            defaults; None (default) is the plain network.
        deploy (bool): Build the inference form directly, the structure
            :meth:`switch_to_deploy` leaves behind, so that a checkpoint
            written by ``tools/reparameterize.py`` loads strictly. With
            ``dpconv``, every learned split (and so the widths of the
            layer's convolution, gate, norms, ``qkv`` and ``proj``) is read
            from the checkpoint while loading: until then the layers have
            no branches and cannot run (see
            :mod:`~mmpartial.models.layers.pat_dpconv`). Defaults to False.
        init_cfg (dict | list[dict], optional): Initialisation config; e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
            to load an ImageNet classifier's backbone.
    """
    arch_zoo = {
        't0': dict(embed_dim=32, depths=[1, 2, 8, 2],
                   act_cfg=dict(type='GELU'), use_pat_sp=True,
                   drop_path_rate=0.),
        't1': dict(embed_dim=48, depths=[1, 2, 8, 2],
                   act_cfg=dict(type='GELU'), use_pat_sp=True,
                   drop_path_rate=0.02),
        't2': dict(embed_dim=64, depths=[2, 2, 6, 4],
                   act_cfg=dict(type='ReLU'), use_pat_sp=False,
                   drop_path_rate=0.05),
        's': dict(embed_dim=96, depths=[2, 2, 9, 4],
                  act_cfg=dict(type='ReLU'), use_pat_sp=False,
                  drop_path_rate=0.1),
        'm': dict(embed_dim=128, depths=[2, 3, 16, 4],
                  act_cfg=dict(type='ReLU'), use_pat_sp=False,
                  drop_path_rate=0.2),
        'l': dict(embed_dim=160, depths=[2, 3, 20, 4],
                  act_cfg=dict(type='ReLU'), use_pat_sp=False,
                  drop_path_rate=0.3),
    }
    arch_keys = {'embed_dim', 'depths', 'act_cfg', 'use_pat_sp',
                 'drop_path_rate'}
    num_stages = 4
    # The spec's initialisation; BN keeps PyTorch's default.
    default_init_cfg = [
        dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02,
             bias=0.),
        dict(type='Constant', layer=['LayerNorm'], val=1., bias=0.)
    ]
    # Total stride of the network: the stem patchifies by 4, each of the
    # three merging layers halves the map.
    stride = 32

    def __init__(self,
                 arch='t0',
                 in_channels=3,
                 n_div=4,
                 mlp_ratio=2.,
                 num_heads=4,
                 attn_drop_rate=0.1,
                 proj_drop_rate=0.1,
                 drop_path_rate=None,
                 out_indices=-1,
                 out_norm=False,
                 frozen_stages=0,
                 norm_cfg=dict(type='BN'),
                 norm_eval=False,
                 with_cp=False,
                 dpconv=None,
                 deploy=False,
                 use_pat_sp=None,
                 use_pat_sf=True,
                 use_channel_attn=True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg or self.default_init_cfg)
        self.arch_settings = self.parse_arch(arch)
        embed_dim = self.arch_settings['embed_dim']
        depths = self.arch_settings['depths']
        act_cfg = self.arch_settings.get('act_cfg', dict(type='GELU'))
        for name, value in (('use_pat_sp', use_pat_sp),
                            ('use_pat_sf', use_pat_sf),
                            ('use_channel_attn', use_channel_attn)):
            optional = name == 'use_pat_sp'
            if not isinstance(value, bool) and not (optional
                                                    and value is None):
                valid = 'a bool or None (the variant\'s setting)' \
                    if optional else 'a bool'
                raise TypeError(f'PartialNet {name} must be {valid}, got '
                                f'{type(value).__name__} {value!r}')
        if use_pat_sp is None:
            use_pat_sp = self.arch_settings.get('use_pat_sp', False)
        self.use_pat_sp = use_pat_sp
        self.use_pat_sf = use_pat_sf
        self.use_channel_attn = use_channel_attn
        if drop_path_rate is None:
            drop_path_rate = self.arch_settings.get('drop_path_rate', 0.)

        self.in_channels = in_channels
        self.channels = [embed_dim * 2**i for i in range(self.num_stages)]
        self.out_indices = self.parse_out_indices(out_indices)
        if not 0 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [0, {self.num_stages}]'
                             f', got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.out_norm = out_norm
        self.dpconv_cfg = parse_dpconv_cfg(dpconv)
        if self.dpconv_cfg and self.dpconv_cfg['mode'] == 'split' and (
                n_div < 2 or n_div & (n_div - 1)):
            raise ValueError(f'dpconv needs n_div to be a power of two >= 2 '
                             f'(the DPConv starts at the split 1 / n_div), '
                             f'got n_div={n_div}')
        self.deploy = deploy

        # One rate per block, rising linearly over the whole network.
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.downsample_layers = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev = in_channels
        for i, (channels, depth) in enumerate(zip(self.channels, depths)):
            self.downsample_layers.append(
                ConvBN(prev, channels, 4 if i == 0 else 2, norm_cfg,
                       deploy=deploy))
            if i == 3 and use_pat_sf:
                block_type = PartialAttnBlock
                extra = dict(num_heads=num_heads, attn_drop=attn_drop_rate,
                             proj_drop=proj_drop_rate)
            else:
                block_type = PartialBlock
                extra = dict(channel_attn=use_channel_attn)
            first = sum(depths[:i])
            self.stages.append(
                nn.Sequential(*[
                    block_type(channels, n_div=n_div, mlp_ratio=mlp_ratio,
                               drop_path=dpr[first + j], act_cfg=act_cfg,
                               norm_cfg=norm_cfg, use_pat_sp=use_pat_sp,
                               deploy=deploy, **self._dpconv_args(), **extra)
                    for j in range(depth)
                ]))
            prev = channels
        if out_norm:
            for i in self.out_indices:
                self.add_module(f'norm{i}',
                                build_norm(norm_cfg, self.channels[i]))
        self._freeze_stages()
        if deploy:
            self._channels_last_weights()
        self._set_cost_sizes()
        register_load_state_dict_pre_hook(self, refuse_misfit)

    def _dpconv_args(self):
        """The blocks' ``dpconv`` and ``dpconv_mode`` arguments."""
        cfg = self.dpconv_cfg
        if cfg is None:
            return {}
        layer = dict(init_gate=cfg['init_gate'])
        if cfg['init_split'] is not None:
            layer['init_split'] = cfg['init_split']
        if cfg['mode'] == 'auto_div' and cfg['train_form'] is not None:
            layer['train_form'] = cfg['train_form']
        return dict(dpconv=layer, dpconv_mode=cfg['mode'])

    def _set_cost_sizes(self, size=224):
        """Tell every learned split its map size for a ``size`` image, the
        size its cost is counted at until a forward shows the real one."""
        for i, stage in enumerate(self.stages):
            side = size // 4 // 2**i
            for module in stage.modules():
                if hasattr(module, 'default_hw'):
                    module.default_hw = (side, side)

    @classmethod
    def parse_arch(cls, arch):
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(
                    f'Unknown PartialNet arch {arch!r}; valid archs are '
                    f'{list(cls.arch_zoo)}, or a dict with the keys '
                    f'{sorted(cls.arch_keys)}')
            return dict(cls.arch_zoo[key])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch)}')
        unknown = set(arch) - cls.arch_keys
        missing = {'embed_dim', 'depths'} - set(arch)
        if unknown or missing:
            raise ValueError(
                f'Invalid PartialNet arch dict: unknown keys '
                f'{sorted(unknown)}, missing keys {sorted(missing)}; valid '
                f'keys are {sorted(cls.arch_keys)}')
        if len(arch['depths']) != cls.num_stages or min(arch['depths']) < 1:
            raise ValueError('arch["depths"] must give 4 positive block '
                             f'counts, got {arch["depths"]}')
        return dict(arch)

    def parse_out_indices(self, out_indices):
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            if not -self.num_stages <= index < self.num_stages:
                raise ValueError(
                    f'out_indices entry {index} is out of range: PartialNet '
                    f'has {self.num_stages} stages, valid indices are 0-3 '
                    '(or -4 to -1)')
            parsed.append(index % self.num_stages)
        return tuple(parsed)

    def get_layer_depth(self, param_name, prefix=''):
        """``(depth, num_layers)`` for lr decay; see :func:`layer_depth`."""
        return layer_depth(param_name, self.arch_settings['depths'], prefix)

    def check_input(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'PartialNet expects (B, {self.in_channels}, H, W) images, '
                f'got a tensor of shape {tuple(x.shape)}; set in_channels '
                'to match your data')
        if min(x.shape[-2:]) < self.stride:
            raise ValueError(
                f'Input of {x.shape[-2]}x{x.shape[-1]} is smaller than '
                f'PartialNet\'s total stride of {self.stride}: each side must '
                f'be at least {self.stride} pixels')

    def forward(self, x):
        self.check_input(x)
        if self.deploy:
            return self.forward_deploy(x)
        outs = []
        for i, (downsample, stage) in enumerate(
                zip(self.downsample_layers, self.stages)):
            x = downsample(x)
            if self.with_cp and x.requires_grad:
                for block in stage:
                    x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = stage(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x)
                            if self.out_norm else x)
        return tuple(outs)

    def forward_deploy(self, x):
        """The deploy forward: the same outputs as :meth:`forward`.

        The activations stay in ``channels_last`` memory format from the
        stem on (see :mod:`~mmpartial.models.layers.deploy_ops`); the
        outputs are contiguous NCHW tensors, as in train form.
        """
        outs = []
        x = x.contiguous(memory_format=torch.channels_last)
        for i, (downsample, stage) in enumerate(
                zip(self.downsample_layers, self.stages)):
            # oneDNN keeps channels_last, a fallback kernel may not.
            x = stage(downsample(x).contiguous(
                memory_format=torch.channels_last))
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x) if self.out_norm else x
                outs.append(out.contiguous())
        return tuple(outs)

    def _freeze_stages(self):
        for i in range(self.frozen_stages):
            modules = [self.downsample_layers[i], self.stages[i]]
            if self.out_norm and i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
            for module in modules:
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def init_weights(self):
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        # A fresh initialisation first: what the checkpoint lacks (the
        # detection output norms) starts as in a new model.
        self.init_cfg = self.default_init_cfg
        super().init_weights()
        self.init_cfg = cfg
        checkpoint = cfg.get('checkpoint')
        if checkpoint is None:
            # Configs come ready for an ImageNet checkpoint; without one
            # given, train from scratch rather than fail.
            print_log('PartialNet: init_cfg.checkpoint is None, so the '
                      'backbone starts from random weights', logger='current',
                      level=logging.WARNING)
            return
        # mmengine's Pretrained init only warns about tensors of the wrong
        # shape; a checkpoint of another variant must not pass unnoticed.
        prefix = cfg.get('prefix') or ''
        state = unwrap_state_dict(load_checkpoint_file(
            checkpoint, cfg.get('map_location', 'cpu')))
        check_state_dict_fits(state, self, checkpoint, prefix=prefix)
        load_state_dict(self, {key[len(prefix):]: value
                               for key, value in state.items()
                               if key.startswith(prefix)},
                        strict=False, logger='current')
        print_log(f'PartialNet: loaded {checkpoint} (prefix {prefix!r})',
                  logger='current')

    def switch_to_deploy(self):
        """Turn the network into its inference form, in place.

        Calls ``switch_to_deploy()`` of every submodule that has one,
        children before parents (so a parent finds its children already
        converted), then sets :attr:`deploy`. What folds where:

        - stem and merging layers: the BN into the convolution;
        - a learned split (DPConv): the PAT layer becomes the plain one at
          the learned split (slices of the DPConv weight and of the masked
          attention branch), then folds as below; an ``auto_div`` DPConv
          becomes a partial convolution over its learned channels;
        - PAT_ch: the gate's BN into its ``(1, 2)`` convolution, the BN
          after the gating into the input columns of the MLP's ``fc1``
          (done by the block);
        - MLP: the BN into ``fc1``; PAT_sp's linear half (BN, Conv1x1) into
          the rows of ``fc2`` that feed it (its gated half keeps its ops);
        - PAT_sf: the LayerNorm's affine into ``qkv``; the iRPE bias is
          gathered once per input shape and cached;
        - dropout and drop-path become identities; the output norms of a
          dense-prediction backbone stay (nothing linear follows them).

        The forward then runs :meth:`forward_deploy`. Eval outputs are
        unchanged (to float rounding). The method is the one mmpretrain's
        reparameterisation tool calls; calling it twice is harmless.
        """
        if self.deploy:
            return
        # Learned splits first become the plain layers they stand for (this
        # needs their gates, which a DPConv's own conversion would drop).
        for module in list(self.modules()):
            if callable(getattr(module, 'materialize_split', None)):
                module.materialize_split()
        # Listed first: a conversion may add or remove submodules.
        convertible = [
            module for module in reversed(list(self.modules()))
            if module is not self
            and callable(getattr(module, 'switch_to_deploy', None))
        ]
        for module in convertible:
            module.switch_to_deploy()
        self._channels_last_weights()
        self.deploy = True

    def _channels_last_weights(self):
        # The deploy forward runs the spatial convolutions on channels_last
        # activations; oneDNN would convert contiguous weights on every
        # call. 1x1 kernels are used as matrices and keep their layout.
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and \
                    min(module.kernel_size) > 1:
                module.weight.data = module.weight.data.contiguous(
                    memory_format=torch.channels_last)

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

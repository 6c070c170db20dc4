import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead

from ..layers.builders import build_act


class PartialNetClsHead(ClsHead):
    """PartialNet's classification head.

    Global average pooling, a bias-free Conv1x1 to ``hidden_channels``, the
    variant's activation, then a Linear classifier. The 1x1 convolution runs
    on the pooled vector, so it costs ``in_channels * hidden_channels``
    multiply-adds, not that per pixel.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the last backbone stage.
        hidden_channels (int): Width before the classifier. Defaults to 1280.
        act_cfg (dict): Activation config, the backbone variant's own
            (GELU for T0/T1, ReLU for the others).
        **kwargs: Arguments of mmpretrain's ``ClsHead`` (``loss``, ``topk``,
            ``cal_acc``, ``init_cfg``).
    """

    def __init__(self, num_classes, in_channels, hidden_channels=1280,
                 act_cfg=dict(type='GELU'),
                 init_cfg=dict(type='TruncNormal', layer=['Conv2d', 'Linear'],
                               std=.02, bias=0.),
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, hidden_channels, 1, bias=False)
        self.act = build_act(act_cfg)
        self.fc = nn.Linear(hidden_channels, num_classes)

    def pre_logits(self, feats):
        x = feats[-1]
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'PartialNetClsHead got {x.shape[1]} channels but in_channels'
                f'={self.in_channels}; set head.in_channels to the last '
                'stage width (8 * embed_dim)')
        return self.act(self.conv(F.adaptive_avg_pool2d(x, 1))).flatten(1)

    def forward(self, feats):
        return self.fc(self.pre_logits(feats))

"""An independent, functional PartialNet forward over the reference code's
state-dict names, written from the spec (shared/docs). Tests compare it with
the package's model after conversion: it checks the key mapping (which BN
is which) and the layers at once."""
import math

import torch
import torch.nn.functional as F


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + 'running_mean'], sd[p + 'running_var'],
                        sd[p + 'weight'], sd[p + 'bias'], False, 0., 1e-5)


def _buckets(h, w):
    idx = []
    for i in range(h * w):
        row = []
        for j in range(h * w):
            r = round(math.dist(divmod(i, w), divmod(j, w)))
            f = r if r <= 20 else min(
                40, round(20 + math.log(r / 20) / math.log(8) * 20))
            row.append(40 + f)
        idx.append(row)
    return torch.tensor(idx)


def _pat_ch(x, sd, p):
    c1 = sd[p + 'partial_conv3.weight'].shape[0]
    x1, x2 = x[:, :c1], x[:, c1:]
    flat = x2.flatten(2)
    style = torch.stack([flat.mean(-1), flat.std(-1)], -1).unsqueeze(2)
    g = F.hardsigmoid(_bn(F.conv2d(style, sd[p + 'attn.cfc1.weight']), sd,
                          p + 'attn.bn.'))
    return torch.cat([F.conv2d(x1, sd[p + 'partial_conv3.weight'],
                               padding=1), _bn(x2 * g, sd, p + 'norm.')], 1)


def _pat_sf(x, sd, p):
    c1 = sd[p + 'partial_conv3.weight'].shape[0]
    x1, x2 = x[:, :c1], x[:, c1:]
    b, d, h, w = x2.shape
    t = F.layer_norm(x2.flatten(2).transpose(1, 2), (d, ),
                     sd[p + 'norm.weight'], sd[p + 'norm.bias'], 1e-6)
    qkv = (t @ sd[p + 'attn.qkv.weight'].T).reshape(b, h * w, 3, 4, d // 4)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    table = sd[p + 'attn.rpe_k.lookup_table_bias']
    logits = q @ k.transpose(-1, -2) * (d // 4)**-0.5 + \
        table[:, _buckets(h, w)]
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, h * w, d)
    out = out @ sd[p + 'attn.proj.weight'].T + sd[p + 'attn.proj.bias']
    return torch.cat([F.conv2d(x1, sd[p + 'partial_conv3.weight'],
                               padding=1),
                      out.transpose(1, 2).reshape(b, d, h, w)], 1)


def _mlp(x, sd, p, act):
    x = act(_bn(F.conv2d(x, sd[p + '0.weight']), sd, p + '1.'))
    x = F.conv2d(x, sd[p + '3.weight'])
    if p + '4.conv.weight' in sd:  # PAT_sp
        half = sd[p + '4.conv.weight'].shape[0]
        x1, x2 = x[:, :x.shape[1] - half], x[:, x.shape[1] - half:]
        wgt = F.hardsigmoid(F.conv2d(x1, sd[p + '4.conv_attn.weight']))
        x = torch.cat([_bn(x1 * wgt, sd, p + '4.norm.'),
                       F.conv2d(_bn(x2, sd, p + '4.norm2.'),
                                sd[p + '4.conv.weight'])], 1)
    return x


def reference_forward(sd, x, act):
    """Logits of the reference classifier (eval mode) for images x."""
    x = _bn(F.conv2d(x, sd['patch_embed.proj.weight'], stride=4), sd,
            'patch_embed.norm.')
    for s in range(7):
        if s % 2:
            x = _bn(F.conv2d(x, sd[f'stages.{s}.reduction.weight'],
                             stride=2), sd, f'stages.{s}.norm.')
            continue
        j = 0
        while f'stages.{s}.blocks.{j}.mlp.0.weight' in sd:
            p = f'stages.{s}.blocks.{j}.'
            if s < 6:
                x = x + _mlp(_pat_ch(x, sd, p + 'spatial_mixing.'), sd,
                             p + 'mlp.', act)
            else:
                x = x + _pat_sf(x, sd, p + 'spatial_mixing.')
                x = x + _mlp(x, sd, p + 'mlp.', act)
            j += 1
    x = act(F.conv2d(F.adaptive_avg_pool2d(x, 1),
                     sd['avgpool_pre_head.1.weight'])).flatten(1)
    return x @ sd['head.weight'].T + sd['head.bias']

"""The learned split ratio of every DPConv layer of a checkpoint, as JSON
and as a bar plot (the paper's Figure 7); ``tools/dpconv_report.py`` is
its command line."""
import json
import os
import os.path as osp

from mmpartial.models.utils.dpconv_summary import (dpconv_summary,
                                                   named_dpconvs)
from mmpartial.utils.checkpoint import read_checkpoint
from .model import init_model

#: The file names written into the output folder.
JSON_NAME = 'dpconv_ratios.json'
PNG_NAME = 'dpconv_ratios.png'


def check_gates(model, state, checkpoint):
    """Raise ValueError unless ``state`` holds the gates of every DPConv of
    ``model``: a checkpoint trained without DPConv loads at the initial
    split, whose ratios would read as learned."""
    missing = [f'{name}.gate' for name, _ in named_dpconvs(model)
               if f'{name}.gate' not in state]
    if missing:
        raise ValueError(
            f'checkpoint {checkpoint!r} holds no DPConv gates for '
            f'{len(missing)} layer(s) of the model (first: {missing[0]}); '
            'was it trained with this config?')


def dpconv_report(config, checkpoint, out_dir, cfg_options=None):
    """Write ``out_dir/dpconv_ratios.json`` and ``.png`` for the model of
    ``config`` (mmpretrain or mmdet) and a train-form ``checkpoint`` (the
    gates are needed); return the
    :func:`~mmpartial.models.utils.dpconv_summary.dpconv_summary` written,
    with ``config`` and ``checkpoint``. Raises FileNotFoundError for a
    missing file, ValueError for a model without DPConv or a checkpoint
    without its gates."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    model = init_model(config, checkpoint, cfg_options=cfg_options)
    if not named_dpconvs(model):
        raise ValueError(
            f'the model of {config!r} has no DPConv layers; use a config '
            'with model.backbone.dpconv=dict(...), e.g. '
            'configs/partialnet-t0-dpconv_in1k.py')
    state, _ = read_checkpoint(checkpoint)
    check_gates(model, state, checkpoint)
    summary = dpconv_summary(model)
    summary.update(config=config, checkpoint=checkpoint)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, JSON_NAME), 'w') as f:
        json.dump(summary, f, indent=2)
    plot_ratios(summary, osp.join(out_dir, PNG_NAME))
    return summary


def stage_of(name):
    """``backbone.stages.2.5.token_mixer.dpconv`` -> ``'2'`` (the stage;
    otherwise the name without its last part)."""
    parts = name.split('.')
    if 'stages' in parts and parts.index('stages') + 1 < len(parts):
        return parts[parts.index('stages') + 1]
    return '.'.join(parts[:-1])


def plot_ratios(summary, path, title=None):
    """Bar plot of the ratio of every layer, one colour per stage, with
    PartialNet's fixed 1/4 as a line; PAT_sf layers hatched."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt

    layers = summary['layers']
    groups = [stage_of(layer['name']) for layer in layers]
    colours = {g: plt.cm.tab10(i % 10)
               for i, g in enumerate(dict.fromkeys(groups))}
    fig, ax = plt.subplots(figsize=(max(6., .45 * len(layers) + 2), 3.6))
    bars = ax.bar(range(len(layers)), [layer['ratio'] for layer in layers],
                  color=[colours[g] for g in groups])
    for bar, layer in zip(bars, layers):
        if layer.get('kind') == 'PAT_sf':
            bar.set_hatch('//')
    ax.axhline(.25, color='grey', linestyle='--', linewidth=1)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([f'{i}\n({layer["channels"]})'
                        for i, layer in enumerate(layers)], fontsize=7)
    ax.set_xlabel('DPConv layer (channels)')
    ax.set_ylabel('split ratio (convolved / all)')
    ax.set_ylim(0, 1.05)
    ax.set_title(title or f'Learned DPConv split ratios (mean '
                 f'{summary["totals"]["mean_ratio"]:.3f})')
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    labels = [f'stage {int(g) + 1}' if g.isdigit() else g for g in colours]
    handles.append(plt.Line2D([], [], color='grey', linestyle='--'))
    labels.append('fixed split 1/4')
    if any(layer.get('kind') == 'PAT_sf' for layer in layers):
        handles.append(plt.Rectangle((0, 0), 1, 1, fill=False, hatch='//'))
        labels.append('PAT_sf')
    # Stages numbered from 1, as in the paper.
    ax.legend(handles, labels, fontsize=7, loc='upper left',
              bbox_to_anchor=(1.01, 1.))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

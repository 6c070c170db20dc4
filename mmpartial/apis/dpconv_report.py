"""The learned split ratio of every DPConv layer of a checkpoint, as JSON
and as a bar plot (the paper's Figure 7; ``tools/dpconv_report.py``), and
the ratios of several finished runs side by side, with their accuracy and
cost (``tools/dpconv_compare.py``)."""
import json
import os
import os.path as osp

from mmpartial.models.utils.dpconv_summary import (dpconv_summary,
                                                   named_dpconvs)
from mmpartial.utils.checkpoint import read_checkpoint
from .counting import model_macs
from .deploy import switch_backbone_to_deploy
from .model import init_model
from .results import CLASSIFICATION_FLOPS_SIZE, ResultsError, find_results

#: The file names written into the output folder.
JSON_NAME = 'dpconv_ratios.json'
PNG_NAME = 'dpconv_ratios.png'
COMPARE_NAME = 'dpconv_compare'


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


def run_checkpoint(work_dir):
    """The checkpoint mmengine's ``CheckpointHook`` saved last in
    ``work_dir`` (named by its ``last_checkpoint`` file)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        raise ResultsError(f'{work_dir}: no last_checkpoint file (no '
                           'checkpoint saved yet)')
    with open(pointer) as f:
        checkpoint = f.read().strip()
    if not osp.isfile(checkpoint):
        # Work dirs move: the same file name beside the pointer.
        checkpoint = osp.join(work_dir, osp.basename(checkpoint))
    if not osp.isfile(checkpoint):
        raise ResultsError(f'{work_dir}: last_checkpoint names a missing '
                           f'file, {checkpoint!r}')
    return checkpoint


def run_label(cfg):
    """``budget 2, seed 0`` from a DPConv run's resolved config."""
    budget = cfg.model.backbone.dpconv.get('budget', 2.)
    seed = (cfg.get('randomness') or {}).get('seed')
    return f'budget {budget:g}' + ('' if seed is None else f', seed {seed}')


def compare_runs(work_dirs, out_dir, labels=None):
    """The learned ratios of finished DPConv runs side by side.

    For each work dir (a classification run of ``tools/train.py``): the
    resolved config and validation top-1 of its newest launch
    (:func:`~.results.find_results`), its last checkpoint, the split of
    every layer (:func:`dpconv_summary`), and the MACs at 224x224 of the
    deployed network (the learned widths, each layer sliced). Writes
    ``out_dir/dpconv_compare.json`` and ``.png`` (the ratio of every layer,
    one line per run) and returns the JSON's content.

    Raises:
        ResultsError: A work dir without a finished run or checkpoint.
        ValueError: Runs of models with different DPConv layers, or a
            model without DPConv.
    """
    if labels is not None and len(labels) != len(work_dirs):
        raise ValueError(f'{len(labels)} labels for {len(work_dirs)} runs')
    runs = []
    for index, work_dir in enumerate(work_dirs):
        found = find_results(work_dir)
        checkpoint = run_checkpoint(work_dir)
        model = init_model(found['config_file'], checkpoint)
        if not named_dpconvs(model):
            raise ValueError(f'{work_dir}: its model has no DPConv layers')
        state, _ = read_checkpoint(checkpoint)
        check_gates(model, state, checkpoint)
        summary = dpconv_summary(model)
        switch_backbone_to_deploy(model)
        macs = model_macs(model, CLASSIFICATION_FLOPS_SIZE)['total']
        runs.append(dict(
            label=labels[index] if labels else run_label(model.cfg),
            work_dir=work_dir, checkpoint=checkpoint,
            top1=found['metrics'].get('accuracy/top1'),
            deployed_macs=macs, pat_layer_macs=summary['totals']['macs'],
            mean_ratio=summary['totals']['mean_ratio'],
            layers=[dict(name=layer['name'], kind=layer['kind'],
                         channels=layer['channels'], ratio=layer['ratio'])
                    for layer in summary['layers']]))
    names = [[layer['name'] for layer in run['layers']] for run in runs]
    if any(other != names[0] for other in names[1:]):
        raise ValueError('the runs have different DPConv layers; compare '
                         'runs of one architecture')
    content = dict(img_size=list(CLASSIFICATION_FLOPS_SIZE), runs=runs)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, COMPARE_NAME + '.json'), 'w') as f:
        json.dump(content, f, indent=2)
    plot_runs(runs, osp.join(out_dir, COMPARE_NAME + '.png'))
    return content


def plot_runs(runs, path):
    """The ratio of every layer, one line per run, on a log2 axis (the
    splits are powers of two); stage boundaries as vertical lines."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt

    layers = runs[0]['layers']
    fig, ax = plt.subplots(figsize=(max(6., .45 * len(layers) + 3), 3.8))
    for number, run in enumerate(runs):
        top1 = '' if run['top1'] is None else f', top-1 {run["top1"]:.1f}%'
        # Each run a little to the side, so equal ratios do not hide.
        shift = (number - (len(runs) - 1) / 2) * .08
        ax.plot([i + shift for i in range(len(layers))],
                [layer['ratio'] for layer in run['layers']],
                marker='os^vDP'[number % 6], linewidth=1,
                label=f'{run["label"]}{top1}')
    stages = [stage_of(layer['name']) for layer in layers]
    for i in range(1, len(layers)):
        if stages[i] != stages[i - 1]:
            ax.axvline(i - .5, color='lightgrey', linewidth=1)
    ax.set_yscale('log', base=2)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([f'{i}\n({layer["channels"]})'
                        for i, layer in enumerate(layers)], fontsize=7)
    ax.set_xlabel('DPConv layer (channels); stages between grey lines')
    ax.set_ylabel('split ratio (convolved / all)')
    ax.set_title('Learned DPConv split ratios per run')
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

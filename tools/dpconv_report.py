"""Write the learned split ratio of every DPConv layer of a checkpoint.

Usage::

    python tools/dpconv_report.py CONFIG CHECKPOINT --out DIR

builds the model of CONFIG (an mmpretrain or mmdet config; the registry is
the one of the config's ``default_scope``), loads CHECKPOINT and writes

- ``DIR/dpconv_ratios.json``: ``layers`` (per DPConv layer: ``name``,
  ``channels``, ``conv_channels``, ``ratio``, ``num_groups``,
  ``zero_gates``, ``ordered``) and ``totals`` (``num_layers``,
  ``channels``, ``conv_channels``, ``ratio``, ``mean_ratio``,
  ``conv_weights``, ``full_conv_weights``);
- ``DIR/dpconv_ratios.png``: the ratio of every layer as a bar plot (as the
  paper's Figure 7), coloured by stage, with PartialNet's fixed 1/4.
"""
import argparse
import importlib
import json
import os
import os.path as osp
import pickle
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Report the learned split ratios of the DPConv layers '
        'of a checkpoint as JSON and as a bar plot')
    parser.add_argument('config', help='the config the model was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--out', required=True,
                        help='directory for dpconv_ratios.json/.png')
    return parser.parse_args(argv)


def build_model(config):
    """The model of ``config``, built with the registry of its scope."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    import mmpartial  # noqa: F401  (registers PartialNet, DPConv, ...)
    scope = cfg.get('default_scope') or 'mmengine'
    init_default_scope(scope)
    try:
        registry = importlib.import_module(f'{scope}.registry').MODELS
    except ImportError as err:
        raise ValueError(f'cannot build the model of {config!r}: no '
                         f'registry for its default_scope {scope!r} '
                         f'({err})') from err
    # No init_weights: every weight comes from the checkpoint.
    return registry.build(cfg.model)


def load_gates(model, checkpoint):
    """Load ``checkpoint`` into ``model``, insisting on the DPConv gates.

    Other keys may differ (e.g. a checkpoint with extra EMA weights), but a
    checkpoint without the gates (say, one trained without DPConv, which
    PartialNet would load at the initial split) would report the initial
    ratios as if learned, so that is an error.
    """
    from mmengine.runner.checkpoint import (_load_checkpoint,
                                            _load_checkpoint_to_model)

    from mmpartial.models.utils import named_dpconvs

    try:
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    except pickle.UnpicklingError as err:
        # torch.load(weights_only=True) refused something in the file.
        lines = str(err).splitlines()
        why = next((line.strip() for line in lines if 'Unsupported' in line),
                   lines[0] if lines else '')
        raise ValueError(f'checkpoint {checkpoint!r} cannot be loaded '
                         f'safely (torch.load with weights_only=True): '
                         f'{why}') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    keys = {key[len('module.'):] if key.startswith('module.') else key
            for key in state}
    missing = [f'{name}.gate' for name, _ in named_dpconvs(model)
               if f'{name}.gate' not in keys]
    if missing:
        raise ValueError(
            f'checkpoint {checkpoint!r} holds no DPConv gates for '
            f'{len(missing)} layer(s) of the model (first: {missing[0]}); '
            'was it trained with this config?')
    _load_checkpoint_to_model(model, ckpt, strict=False, logger='silent')


def report(config, checkpoint, out_dir):
    """Write the JSON and PNG reports; return the summary dict."""
    from mmpartial.models.utils import dpconv_summary

    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    model = build_model(config)
    if not dpconv_summary(model)['layers']:
        raise ValueError(
            f'the model of {config!r} has no DPConv layers; use a config '
            'with model.backbone.dpconv=dict(...), e.g. '
            'configs/partialnet-t0-dpconv_in1k.py')
    load_gates(model, checkpoint)
    summary = dpconv_summary(model)
    summary.update(config=config, checkpoint=checkpoint)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'dpconv_ratios.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    plot_ratios(summary, osp.join(out_dir, 'dpconv_ratios.png'))
    return summary


def _group(name):
    """``backbone.stages.2.5.token_mixer.dpconv`` -> ``2`` (the stage)."""
    parts = name.split('.')
    if 'stages' in parts and parts.index('stages') + 1 < len(parts):
        return parts[parts.index('stages') + 1]
    return '.'.join(parts[:-1])


def plot_ratios(summary, path):
    """Bar plot of the ratio of every layer, one colour per stage."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt

    layers = summary['layers']
    groups = [_group(layer['name']) for layer in layers]
    colours = {g: plt.cm.tab10(i % 10)
               for i, g in enumerate(dict.fromkeys(groups))}
    fig, ax = plt.subplots(figsize=(max(6., .45 * len(layers) + 2), 3.6))
    ax.bar(range(len(layers)), [layer['ratio'] for layer in layers],
           color=[colours[g] for g in groups])
    ax.axhline(.25, color='grey', linestyle='--', linewidth=1,
               label='fixed split 1/4')
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([f'{i}\n({layer["channels"]})'
                        for i, layer in enumerate(layers)], fontsize=7)
    ax.set_xlabel('DPConv layer (channels)')
    ax.set_ylabel('split ratio (convolved / all)')
    ax.set_ylim(0, 1.05)
    ax.set_title(f'Learned DPConv split ratios (mean '
                 f'{summary["totals"]["mean_ratio"]:.3f})')
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    # Stages numbered from 1, as in the paper.
    ax.legend(handles + ax.get_legend_handles_labels()[0],
              [f'stage {int(g) + 1}' if g.isdigit() else g for g in colours] +
              ['fixed split 1/4'],
              fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = report(args.config, args.checkpoint, args.out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'dpconv_report: error: {err}')
    totals = summary['totals']
    print(f'{totals["num_layers"]} DPConv layers, mean ratio '
          f'{totals["mean_ratio"]:.4f}, {totals["conv_channels"]} of '
          f'{totals["channels"]} channels convolved; wrote '
          f'{osp.join(args.out, "dpconv_ratios.json")} and .png')


if __name__ == '__main__':
    main()

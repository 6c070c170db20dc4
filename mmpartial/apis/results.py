"""The paper's tables from finished runs.

A run is a work dir as mmengine leaves it: one ``<timestamp>/`` folder per
launch, holding ``vis_data/config.py`` (the resolved config of that launch),
``vis_data/scalars.json`` (validation metrics during training, one JSON
object per line) and, after ``tools/test.py``, ``<timestamp>.json`` (one
JSON object of test metrics). The newest launch with metrics counts; test
metrics win over validation metrics of the same launch.

Params and FLOPs are counted on the model the run's config builds (random
weights: counts do not depend on them) by
:func:`mmpartial.apis.counting.model_macs`, the metafile's count (one
multiply-add = one FLOP, as the papers count): classifiers at 224x224,
detectors at 1280x800 (width x height) in mmdet's ``get_flops`` convention.
"""
import csv
import glob
import io
import json
import os.path as osp
import re

from mmengine.config import Config

from .counting import count_params, model_macs
from .model import build_model

DETECTION_FLOPS_SIZE = (800, 1280)  # (height, width): "1280x800"
CLASSIFICATION_FLOPS_SIZE = (224, 224)

# task: (metric keys in the table's order, column titles, scale to %)
TABLES = {
    'detection': (
        ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75',
         'coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75'],
        ['AP^b', 'AP^b_50', 'AP^b_75', 'AP^m', 'AP^m_50', 'AP^m_75'], 100.),
    'classification': (['accuracy/top1', 'accuracy/top5'],
                       ['top-1 (%)', 'top-5 (%)'], 1.),
}
RUN_DIR = re.compile(r'^\d{8}_\d{6}$')


class ResultsError(ValueError):
    """A work dir that holds no usable results, named in the message."""


def _read_test_metrics(path):
    try:
        with open(path) as f:
            metrics = json.load(f)
    except json.JSONDecodeError as err:
        raise ResultsError(f'{path}: not a metrics file written by mmengine '
                           f'(not one JSON object: {err})') from None
    if not isinstance(metrics, dict):
        raise ResultsError(f'{path}: not a metrics file written by mmengine '
                           f'(a JSON {type(metrics).__name__}, not an '
                           'object)')
    return metrics


def _read_val_metrics(path):
    """The last line of ``scalars.json`` that holds validation metrics."""
    last = None
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise ResultsError(
                    f'{path}, line {number}: not a scalars file written by '
                    'mmengine (not JSON)') from None
            if not isinstance(entry, dict) or 'step' not in entry:
                raise ResultsError(
                    f'{path}, line {number}: not a scalars file written by '
                    'mmengine (no "step")')
            if _task_of(entry) is not None:
                last = entry
    return last


def _task_of(metrics):
    for task, (keys, _, _) in TABLES.items():
        if keys[0] in metrics:
            return task
    return None


def find_results(work_dir):
    """The metrics and config of the newest launch in ``work_dir`` that has
    metrics.

    Returns:
        dict: ``work_dir``, ``task``, ``metrics``, ``metrics_file``,
        ``config_file`` and ``stage`` (``'test'`` or ``'val'``).

    Raises:
        ResultsError: No such directory, no launch with metrics, a metrics
            file mmengine did not write, or metrics of no known task.
    """
    if not osp.isdir(work_dir):
        raise ResultsError(f'{work_dir}: no such work dir')
    launches = sorted(
        (path for path in glob.glob(osp.join(work_dir, '*'))
         if osp.isdir(path) and RUN_DIR.match(osp.basename(path))),
        reverse=True)
    if not launches:
        raise ResultsError(
            f'{work_dir}: no finished run (no <timestamp>/ folder of an '
            'mmengine run; train with tools/train.py --work-dir '
            f'{work_dir} first)')
    for launch in launches:
        stamp = osp.basename(launch)
        test_file = osp.join(launch, f'{stamp}.json')
        val_file = osp.join(launch, 'vis_data', 'scalars.json')
        if osp.isfile(test_file):
            metrics, source, stage = _read_test_metrics(test_file), \
                test_file, 'test'
        elif osp.isfile(val_file):
            metrics, source, stage = _read_val_metrics(val_file), val_file, \
                'val'
            if metrics is None:
                continue  # training without a validation yet
        else:
            continue
        task = _task_of(metrics)
        if task is None:
            raise ResultsError(
                f'{source}: holds no COCO bbox metric nor top-1 accuracy '
                f'(keys: {sorted(metrics)[:6]}): a run of another task? The '
                f'tables cover {" and ".join(TABLES)}')
        config = osp.join(launch, 'vis_data', 'config.py')
        if not osp.isfile(config):
            raise ResultsError(f'{launch}: has metrics but no '
                               'vis_data/config.py, which mmengine writes '
                               'with every run')
        return dict(work_dir=work_dir, task=task, metrics=metrics,
                    metrics_file=source, config_file=config, stage=stage)
    raise ResultsError(
        f'{work_dir}: no finished run (none of its {len(launches)} '
        'launches has test or validation metrics)')


def model_complexity(cfg, task):
    """``(params, flops)`` of the model a config builds (see module doc).

    Returns:
        dict: ``params``, ``flops`` (multiply-adds) and ``conv_linear_matmul``
        (the matrix-multiply-like part of ``flops``).
    """
    model = build_model(cfg)
    macs = model_macs(model, DETECTION_FLOPS_SIZE if task == 'detection'
                      else CLASSIFICATION_FLOPS_SIZE)
    return dict(params=count_params(model), flops=macs['total'],
                conv_linear_matmul=macs['conv_linear_matmul'])


def backbone_name(cfg):
    backbone = cfg.model.get('backbone') or {}
    name = str(backbone.get('type', '?')).split('.')[-1]
    arch = backbone.get('arch')
    return f'{name}-{arch.upper()}' if isinstance(arch, str) else name


def collect(work_dirs, with_complexity=True):
    """Rows of the tables, and the work dirs without results.

    Returns:
        tuple[dict, list]: ``{task: [row, ...]}`` where a row is a dict of
        ``run``, ``backbone``, ``params``, ``flops``, ``stage`` and the
        metrics; and ``[(work_dir, reason), ...]``.
    """
    tables, missing = {}, []
    for work_dir in work_dirs:
        try:
            found = find_results(work_dir)
        except ResultsError as err:
            missing.append((work_dir, str(err)))
            continue
        cfg = Config.fromfile(found['config_file'])
        keys = TABLES[found['task']][0]
        row = dict(run=work_dir, backbone=backbone_name(cfg),
                   stage=found['stage'])
        row.update({key: found['metrics'].get(key) for key in keys})
        if with_complexity:
            row.update(model_complexity(cfg, found['task']))
        tables.setdefault(found['task'], []).append(row)
    return tables, missing


def _cells(row, task, with_complexity):
    keys, _, scale = TABLES[task]
    cells = [row['backbone']]
    if with_complexity:
        cells += [f'{row["params"] / 1e6:.2f}', f'{row["flops"] / 1e9:.1f}'
                  if task == 'detection' else f'{row["flops"] / 1e9:.3f}']
    cells += ['-' if row[key] is None else f'{row[key] * scale:.1f}'
              for key in keys]
    return cells + [row['stage'], row['run']]


def _header(task, with_complexity):
    size = 'x'.join(map(str, reversed(DETECTION_FLOPS_SIZE
                                      if task == 'detection' else
                                      CLASSIFICATION_FLOPS_SIZE)))
    extra = ['params (M)', f'FLOPs (G) at {size}'] if with_complexity else []
    return ['backbone', *extra, *TABLES[task][1], 'metrics of', 'run']


def format_tables(tables, missing, fmt='md', with_complexity=True):
    """The tables as Markdown (``'md'``) or CSV (``'csv'``) text; the work
    dirs without results are listed after them, never left out."""
    if fmt not in ('md', 'csv'):
        raise ValueError(f'unknown format {fmt!r}; choose md or csv')
    out = io.StringIO()
    for task, rows in tables.items():
        header = _header(task, with_complexity)
        body = [_cells(row, task, with_complexity) for row in rows]
        if fmt == 'csv':
            writer = csv.writer(out, lineterminator='\n')
            writer.writerow(['task', *header])
            writer.writerows([task, *cells] for cells in body)
        else:
            out.write(f'{task.capitalize()}\n\n| ' + ' | '.join(header) +
                      ' |\n|' + '---|' * len(header) + '\n')
            for cells in body:
                out.write('| ' + ' | '.join(cells) + ' |\n')
            out.write('\n')
    for work_dir, reason in missing:
        out.write(f'no results: {work_dir}: {reason}\n')
    return out.getvalue()

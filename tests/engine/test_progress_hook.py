"""The progress display of a real (tiny) mmengine run."""
import io
import re

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmpartial.engine import ProgressHook


class Regressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, inputs, targets, mode='loss'):
        out = self.fc(torch.stack(inputs) if isinstance(inputs, list)
                      else inputs)
        if mode == 'loss':
            return dict(loss=((out.squeeze(1) - targets)**2).mean())
        return [dict(pred=p) for p in out]


class Pairs(torch.utils.data.Dataset):

    def __len__(self):
        return 20

    def __getitem__(self, i):
        x = torch.full((4, ), float(i) / 20)
        return dict(inputs=x, targets=x.sum())


class Terminal(io.StringIO):

    def isatty(self):
        return True


def _train(tmp_path, stream, **kwargs):
    runner = Runner(
        model=Regressor(), work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=Pairs(), batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        default_hooks=dict(checkpoint=None), log_level='WARNING')
    runner.register_hook(ProgressHook('toy', stream=stream, **kwargs))
    runner.train()
    return stream.getvalue()


def test_a_log_gets_one_line_per_tenth(tmp_path):
    out = _train(tmp_path, io.StringIO())
    lines = out.splitlines()
    # 30 iterations, a line at every tenth of them.
    assert len(lines) == 10, out
    assert lines[-1].startswith('[toy] train [########################] '
                                '30/30 epoch 3/3, loss ')
    done = [int(re.search(r'\] (\d+)/30', line).group(1)) for line in lines]
    assert done == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert all('elapsed 0:00:' in line and 'left ' in line for line in lines)


def test_a_terminal_gets_one_line_redrawn(tmp_path):
    out = _train(tmp_path, Terminal(), refresh=0)
    # Every iteration redraws the same line; one newline at the end.
    assert out.count('\r\033[K') == 30
    assert out.count('\n') == 1 and out.endswith('\n')
    assert '30/30 epoch 3/3' in out.split('\r\033[K')[-1]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='steps >= 1'):
        ProgressHook(steps=0)

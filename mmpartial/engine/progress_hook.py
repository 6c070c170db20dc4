"""A short progress display for a person watching a run."""
import sys
import time

from mmengine.hooks import Hook

from mmpartial.registry import HOOKS


def _clock(seconds):
    seconds = int(max(seconds, 0))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


@HOOKS.register_module()
class ProgressHook(Hook):
    """Show how far training and testing have got: iterations done, the
    loss, time spent and time left.

    On a terminal one line is redrawn in place (at most every
    ``refresh`` seconds); elsewhere (a CI log, a pipe) a line is printed at
    every tenth of the run, so the output stays a few lines per stage. It
    does not replace mmengine's ``LoggerHook``, whose full log goes to the
    work dir as usual.

    Args:
        label (str): Names the run in every line, e.g. ``'pretrain'``.
        stream (file, optional): Where to write. Defaults to ``sys.stdout``
            at the time the hook is built.
        refresh (float): Seconds between redraws on a terminal.
        steps (int): Lines per run where the stream is not a terminal.
    """
    priority = 'LOWEST'

    def __init__(self, label='train', stream=None, refresh=0.5, steps=10):
        if steps < 1 or refresh < 0:
            raise ValueError(f'ProgressHook needs steps >= 1 and refresh >= '
                             f'0, got steps={steps}, refresh={refresh}')
        self.label = label
        self.stream = stream or sys.stdout
        self.refresh = refresh
        self.steps = steps
        self.tty = bool(getattr(self.stream, 'isatty', lambda: False)())
        self._start = self._drawn = 0.
        self._next_step = 1
        self._open_line = False

    # ---------------------------------------------------------------- output

    def _write(self, text, final=False):
        if self.tty:
            self.stream.write('\r\033[K' + text + ('\n' if final else ''))
            self._open_line = not final
        else:
            self.stream.write(text + '\n')
        self.stream.flush()

    def _show(self, phase, done, total, extra='', final=False):
        now = time.time()
        elapsed = now - self._start
        fraction = done / total if total else 1.
        if not final:
            if self.tty and now - self._drawn < self.refresh:
                return
            if not self.tty:
                if done * self.steps < self._next_step * total:
                    return
                self._next_step = done * self.steps // total + 1
        self._drawn = now
        left = elapsed / fraction - elapsed if fraction > 0 else 0.
        width = 24
        bar = '#' * int(width * fraction) + '.' * (width - int(width *
                                                               fraction))
        self._write(f'[{self.label}] {phase} [{bar}] {done}/{total} '
                    f'{extra}elapsed {_clock(elapsed)}, left {_clock(left)}',
                    final=final and self.tty)

    def _begin(self):
        self._start = time.time()
        self._drawn = 0.
        self._next_step = 1

    def _end_line(self):
        if self._open_line:
            self.stream.write('\n')
            self.stream.flush()
            self._open_line = False

    # ----------------------------------------------------------------- train

    def before_train(self, runner):
        self._begin()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        loss = (outputs or {}).get('loss')
        if hasattr(loss, 'item'):
            loss = loss.item()
        extra = f'loss {loss:.4f}, ' if loss is not None else ''
        loop = runner.train_loop
        epochs = getattr(loop, 'max_epochs', None)
        if epochs:
            extra = f'epoch {runner.epoch + 1}/{epochs}, ' + extra
        done, total = runner.iter + 1, runner.max_iters
        self._show('train', done, total, extra, final=done == total)

    def after_val_epoch(self, runner, metrics=None):
        self._report('val', metrics)

    def after_train(self, runner):
        self._end_line()

    # ------------------------------------------------------------------ test

    def before_test(self, runner):
        self._begin()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        total = len(runner.test_dataloader)
        self._show('test', batch_idx + 1, total,
                   final=batch_idx + 1 == total)

    def after_test_epoch(self, runner, metrics=None):
        self._report('test', metrics)

    def _report(self, phase, metrics):
        self._end_line()
        if not metrics:
            return
        shown = ', '.join(f'{key} {value:.4f}' if isinstance(value, float)
                          else f'{key} {value}'
                          for key, value in metrics.items())
        self.stream.write(f'[{self.label}] {phase}: {shown}\n')
        self.stream.flush()

"""Progress of a benchmark run: numbered lines on stderr."""
import sys
import time


class Progress:
    """Numbered progress lines on stderr, one per step and its result.

    Args:
        total (int): Number of steps (may be set later).
        enabled (bool): Print anything at all.
    """

    def __init__(self, total, enabled=True):
        self.total, self.enabled, self.done = total, enabled, 0
        self.started = time.perf_counter()
        self.label, self.step_started = '', self.started

    def note(self, text):
        if self.enabled:
            print(f'[benchmark] {text}', file=sys.stderr, flush=True)

    def start(self, label):
        self.done += 1
        self.label = label
        self.step_started = time.perf_counter()
        self.note(f'[{self.done}/{self.total}] {label} ...')

    def tick(self, phase, done, total):
        """Count runs of a measurement in place, on a terminal only."""
        if self.enabled and sys.stderr.isatty():
            end = '\n' if done == total else ''
            print(f'\r[benchmark]     {phase}: run {done}/{total}', end=end,
                  file=sys.stderr, flush=True)

    def finish(self, text):
        took = time.perf_counter() - self.step_started
        self.note(f'[{self.done}/{self.total}] {self.label}: {text} '
                  f'({took:.1f} s, {time.perf_counter() - self.started:.0f} '
                  's in all)')

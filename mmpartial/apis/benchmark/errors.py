"""The benchmark's errors: a bad input, named, before anything is timed."""


class BenchmarkError(ValueError):
    """A bad input to the benchmark (config, arch, checkpoint, options)."""


class UnsupportedError(BenchmarkError):
    """A device or dtype this machine cannot run."""

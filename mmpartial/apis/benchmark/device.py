"""The device and the dtypes to run in, checked before anything is built,
and what the numbers were measured on (device, CPU, software)."""
import os
import platform

import torch
import torch.nn.functional as F

from .options import UnsupportedError

DTYPES = {
    'fp32': torch.float32,
    'bf16': torch.bfloat16,
    'fp16': torch.float16,
}


def resolve_device(name):
    """``torch.device`` of ``name`` (``'cpu'`` or ``'cuda'``), checked."""
    if name == 'cuda':
        if not torch.cuda.is_available():
            raise UnsupportedError(
                '--device cuda: no CUDA device is available to torch '
                f'{torch.__version__} on this machine (torch.version.cuda='
                f'{torch.version.cuda}); use --device cpu')
        # fp32 rows are float32: TF32 would be a fourth precision. Fixed
        # shapes: let cuDNN pick its fastest kernels.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        return torch.device('cuda', torch.cuda.current_device())
    if name != 'cpu':
        raise UnsupportedError(f'unknown device {name!r}; use cpu or cuda')
    return torch.device('cpu')


def check_dtype(device, name):
    """Fail clearly unless ``device`` runs the model's layers in ``name``.

    Real support is probed rather than assumed: a tiny convolution, batch
    norm, layer norm, linear layer and matrix product in that dtype. (Half
    precision convolutions on CPU, say, depend on the torch build.)

    Raises:
        UnsupportedError: With the device and the failing operation's error.
    """
    if name not in DTYPES:
        raise UnsupportedError(f'unknown dtype {name!r}; choose from '
                               f'{list(DTYPES)}')
    dtype = DTYPES[name]
    where = f'{device.type} ({device_name(device)})'
    if device.type == 'cuda' and dtype is torch.bfloat16 \
            and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise UnsupportedError(f'--dtype bf16 is not supported on {where}: '
                               'the GPU has no native bfloat16')
    try:
        _probe_dtype(device, dtype)
    except (RuntimeError, NotImplementedError, TypeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err) else ''
        raise UnsupportedError(
            f'--dtype {name} is not supported on {where}: a tiny '
            f'convolution/norm/linear in {dtype} fails with '
            f'{type(err).__name__}: {first_line}') from None


def _probe_dtype(device, dtype):
    """Run one small instance of every kind of layer PartialNet uses."""
    kw = dict(device=device, dtype=dtype)
    x = torch.randn(1, 8, 8, 8, **kw)
    x = F.conv2d(x, torch.randn(8, 8, 3, 3, **kw), padding=1)
    x = F.batch_norm(x, torch.zeros(8, **kw), torch.ones(8, **kw),
                     training=False)
    tokens = F.layer_norm(x.flatten(2).transpose(1, 2), (8, ))
    tokens = F.linear(tokens, torch.randn(8, 8, **kw))
    (tokens @ tokens.transpose(1, 2)).softmax(-1).sum().item()


def synchronize(device):
    """Wait for the device's queued work, so wall time covers all of it."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def release_memory(device):
    """Return the cached blocks of a GPU between models."""
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or None where absent."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('model name', 'Model', 'Processor') \
                        and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def device_name(device):
    """A human name of ``device``: the GPU's name or the CPU model."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return cpu_model() or 'CPU'


def malloc_settings():
    """The glibc allocator's settings from the environment (``MALLOC_*``
    variables, e.g. ``MALLOC_MMAP_THRESHOLD_``), as a dict; empty for the
    defaults. They change CPU timings at large batches: by default glibc
    hands blocks over 32 MiB back to the system when freed, and the next
    such tensor faults its pages in one by one (see the README)."""
    return {key: value for key, value in sorted(os.environ.items())
            if key.startswith('MALLOC_')}


def machine_info(device):
    """The device, CPU and software versions, as a JSON-ready dict."""
    info = dict(
        device_type=device.type,
        device_name=device_name(device),
        cpu_model=cpu_model(),
        logical_cpus=os.cpu_count(),
        # What this process may use (cgroups and affinity can restrict it).
        usable_cpus=len(os.sched_getaffinity(0))
        if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
        torch_version=torch.__version__,
        torch_default_threads=torch.get_num_threads(),
        malloc=malloc_settings(),
        python_version=platform.python_version(),
        platform=platform.platform(),
    )
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(
            cuda_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            matmul_fp32_precision=getattr(torch.backends.cuda.matmul,
                                          'fp32_precision', None),
            tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return info

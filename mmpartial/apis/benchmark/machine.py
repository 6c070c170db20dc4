"""What the numbers were measured on: the device, the CPU, the software."""
import os
import platform

import torch


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

"""The device and the dtypes to run in, checked before anything is built."""
import torch
import torch.nn.functional as F

from .errors import UnsupportedError
from .machine import device_name

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

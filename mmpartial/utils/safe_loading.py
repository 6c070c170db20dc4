"""Let ``torch.load(weights_only=True)`` read mmengine's checkpoints.

Since torch 2.6, ``torch.load`` only unpickles tensors, containers and
allow-listed classes. mmengine 0.10.7 stores more than tensors: the message
hub's ``HistoryBuffer`` objects, which hold numpy arrays and numpy scalars.
Resuming, ``load_from`` and ``init_cfg=Pretrained`` then fail. Rather than
turning ``weights_only`` off (which would let a malicious checkpoint run any
code), this allow-lists exactly those classes. Unpickling them runs no
user-controlled callable: numpy's reconstructors only rebuild arrays.

``HistoryBuffer`` also pickles its statistics methods, as
``getattr(HistoryBuffer, 'min')``. Allowing ``builtins.getattr`` itself would
reopen code execution (a chain of getattr calls reaches any module through
``__globals__``), so the unpickler gets :func:`_history_buffer_getattr`
under that name instead: it resolves only public functions of
``HistoryBuffer`` and refuses everything else.
"""
import inspect
import pickle

import numpy as np
import torch


def mmengine_checkpoint_globals():
    """The classes and functions mmengine's checkpoints refer to."""
    from mmengine.logging import HistoryBuffer

    # numpy 2 moved numpy.core to numpy._core; pickles name the module that
    # wrote them, so allow the one of the installed numpy.
    if np.lib.NumpyVersion(np.__version__) >= '2.0.0':
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    dtype_classes = {
        type(np.dtype(name))
        for name in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8',
                     'uint16', 'uint32', 'uint64', 'float16', 'float32',
                     'float64')
    }
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct,
            multiarray.scalar, *sorted(dtype_classes, key=str)]


def _history_buffer_getattr(obj, name):
    """``getattr`` for unpickling, limited to HistoryBuffer's methods."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) \
            and not name.startswith('_'):
        value = inspect.getattr_static(HistoryBuffer, name, None)
        if inspect.isfunction(value):
            return value
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only the '
        'statistics methods of mmengine\'s HistoryBuffer are allowed')


def allow_mmengine_checkpoints():
    """Add :func:`mmengine_checkpoint_globals` to torch's safe globals."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 loads everything anyway
        add(mmengine_checkpoint_globals() +
            [(_history_buffer_getattr, 'builtins.getattr')])

"""ONNX runtimes as benchmark backends: onnxruntime and OpenVINO.

A form is exported once (``torch.onnx.export``, float32, dynamic batch and
image size, as ``tools/export_onnx.py`` writes it), checked against
PyTorch on the CPU, then run by the runtime with the thread count of each
measurement. What a runtime costs beyond PyTorch (numpy in, numpy out) is
inside the timed pass, as it is for a user calling the runtime.
"""
import importlib.util
import os.path as osp

import numpy as np
import torch

from ..export import write_onnx
from .options import UnsupportedError

#: ``{backend: (module to import, how to install it)}``.
RUNTIMES = {
    'onnxruntime': ('onnxruntime', 'pip install onnxruntime'),
    'openvino': ('openvino', 'pip install -e ".[openvino]" (or pip install '
                 'openvino)'),
}
#: Largest relative difference from PyTorch's float32 outputs that a graph
#: may have before it is timed.
TOLERANCE = 1e-4


def runtime_problem(name, device):
    """Why runtime ``name`` cannot run here, or None."""
    module, install = RUNTIMES[name]
    if importlib.util.find_spec(module) is None:
        return f'{name} is not installed ({install})'
    if device.type == 'cuda' and (
            name == 'openvino' or 'CUDAExecutionProvider'
            not in __import__('onnxruntime').get_available_providers()):
        return (f'{name} has no CUDA execution provider here (onnxruntime-'
                'gpu has one)')
    return None


def export_graph(module, inputs, folder, name):
    """Export ``module`` (tensors in, tensors out) to ``folder/name.onnx``.

    Returns:
        tuple[str, list[str]]: The file and its output names.
    """
    with torch.no_grad():
        outputs = module(*inputs)
    count = 1 if isinstance(outputs, torch.Tensor) else len(outputs)
    names = ['logits'] if count == 1 and outputs.dim() == 2 else \
        [f'output{i}' for i in range(count)]
    path = osp.join(folder, f'{name}.onnx')
    write_onnx(module, path, tuple(inputs[0].shape), names)
    return path, names


class RuntimeSession:
    """One graph loaded by a runtime, on a fixed number of threads.

    Raises:
        UnsupportedError: The runtime refuses the graph; the message is the
            runtime's own (it names the op it cannot run).
    """

    def __init__(self, name, path, threads, device):
        self.name = name
        try:
            if name == 'onnxruntime':
                import onnxruntime as ort
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                providers = ['CUDAExecutionProvider'] \
                    if device.type == 'cuda' else ['CPUExecutionProvider']
                session = ort.InferenceSession(path, options,
                                               providers=providers)
                self._input = session.get_inputs()[0].name
                self._run = lambda x: session.run(None, {self._input: x})
            else:
                import openvino as ov
                # f32: OpenVINO would otherwise run in bf16 on CPUs that
                # have it, and the rows say fp32.
                compiled = ov.Core().compile_model(
                    path, 'CPU', {'INFERENCE_NUM_THREADS': threads,
                                  'PERFORMANCE_HINT': 'LATENCY',
                                  'INFERENCE_PRECISION_HINT': 'f32'})
                request = compiled.create_infer_request()
                self._run = lambda x: list(request.infer([x]).values())
        except Exception as err:  # the runtime's own exception types
            raise UnsupportedError(
                f'{name} refuses {osp.basename(path)}: '
                f'{str(err).strip()[:400]}') from None

    def __call__(self, images):
        return self._run(images)


def check_graph(session, module, images):
    """The relative difference of the runtime's outputs from PyTorch's:
    the largest absolute difference over the largest PyTorch magnitude."""
    with torch.no_grad():
        expected = module(images)
    expected = [expected] if isinstance(expected, torch.Tensor) \
        else list(expected)
    got = session(images.numpy())
    diff = max(float(np.abs(np.asarray(g) - e.numpy()).max())
               for g, e in zip(got, expected))
    scale = max(float(e.abs().max()) for e in expected)
    return diff / max(scale, 1e-12)


def runtime_runner(session, inputs):
    """One timed pass: the images as numpy (made once, outside the timing,
    as PyTorch's inputs are), through the runtime."""
    images = inputs[0].detach().cpu().contiguous().numpy()
    return lambda: session(images)

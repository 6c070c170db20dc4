"""Parameter and multiply-add counts.

MACs are counted with mmengine's :class:`~mmengine.analysis.FlopAnalyzer`,
mmengine's copy of fvcore's ``FlopCountAnalysis``, the counter behind the
paper's figures (T0 counts 0.247 G at 224x224; both give the same count
operator by operator). Despite its name it counts one fused multiply-add as
one "flop", i.e. it counts MACs.
"""
import warnings
from math import prod

import torch

MAC_COUNTING = (
    "mmengine.analysis (fvcore's counter): conv, linear, matmul and norm "
    "multiply-adds (its default "
    'operator handles, which also count pooling and upsampling elements), '
    'one multiply-add = one MAC, per image at the benchmark\'s input size; '
    '"conv/linear/matmul" counts the matrix-multiply-like operators only')

# The counter's operator names (its handles' names without ``aten::``; it calls
# ``_convolution`` "conv") of the matrix-multiply-like operators: the work a
# matmul peak is a fair yardstick for. Norms and pooling are left out.
MATMUL_LIKE_OPS = ('conv', 'linear', 'matmul', 'mm', 'bmm', 'addmm', 'einsum',
                   'scaled_dot_product_attention')


def count_params(model):
    """Number of parameters of ``model``, trainable or frozen (no buffers)."""
    return sum(param.numel() for param in model.parameters())


def _sdpa_macs(inputs, outputs):
    """MACs of ``aten::scaled_dot_product_attention``.

    The counter has no handle for it (it would count an attention that moved
    to the fused kernel as free): ``q @ k^T`` costs ``L * S * E`` per batch and
    head, ``attn @ v`` ``L * S * Ev``.
    """
    from mmengine.analysis.jit_handles import get_shape
    q_shape, k_shape, v_shape = (get_shape(v) for v in inputs[:3])
    queries = prod(q_shape[:-1])  # batch * heads * L
    return queries * k_shape[-2] * (q_shape[-1] + v_shape[-1])


def count_macs(module, inputs, exclude=()):
    """Count the multiply-adds of ``module(*inputs)``.

    Args:
        module (nn.Module): The module to trace; its ``forward`` takes
            ``inputs``. Tracing runs it once, under ``torch.no_grad``.
        inputs (tuple): Its positional inputs.
        exclude (tuple[type]): Submodule classes whose work is left out of
            every count (a convention that does not count them).

    Returns:
        dict: ``total`` (the whole count), ``conv_linear_matmul`` (the
        operators of :data:`MATMUL_LIKE_OPS` only), ``by_operator`` (the
        split) and ``unsupported_ops`` (operators the counter saw but does
        not count, e.g. activations and element-wise products, with their call
        counts).
    """
    from mmengine.analysis import FlopAnalyzer

    analysis = FlopAnalyzer(module, inputs)
    analysis.set_op_handle('aten::scaled_dot_product_attention', _sdpa_macs)
    # The counter logs every operator it skips; the counts are kept in the
    # result.
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about every shape check of the model; none changes
        # the traced graph for the fixed input size counted here.
        warnings.simplefilter('ignore')
        by_operator = dict(analysis.by_operator())
        unsupported = dict(analysis.unsupported_ops())
        if exclude:
            by_module = analysis.by_module_and_operator()
            for name, sub in module.named_modules():
                if isinstance(sub, exclude):
                    for op, n in by_module.get(name, {}).items():
                        by_operator[op] -= n
    return dict(
        total=int(sum(by_operator.values())),
        conv_linear_matmul=int(
            sum(by_operator.get(op, 0) for op in MATMUL_LIKE_OPS)),
        by_operator={op: int(n) for op, n in sorted(by_operator.items())},
        unsupported_ops={op: int(n) for op, n in sorted(unsupported.items())})

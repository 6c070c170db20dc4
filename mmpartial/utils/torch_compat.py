"""torch APIs that moved between torch 2.1 (the oldest supported release)
and the newest one, behind one name each."""
import torch


def is_compiling():
    """Whether ``torch.compile`` is tracing the caller.

    torch 2.1 has no ``torch.compiler.is_compiling`` (checked in CI's
    torch 2.1.2 environment); it has the same flag as
    ``torch._dynamo.is_compiling``.
    """
    compiler = getattr(torch, 'compiler', None)
    if hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling()
    return torch._dynamo.is_compiling()


def register_load_state_dict_pre_hook(module, hook):
    """Call ``hook(module, state_dict, prefix, local_metadata, strict,
    missing_keys, unexpected_keys, error_msgs)`` before ``module`` loads
    its tensors, whoever calls ``load_state_dict`` (torch, mmengine).

    torch 2.1 lacks the public method (checked in CI's torch 2.1.2
    environment); its private one behaves the same with
    ``with_module=True``.
    """
    public = getattr(module, 'register_load_state_dict_pre_hook', None)
    if public is not None:
        return public(hook)
    return module._register_load_state_dict_pre_hook(hook, with_module=True)

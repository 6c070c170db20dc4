"""Does the GPU compute what the CPU computes? Forward and backward of
every form on the device against the CPU, in float32 without TF32.

A GPU figure is only worth reporting for a model that computes the right
thing there: a kernel that mis-handles a layout or a folded weight shows
as a difference here, not as a speed.
"""
import copy

import torch
import torch.nn as nn

from .build import deploy_copy

#: Largest relative difference (largest absolute difference over the
#: largest absolute value, per tensor) between the device and the CPU.
TOLERANCE = 1e-3


@torch.no_grad()
def randomize_norms(model, seed=0):
    """Non-trivial BN statistics and affines, LayerNorm affines and iRPE
    tables in place (freshly initialised ones are 0 and 1), so that what
    the deploy form folds is exercised."""
    gen = torch.Generator().manual_seed(seed)

    def fill(tensor, low, high):
        tensor.copy_(torch.rand(tensor.shape, generator=gen) *
                     (high - low) + low)

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            fill(module.running_mean, -.5, .5)
            fill(module.running_var, .5, 2.)
        if isinstance(module, (nn.modules.batchnorm._BatchNorm,
                               nn.LayerNorm)) and module.weight is not None:
            fill(module.weight, .5, 1.5)
            fill(module.bias, -.3, .3)
    for name, param in model.named_parameters():
        if name.endswith('bias_table'):
            fill(param, -1., 1.)
    return model


def relative_difference(got, ref):
    """``max |got - ref| / max |ref|`` in float64 on the CPU."""
    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    return float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-12))


def _outputs(out):
    return [out] if isinstance(out, torch.Tensor) else [
        t for t in out if isinstance(t, torch.Tensor)]


def forward_backward(module, images, seed=0):
    """The outputs, and the gradients of a random weighting of them with
    respect to the images and every parameter."""
    images = images.clone().requires_grad_(True)
    outputs = _outputs(module(images))
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(o.shape, generator=gen).to(o.device)
               for o in outputs]
    sum((o * w).sum() for o, w in zip(outputs, weights)).backward()
    grads = {name: p.grad.detach().clone()
             for name, p in module.named_parameters() if p.grad is not None}
    module.zero_grad(set_to_none=True)
    return [o.detach() for o in outputs], images.grad.detach(), grads


def check_against_cpu(target, models, device, img_size, batch=2):
    """Every form of a target (the forms of ``models``) on ``device``
    against the CPU.

    Returns:
        list[dict]: Per form the worst relative differences of the outputs,
        the input gradient and the parameter gradients, and ``ok``.
    """
    tf32 = (torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    try:
        images, = target.make_inputs(batch, img_size, 'cpu')
        # Norms randomised before folding, so the deploy form folds them.
        forms = dict(train=randomize_norms(copy.deepcopy(target.model)))
        if 'deploy' in models:
            forms['deploy'] = deploy_copy(forms['train'])[0]
        for form in models:
            module = target.tensor_module(forms[form].eval())
            ref = forward_backward(module, images)
            got = forward_backward(module.to(device), images.to(device))
            row = dict(target=target.name, form=form, batch=batch,
                       outputs=max(map(relative_difference, got[0], ref[0])),
                       input_grad=relative_difference(got[1], ref[1]),
                       param_grads=max([relative_difference(got[2][k], g)
                                        for k, g in ref[2].items()] or [0.]),
                       params_with_grad=len(ref[2]))
            row['ok'] = max(row['outputs'], row['input_grad'],
                            row['param_grads']) <= TOLERANCE
            rows.append(row)
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = tf32
    return rows

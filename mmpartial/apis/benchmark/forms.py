"""The deploy form of a model to time, next to its train form."""
import copy


def deploy_parts(model):
    """Names of the parts of ``model`` whose ``switch_to_deploy`` to call.

    The model's own method if it has one (it knows its parts); otherwise
    those of its backbone, neck and head that have one.
    """
    if callable(getattr(model, 'switch_to_deploy', None)):
        return ['']
    return [
        name for name in ('backbone', 'neck', 'head')
        if callable(getattr(getattr(model, name, None), 'switch_to_deploy',
                            None))
    ]


def deploy_copy(model):
    """A copy of ``model`` in deploy form, or why there is none.

    Returns:
        tuple[nn.Module | None, str | None]: ``(deployed, None)``, or
        ``(None, reason)`` when neither the model nor its parts have a
        ``switch_to_deploy()`` or it fails.
    """
    parts = deploy_parts(model)
    if not parts:
        return None, (f'{type(model).__name__} and its backbone have no '
                      'switch_to_deploy() yet')
    deployed = copy.deepcopy(model)
    for name in parts:
        part = getattr(deployed, name) if name else deployed
        try:
            part.switch_to_deploy()
        except (NotImplementedError, RuntimeError, ValueError) as err:
            return None, (f'{type(part).__name__}.switch_to_deploy() '
                          f'failed: {type(err).__name__}: {err}')
    return deployed.eval(), None

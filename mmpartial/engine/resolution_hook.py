from mmengine.hooks import Hook

from mmpartial.registry import HOOKS


@HOOKS.register_module()
class TrainResolutionHook(Hook):
    """Raise the training resolution at a given epoch.

    The reference recipe trains at 192 px and switches to 224 px for the last
    epochs. This hook finds the ``RandomResizedCrop`` of the training pipeline
    and sets its output size when the epoch is reached (also when a run is
    resumed after it), then restarts the dataloader workers, which hold their
    own copies of the pipeline.

    Args:
        switch_epoch (int): First epoch (0-based) trained at ``size``.
        size (int): The new crop size in pixels.
    """
    priority = 'NORMAL'

    def __init__(self, switch_epoch, size):
        if switch_epoch < 0 or size < 1:
            raise ValueError(f'TrainResolutionHook needs switch_epoch >= 0 and'
                             f' size >= 1, got {switch_epoch}, {size}')
        self.switch_epoch = switch_epoch
        self.size = size
        self._switched = False

    @staticmethod
    def _crops(dataset):
        while hasattr(dataset, 'dataset'):  # dataset wrappers
            dataset = dataset.dataset
        transforms = getattr(dataset.pipeline, 'transforms', [])
        return [t for t in transforms
                if type(t).__name__ == 'RandomResizedCrop']

    def before_train_epoch(self, runner):
        if self._switched or runner.epoch < self.switch_epoch:
            return
        loader = runner.train_dataloader
        crops = self._crops(loader.dataset)
        if not crops:
            raise RuntimeError('TrainResolutionHook: the training pipeline '
                               'has no RandomResizedCrop to resize')
        for crop in crops:
            crop.scale = (self.size, self.size)
        if getattr(loader, 'persistent_workers', False):
            loader._iterator = None  # workers re-fork with the new pipeline
        self._switched = True
        runner.logger.info(f'TrainResolutionHook: training at {self.size} px '
                           f'from epoch {runner.epoch + 1}')

from .dpconv_loss import DPConvLoss, is_task_loss, scale_task_losses

__all__ = ['DPConvLoss', 'is_task_loss', 'scale_task_losses']

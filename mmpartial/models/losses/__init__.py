from .dpconv_loss import DPConvLoss

__all__ = ['DPConvLoss']

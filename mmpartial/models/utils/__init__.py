from .dpconv_summary import dpconv_summary, named_dpconvs

__all__ = ['dpconv_summary', 'named_dpconvs']

import re


def is_local_path(path):
    """Whether ``path`` is a plain file path, not ``scheme://...`` (a URL,
    ``s3://``, ... that only mmengine's file backends can read)."""
    return isinstance(path, str) and re.match(r'^[a-zA-Z0-9+.-]+://',
                                              path) is None

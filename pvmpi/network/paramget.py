"""Reading one parameter from a params group or a plain dict (tests pass dicts).

The model fills every default from the schema, so the fallbacks here only
matter for callers that build partial dicts by hand.
"""
import numpy as np


def get(params, name, default=None):
    """``params[name]``, or ``default`` if absent or None."""
    try:
        v = params[name]
    except (KeyError, TypeError):
        return default
    return default if v is None else v


def get_f32(params, name, default):
    """``params[name]`` (or ``default``) as float32, the precision OpenPV computes in."""
    return np.float32(get(params, name, default))

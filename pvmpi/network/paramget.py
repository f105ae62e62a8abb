"""Reading one parameter of a group, its default always the schema's (a hand-made dict in a test
may leave parameters out; a group of the model never does)."""
import numpy as np


def get(params, name, owner):
    """``params[name]``; where absent or None, the schema's default of ``name`` for class ``owner``
    (None where the schema requires it or has no such parameter)."""
    try:
        v = params[name]
    except (KeyError, TypeError):
        v = None
    if v is not None:
        return v
    from ..model.schema import REQUIRED, From, params_of

    spec = params_of(owner).get(name)
    if spec is None or spec.default is REQUIRED:
        return None
    d = spec.default
    if isinstance(d, From):
        base = get(params, d.param, owner)
        return None if base is None else base + d.offset
    return d


def get_f32(params, name, owner):
    """:func:`get` as float32, the precision OpenPV computes in."""
    return np.float32(get(params, name, owner))

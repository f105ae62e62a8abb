"""Bytes the network's own arrays hold on this rank, per neuron and per weight.

Peak RSS includes the interpreter, numpy, Numba and LLVM (~150 MB before any
network exists), which hides what the data layout costs; this walks the
layers' and connections' arrays instead (V, A, the data store, GSyn, active
lists, halo buffers; W, dW, counts, momentum, reduction buffers), counting
each memory block once.
"""
import numpy as np


def _arrays(obj, depth=0):
    """Numpy arrays held by an object's attributes (through lists, tuples, dicts and one level of objects)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _arrays(v, depth)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v, depth)
    elif depth == 0 and hasattr(obj, "__dict__") and not isinstance(obj, type):
        for v in vars(obj).values():
            yield from _arrays(v, depth + 1)


def _owner(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def count_blocks(obj, seen):
    """Add the arrays ``obj`` holds to ``seen`` ({id of a memory block: bytes}) and return it.

    A block counts as its largest array, not its own size: a huge-page-aligned
    buffer's padding is never touched, and an array and its views are one block.
    """
    for v in vars(obj).values():
        for a in _arrays(v):
            o = id(_owner(a))
            seen[o] = max(seen.get(o, 0), a.nbytes)
    return seen


def footprint(column):
    """{'layer_bytes', 'neurons', 'bytes_per_neuron', 'connection_bytes', 'weights', 'bytes_per_weight'}."""
    seen = {}

    def total(objs):
        before = sum(seen.values())
        for obj in objs:
            count_blocks(obj, seen)
        return sum(seen.values()) - before

    layer_bytes = total(column.layers.values())
    neurons = sum(la.tile.nb * la.tile.ny * la.tile.nx * la.nf for la in column.layers.values())
    conn_bytes = total(column.connections.values())
    weights = sum(c.W.size for c in column.connections.values() if "W" in vars(c))
    return {"layer_bytes": layer_bytes, "neurons": neurons,
            "bytes_per_neuron": layer_bytes / neurons if neurons else 0.0,
            "connection_bytes": conn_bytes, "weights": weights,
            "bytes_per_weight": conn_bytes / weights if weights else 0.0}

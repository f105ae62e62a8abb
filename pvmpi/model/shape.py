"""The shape of a network as choosing a layout needs it: nbatch, every layer's global size and
the margin its connections ask of it (from the model, before any network is built)."""
from dataclasses import dataclass

from ..errors import PvmpiError
from ..geometry import axis_map


@dataclass(frozen=True)
class LayerShape:
    """A layer's global size and the margin its connections need (estimated), for choosing a layout."""

    name: str
    nx: int
    ny: int
    nf: int
    margin_x: int = 0
    margin_y: int = 0


@dataclass(frozen=True)
class NetworkShape:
    """What choosing a layout needs: nbatch, the layers' shapes, and the BatchWidth, NumRows and
    NumColumns the config fixes (None where it does not)."""

    nbatch: int
    layers: tuple
    fixed: tuple = (None, None, None)  # BatchWidth, NumRows, NumColumns set in the config


def conn_maps(model, g, conns, depth=0):
    """(xmap, ymap) of a weighted connection's geometry, or None (as the network builds them)."""
    if depth > 8 or g is None:
        return None
    pre, post = g.params.get("preLayerName"), g.params.get("postLayerName")
    if not pre or not post:
        return None
    pnx, pny, _ = model.layer_size(pre)
    qnx, qny, _ = model.layer_size(post)
    if g.is_a("TransposeConn") or g.is_a("CloneConn") or g.is_a("CopyConn"):
        o = conn_maps(model, conns.get(g.params.get("originalConnName")), conns, depth + 1)
        if o is None:
            return None
        if not g.is_a("TransposeConn"):
            return o
        return axis_map(pnx, qnx, o[0].patch_post), axis_map(pny, qny, o[1].patch_post)
    if "nxp" in g.params and "nyp" in g.params:
        return axis_map(pnx, qnx, g["nxp"]), axis_map(pny, qny, g["nyp"])
    return None


def network_shape(model):
    """nbatch, every layer's size and (estimated) margin, and the config's own layout settings."""
    margins = {g.name: [0, 0] for g in model.layers}
    conns = {g.name: g for g in model.connections}
    for g in model.connections:
        try:
            maps = conn_maps(model, g, conns)
        except (PvmpiError, KeyError, TypeError, ValueError):
            maps = None  # the run itself reports a bad geometry
        pre = g.params.get("preLayerName")
        if maps is not None and pre in margins:
            margins[pre][0] = max(margins[pre][0], maps[0].margin)
            margins[pre][1] = max(margins[pre][1], maps[1].margin)
    layers = tuple(LayerShape(g.name, *model.layer_size(g), *margins[g.name]) for g in model.layers)
    par = model.parallel
    return NetworkShape(model.column["nbatch"], layers,
                        (par.get("BatchWidth"), par.get("NumRows"), par.get("NumColumns")))


#: float32 buffers every layer holds at least: its activity (extended) and one restricted buffer
#: (membrane potential, or the input layer's frame); the engine holds more, never fewer
FLOOR_BUFFERS = 2


def bytes_floor(shape, layout):
    """A floor of the bytes one process of ``layout`` holds for the layers of ``shape``: what it
    needs before a single connection or probe, so a network above it cannot run anywhere."""
    nb = -(-shape.nbatch // layout.batch_width)
    total = 0
    for lay in shape.layers:
        ny, nx = -(-lay.ny // layout.rows), -(-lay.nx // layout.columns)
        extended = nb * (ny + 2 * lay.margin_y) * (nx + 2 * lay.margin_x) * lay.nf
        total += 4 * (extended + (FLOOR_BUFFERS - 1) * nb * ny * nx * lay.nf)
    return total

"""pvmpi.parallel: the only place that talks MPI.

``decomposition`` is pure arithmetic and is imported eagerly; ``Comms`` and
``HaloExchange`` import mpi4py, so they load on first use: importing this
package (e.g. for ``tile``) never starts MPI.
"""
from pvmpi.parallel.decomposition import (Layout, Tile, check_world, choose_layout, coords,
                                          layouts, rank_of, tile)

__all__ = ["Layout", "Tile", "check_world", "choose_layout", "coords", "layouts", "rank_of",
           "tile", "Comms", "HaloExchange"]


def __getattr__(name):
    if name == "Comms":
        from pvmpi.parallel.comm import Comms
        return Comms
    if name == "HaloExchange":
        from pvmpi.parallel.halo import HaloExchange
        return HaloExchange
    raise AttributeError(f"module 'pvmpi.parallel' has no attribute {name!r}")

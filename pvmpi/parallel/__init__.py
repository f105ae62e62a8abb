"""pvmpi.parallel: the only place that talks MPI.

``decomposition`` is pure arithmetic and is imported eagerly; ``Comms`` and
``HaloExchange`` import mpi4py, so they load on first use: importing this
package (e.g. for ``tile``) never starts MPI.
"""
from pvmpi.parallel.decomposition import Layout, Tile, check_world, choose_layout, coords, layouts, rank_of, tile

__all__ = ["Layout", "Tile", "check_world", "choose_layout", "coords", "layouts", "rank_of",
           "tile", "Comms", "HaloExchange", "halo_exchange"]


def __getattr__(name):
    if name == "Comms":
        from pvmpi.parallel.comm import Comms
        return Comms
    if name == "HaloExchange":
        from pvmpi.parallel.halo import HaloExchange
        return HaloExchange
    raise AttributeError(f"module 'pvmpi.parallel' has no attribute {name!r}")


def halo_exchange(comms, tile, nf, margin_x, margin_y, mirror, kernels):
    """The halo exchange for a layer whose state lives where ``kernels`` keeps it.

    A device-resident backend gets a
    :class:`~pvmpi.parallel.device_halo.DeviceHaloExchange` (strips packed on
    the GPU; only they cross to the host, or none with a CUDA-aware MPI);
    host backends the plain :class:`HaloExchange`.
    """
    if kernels.CAPABILITIES.device_resident:
        from pvmpi.parallel.device_halo import DeviceHaloExchange

        return DeviceHaloExchange(comms, tile, nf, margin_x, margin_y, mirror, kernels)
    from pvmpi.parallel.halo import HaloExchange

    return HaloExchange(comms, tile, nf, margin_x, margin_y, mirror)

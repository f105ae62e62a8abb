"""GPU binding: which device each MPI rank uses (OpenPV's rule, facts §7.5).

Without ``-d`` a rank takes GPU ``node_local_rank mod gpus_on_node``; the
node-local rank comes from ``Split_type(COMM_TYPE_SHARED)`` (OpenPV groups
ranks by host name: the same thing). With ``-d i,j,...``: one id means every
rank uses it; at least as many ids as ranks means rank r uses the r-th; any
other count is an error. :func:`choose_device` is the pure rule, testable
without MPI or GPUs; :func:`select_device` applies it and makes the device
current for numba.cuda in this process.

Importing this module imports neither mpi4py nor numba.
"""
import os

from pvmpi.errors import PvmpiError

__all__ = ["binding_warning", "choose_device", "cuda_aware_mpi", "gpu_count", "parse_device_ids",
           "select_device"]


def parse_device_ids(text):
    """``"0,1,3"`` → ``[0, 1, 3]`` (the ``-d`` argument); PvmpiError on anything else."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        parts = [p.strip() for p in str(text).split(",")]
    try:
        ids = [int(p) for p in parts]
    except (TypeError, ValueError):
        ids = None
    if not ids or any(i < 0 for i in ids):
        raise PvmpiError(f"-d {text!r}: expected comma-separated GPU ids such as 0 or 0,1,2,3",
                         param="-d")
    return ids


def choose_device(local_rank, n_gpus, ids, world_rank, world_size):
    """The GPU id of one rank.

    ``local_rank``: rank among the ranks on this node; ``n_gpus``: GPUs
    visible on this node (None: unknown, not checked); ``ids``: the ``-d``
    list or None.
    """
    if ids:
        if len(ids) == 1:
            dev = ids[0]
        elif len(ids) >= world_size:
            dev = ids[world_rank]
        else:
            raise PvmpiError(
                f"-d lists {len(ids)} GPU ids for {world_size} MPI ranks",
                param="-d", hint="give one id for every rank, or at least one id per rank")
    else:
        if n_gpus is not None and n_gpus < 1:
            raise PvmpiError("--backend cuda needs an NVIDIA GPU: none found on this node",
                             hint="run on a GPU node, or choose --backend numba")
        dev = local_rank % n_gpus if n_gpus else 0
    if n_gpus is not None and not 0 <= dev < n_gpus:
        raise PvmpiError(f"rank {world_rank}: GPU id {dev} does not exist: this node has {n_gpus} GPU(s)",
                         param="-d", hint=f"ids run from 0 to {n_gpus - 1}" if n_gpus else None)
    return dev


def binding_warning(local_size, n_gpus, ids=None):
    """OpenPV's warning when ranks on a node and its GPUs differ in number (None if they match)."""
    if ids or not n_gpus or local_size == n_gpus:
        return None
    if local_size > n_gpus:
        return f"{local_size} MPI ranks share {n_gpus} GPU(s) on this node"
    return f"{local_size} MPI ranks use {local_size} of the {n_gpus} GPUs on this node"


def gpu_count():
    """GPUs numba.cuda sees in this process (respects CUDA_VISIBLE_DEVICES); 0 if none or no driver."""
    try:
        from numba import cuda
    except ImportError:
        return 0
    try:
        return len(cuda.gpus) if cuda.is_available() else 0
    except Exception:  # noqa: BLE001 -- no driver, driver too old: no GPUs
        return 0


def _communicator(comms):
    return getattr(comms, "world", comms)


def select_device(comms, device_ids=None, *, n_gpus=None, activate=True):
    """Bind this rank to its GPU and return the id (collective over ``comms``).

    ``comms``: a :class:`~pvmpi.parallel.comm.Comms` (its world is used) or an
    mpi4py communicator. ``device_ids``: the ``-d`` list (or its text).
    ``n_gpus``: GPUs on this node (default: counted by numba.cuda).
    ``activate``: make the device current (``cuda.select_device``); False
    only computes the id. Raises PvmpiError on this rank when the rule fails;
    callers gather errors collectively (as ``cli.setup`` does).
    """
    from mpi4py import MPI

    comm = _communicator(comms)
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        local_rank, local_size = node.Get_rank(), node.Get_size()
    finally:
        node.Free()
    ids = parse_device_ids(device_ids)
    if n_gpus is None:
        n_gpus = gpu_count()
    dev = choose_device(local_rank, n_gpus, ids, comm.Get_rank(), comm.Get_size())
    warning = binding_warning(local_size, n_gpus, ids)
    if warning and local_rank == 0:
        import sys

        print(f"pvmpi: warning: {warning}", file=sys.stderr, flush=True)
    if activate:
        from numba import cuda

        cuda.select_device(dev)
    return dev


_SWITCH = {"1": True, "true": True, "yes": True, "on": True,
           "0": False, "false": False, "no": False, "off": False}


def cuda_aware_mpi(comm=None):
    """True if the MPI library can take device pointers; else False (the default: host staging).

    ``PVMPI_CUDA_AWARE_MPI=1`` (or ``0``) decides it for MPIs that are CUDA-aware
    but do not say so (or that say so wrongly). Otherwise asks MPI 4.1's memory
    allocation kinds (``mpi_memory_alloc_kinds`` of the communicator's info
    lists ``cuda``), then the ``MPIX_Query_cuda_support`` extension where
    mpi4py exposes it. pvmpi stages halo strips through host memory unless
    this is True.
    """
    forced = os.environ.get("PVMPI_CUDA_AWARE_MPI", "").strip().lower()
    if forced:
        if forced not in _SWITCH:
            raise PvmpiError(f"PVMPI_CUDA_AWARE_MPI={forced!r}: expected 1 or 0 (true/false, yes/no)")
        return _SWITCH[forced]
    try:
        from mpi4py import MPI
    except ImportError:
        return False
    try:
        info = (comm or MPI.COMM_WORLD).Get_info()
        try:
            kinds = info.Get("mpi_memory_alloc_kinds") or ""
        finally:
            info.Free()
        if any(k.split(":")[0].strip() == "cuda" for k in kinds.split(",")):
            return True
    except Exception:  # noqa: BLE001, S110 -- an MPI without the info key: not CUDA-aware
        pass
    query = getattr(MPI, "Query_cuda_support", None)
    if query is not None:
        try:
            return bool(query())
        except Exception:  # noqa: BLE001 -- unsupported query: not CUDA-aware
            return False
    return False

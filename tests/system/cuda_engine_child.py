"""Child process of test_cuda_resident.py: runs a tiny LCA dictionary-learning network (the demo
config cut down) on one backend. Start it with ``NUMBA_ENABLE_CUDASIM=1`` for the cuda backend on a
machine without a GPU (the simulator must be on before numba is imported).

    python cuda_engine_child.py run BACKEND IMAGES OUT [RESUME]   a whole run (continued from RESUME)
    python cuda_engine_child.py transfers IMAGES OUT              host<->device copies per step (JSON)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's pvmpi and tests

from mpi4py import MPI  # noqa: E402

from pvmpi.kernels import get_backend  # noqa: E402
from pvmpi.network.column import Column  # noqa: E402
from pvmpi.parallel.comm import Comms  # noqa: E402
from pvmpi.parallel.decomposition import Layout  # noqa: E402
from tests.mpi.test_cuda_layouts import tiny_model  # noqa: E402  (one definition of the network)


def column(backend, images, out, **overrides):
    """A one-rank Column of the tiny network (its Comms are freed with the process)."""
    model = tiny_model(images, out, **{"column.checkpointWrite": "true", **overrides})
    return Column(model, Comms(Layout(1, 1, 1), MPI.COMM_SELF), get_backend(backend), output_path=str(out))


def count_transfers(cu):
    """Wrap the simulator's (or the driver's) copies both ways; returns the list they append to."""
    log = []
    cls = type(cu.cuda.device_array(1))
    to_host, to_dev, to_device = cls.copy_to_host, cls.copy_to_device, cu.cuda.to_device

    def copy_to_host(self, *a, **k):
        log.append(("d2h", int(self.nbytes), list(self.shape)))
        return to_host(self, *a, **k)

    def copy_to_device(self, ary, *a, **k):
        if not hasattr(ary, "copy_to_host") and not hasattr(ary, "__cuda_array_interface__"):
            log.append(("h2d", int(ary.nbytes), list(ary.shape)))
        return to_dev(self, ary, *a, **k)

    def to_device_counted(ary, *a, **k):
        log.append(("h2d", int(ary.nbytes), list(ary.shape)))
        return to_device(ary, *a, **k)

    cls.copy_to_host, cls.copy_to_device, cu.cuda.to_device = copy_to_host, copy_to_device, to_device_counted
    return log


def transfers(images, out):
    """Steps 1..3 of a display period of 4 (no frame, no output, no learning at steps 2 and 3):
    every host<->device copy of steps 2 and 3, and the byte size of every layer buffer."""
    col = column("cuda", images, out, **{"column.checkpointWrite": "false"})
    cu = col.kernels
    col.initialize()
    col.advance()  # step 1: everything has run once
    log = count_transfers(cu)
    per_step = []
    for _ in range(2):
        start = len(log)
        col.advance()
        per_step.append(log[start:])
    buffers = {}
    for layer in col.layers.values():
        named = {"A": layer.A, "gsyn": layer.gsyn[0], "V": getattr(layer, "V", None)}
        for what, buf in named.items():
            if buf is not None:
                buffers[f"{layer.name}.{what}"] = [int(buf.nbytes), type(buf).__name__]
    for conn in col.connections.values():
        if "W" in vars(conn):
            buffers[f"{conn.name}.W"] = [int(conn.W.nbytes), type(conn.W).__name__]
    col.close()
    print("JSON" + json.dumps({"steps": per_step, "buffers": buffers}))


def run(backend, images, out, resume=None):
    """A whole run to stopTime (continued from checkpoint directory ``resume`` if given)."""
    col = column(backend, images, out)
    col.run(resume)
    print("DONE step", col.step)


if __name__ == "__main__":
    sys.setswitchinterval(1e-4)  # the simulator's block manager polls its threads
    if sys.argv[1] == "transfers":
        transfers(*sys.argv[2:])
    else:
        run(*sys.argv[2:])

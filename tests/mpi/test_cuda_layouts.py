"""The cuda backend, state on the device, gives a 1-rank run's outputs under a row split and a batch split.

Runs only inside a CUDA test process: ``tests/system/test_cuda_resident.py``
starts ``mpiexec -n 2 ... pytest --with-mpi`` on this file with Numba's CUDA
simulator in the ranks (``PVMPI_CUDA_TESTS=sim``); on a GPU machine
``PVMPI_CUDA_TESTS=gpu mpiexec -n 2 python -m mpi4py -m pytest --with-mpi tests/mpi``
runs it on the devices. The halo strips go through
:class:`~pvmpi.parallel.device_halo.DeviceHaloExchange` (staged through the host, and once handed
to MPI on the device as with a CUDA-aware MPI), dW through the host.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from .test_layouts import demo_model, run_layout

MODE = os.environ.get("PVMPI_CUDA_TESTS")  # "sim" (the simulator is on in every rank) or "gpu"
OUTPUTS = ("V1ToInputError.pvp", "V1ToInputError.prevDelta.pvp", "InputRecon.pvp", "V1.pvp", "InputError.pvp")


def tiny_model(images, out, **overrides):
    """The demo network cut for the simulator: 8x8 images, V1 4x4x4, 4x4 patches, nbatch 2,
    a display period of 4 steps (learning at its last step), everything written every 4 steps."""
    sets = {"column.nx": 8, "column.ny": 8, "column.nbatch": 2, "column.stopTime": 8,
            "Input.displayPeriod": 4, "V1.nf": 4, "V1ToInputError.nxp": 4, "V1ToInputError.nyp": 4,
            "V1ToInputError.writeStep": 4, "column.checkpointWriteDir": f"{out}/checkpoints",
            "column.checkpointWriteStepInterval": 4}
    for layer in ("Input", "InputError", "V1", "InputRecon"):
        sets[f"{layer}.writeStep"] = sets[f"{layer}.initialWriteTime"] = 4
    sets.update(overrides)
    return demo_model(images, **sets)


def assert_same_outputs(ref, other, atol=2e-6):
    """Every pvp output of ``other`` equals ``ref``'s to float32 round-off (``atol`` times its scale)."""
    from pvmpi.io import pvp

    for name in OUTPUTS:
        a, b = pvp.read(ref / name), pvp.read(other / name)
        np.testing.assert_array_equal(a.times, b.times)
        scale = max(1.0, float(np.abs(a.values).max()))
        np.testing.assert_allclose(b.values, a.values, rtol=0, atol=atol * scale, err_msg=name)


@pytest.mark.skipif(MODE not in ("sim", "gpu"), reason="runs in a CUDA test process (see test_cuda_resident.py)")
@pytest.mark.mpi(min_size=2)
def test_cuda_row_and_batch_splits_equal_one_rank():
    from mpi4py import MPI
    from running import run_network

    from pvmpi.data.dead_leaves import make_image_set
    from pvmpi.parallel.decomposition import Layout

    sys.setswitchinterval(1e-4)  # the simulator's block manager polls its threads
    world = MPI.COMM_WORLD
    root = Path(world.bcast(tempfile.mkdtemp(prefix="pvmpi-cuda-layouts-") if world.rank == 0 else None))
    if world.rank == 0:
        make_image_set(root / "images", count=4, size=8, seed=5)
    world.Barrier()
    model = tiny_model(root / "images" / "images.txt", root, **{"column.stopTime": 4})  # learns at t = 3
    if world.rank == 0:
        run_network(model, MPI.COMM_SELF, backend="cuda", output_path=str(root / "one"))
    for lay in (Layout(1, 2, 1), Layout(2, 1, 1)):  # rows split (halos cross ranks), batch split
        if world.size == lay.size:
            run_layout(model, lay, world, root, root / "one", assert_same_outputs, backend="cuda")
    if world.size == 2:
        # the CUDA-aware path: device strips handed to MPI as they are (the simulator's device
        # arrays are host memory, so any MPI takes them)
        from pvmpi.parallel.device_halo import DeviceHaloExchange

        aware, start = [], DeviceHaloExchange.start

        def start_counted(self, A):
            aware.append(self.cuda_aware)
            return start(self, A)

        os.environ["PVMPI_CUDA_AWARE_MPI"] = "1"
        DeviceHaloExchange.start = start_counted
        try:
            run_layout(model, Layout(1, 2, 1), world, root / "aware", root / "one", assert_same_outputs,
                       backend="cuda")
        finally:
            del os.environ["PVMPI_CUDA_AWARE_MPI"]
            DeviceHaloExchange.start = start
        assert aware and all(aware)
    world.Barrier()
    if world.rank == 0:
        shutil.rmtree(root)

"""Checkpoints under MPI: exact continuation on the same layout, equal results on any other.

A checkpoint holds global arrays, so a run written with one (B, R, C) can
continue under every other layout that fits, and with the same layout it
continues byte for byte.
"""
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pvmpi.io import pvp

from .test_layouts import demo_model, fitting_layouts

OUTPUTS = ("V1ToInputError.pvp", "InputRecon.pvp", "V1.pvp", "Input.pvp")


def run(model, layout, comm, out, resume=None):
    from running import run_network

    run_network(model, comm, layout, output_path=str(out), resume=resume)


def same_bytes(a, b):
    for name in OUTPUTS + tuple(f"energy_batchElement_{g}.txt" for g in range(4)):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def close(a, b):
    for name in OUTPUTS:
        x, y = pvp.read(a / name), pvp.read(b / name)
        np.testing.assert_array_equal(x.times, y.times)
        scale = max(1.0, float(np.abs(x.values).max()))
        np.testing.assert_allclose(y.values, x.values, rtol=0, atol=2e-5 * scale, err_msg=name)


@pytest.mark.mpi(min_size=1)
def test_restart_on_the_same_and_on_other_layouts():
    from mpi4py import MPI

    from pvmpi.data.dead_leaves import make_image_set

    world = MPI.COMM_WORLD
    root = Path(world.bcast(tempfile.mkdtemp(prefix="pvmpi-ckmpi-") if world.rank == 0 else None))
    if world.rank == 0:
        make_image_set(root / "images", count=12, size=64, seed=3)
    world.Barrier()

    def model_for(tag):
        return demo_model(root / "images" / "images.txt", **{
            "column.nbatch": math.lcm(4, world.size),  # sized from the communicator
            "column.checkpointWrite": "true", "column.checkpointWriteDir": str(root / tag / "checkpoints"),
            "column.checkpointWriteStepInterval": 30})

    layouts = fitting_layouts(world.size, model_for("x"))
    first = layouts[-1]  # the most split layout writes the checkpoint
    run(model_for("full"), first, world, root / "full")
    world.Barrier()
    mid = root / "full" / "checkpoints" / "Checkpoint30"
    for lay in layouts:
        tag = f"B{lay.batch_width}R{lay.rows}C{lay.columns}"
        out = root / tag
        if world.rank == 0:  # continue in a copy of the interrupted run's outputs
            shutil.copytree(root / "full", out, ignore=shutil.ignore_patterns("checkpoints"))
        world.Barrier()
        run(model_for(tag), lay, world, out, resume=str(mid))
        if world.rank == 0:
            if lay == first:
                same_bytes(root / "full", out)
            else:
                close(root / "full", out)
        world.Barrier()
    if world.rank == 0:
        shutil.rmtree(root)

"""A run's result does not depend on how ranks split the batch and the layers.

Under ``mpiexec -n N`` every layout of N ranks that fits the network runs the
same LCA dictionary-learning network (nbatch 4, learning every display
period); rank 0 also runs it alone on COMM_SELF. Outputs — the learned
dictionary, the reconstructions, every batch element's energy — must agree
within float32 round-off, and the shared weights must be bit-identical on
every rank.
"""
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pvmpi.io import pvp

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"


def demo_model(images, **overrides):
    from pvmpi.model.config import apply_overrides, load_yaml
    from pvmpi.model.network_model import build_model

    sets = {"column.nbatch": 4, "column.stopTime": 60, "Input.displayPeriod": 20,
            "Input.inputPath": str(images), "V1.nf": 16, "V1ToInputError.writeStep": 20}
    for layer in ("Input", "InputError", "V1", "InputRecon"):
        sets[f"{layer}.writeStep"] = sets[f"{layer}.initialWriteTime"] = 20
    sets.update(overrides)
    raw = apply_overrides(load_yaml(DEMO), [f"{k}={v}" for k, v in sets.items()])
    return build_model(raw)


def fitting_layouts(size, model):
    """Every layout of ``size`` processes that fits ``model`` (pvmpi's own rule)."""
    from pvmpi.model.shape import network_shape
    from pvmpi.parallel.layout import fitting_layouts as fitting

    return fitting(network_shape(model), size)


def compare_outputs(ref, other):
    for name in ("V1ToInputError.pvp", "InputRecon.pvp", "V1.pvp"):
        a, b = pvp.read(ref / name), pvp.read(other / name)
        np.testing.assert_array_equal(a.times, b.times)
        scale = max(1.0, float(np.abs(a.values).max()))
        np.testing.assert_allclose(b.values, a.values, rtol=0, atol=2e-5 * scale, err_msg=name)
    for g in range(4):
        ea = np.loadtxt(ref / f"energy_batchElement_{g}.txt", delimiter=",", skiprows=1)
        eb = np.loadtxt(other / f"energy_batchElement_{g}.txt", delimiter=",", skiprows=1)
        np.testing.assert_allclose(eb, ea, rtol=1e-5)


def run_layout(model, lay, world, root, reference, compare, backend="numba"):
    """Run ``model`` on layout ``lay``: its shared weights must agree on every rank, and rank 0
    compares its outputs with the directory ``reference`` by ``compare``."""
    from running import run_network

    out = root / f"B{lay.batch_width}R{lay.rows}C{lay.columns}"
    column = run_network(model, world, lay, backend, output_path=str(out))
    W = column.kernels.to_host(column.connections["V1ToInputError"].W)
    W0 = world.bcast(W if world.rank == 0 else None)
    assert np.array_equal(W, W0), "shared weights differ between ranks"
    if world.rank == 0:
        compare(reference, out)


@pytest.mark.mpi(min_size=1)
def test_demo_network_is_independent_of_layout():
    from mpi4py import MPI
    from running import run_network

    from pvmpi.data.dead_leaves import make_image_set


    world = MPI.COMM_WORLD
    root = Path(world.bcast(tempfile.mkdtemp(prefix="pvmpi-layouts-") if world.rank == 0 else None))
    if world.rank == 0:
        make_image_set(root / "images", count=12, size=64, seed=3)
    world.Barrier()
    nbatch = math.lcm(4, world.size)  # sized from the communicator: a batch split always fits
    model = demo_model(root / "images" / "images.txt", **{"column.nbatch": nbatch})
    if world.rank == 0:
        run_network(model, MPI.COMM_SELF, output_path=str(root / "serial"))
    layouts = fitting_layouts(world.size, model)
    assert layouts, "no layout fits"
    for lay in layouts:
        run_layout(model, lay, world, root, root / "serial", compare_outputs)
    world.Barrier()
    if world.rank == 0:
        shutil.rmtree(root)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("nbatch", [1, 2])
def test_demo_at_one_batch_element_per_rank(nbatch):
    """The demo's probes (an L1 and an L0 probe of V1, an energy) at one batch element per rank
    with rows or columns split: once, a second probe of a layer summed the first probe's
    already-reduced statistics (13581 / 27162 / 54324 on 1 / 2 / 4 ranks). Every output file
    of every fitting layout equals the 1-rank run (pvmpi.conformance.compare)."""
    from mpi4py import MPI
    from running import run_network

    from pvmpi.conformance.compare import compare_runs
    from pvmpi.data.dead_leaves import make_image_set


    def compare(ref, out):
        diff = compare_runs(ref, out)
        assert not diff.problems, "\n".join(diff.problems[:10])

    world = MPI.COMM_WORLD
    if world.size < 2 * nbatch:
        pytest.skip(f"one batch element per rank with a spatial split needs {2 * nbatch} ranks")
    root = Path(world.bcast(tempfile.mkdtemp(prefix="pvmpi-nb1-") if world.rank == 0 else None))
    if world.rank == 0:
        make_image_set(root / "images", count=4, size=64, seed=1)
    world.Barrier()
    model = demo_model(root / "images" / "images.txt", **{"column.nbatch": nbatch,
                                                         "column.stopTime": 6})
    if world.rank == 0:
        run_network(model, MPI.COMM_SELF, output_path=str(root / "serial"))
    layouts = [lay for lay in fitting_layouts(world.size, model) if nbatch // lay.batch_width == 1]
    if not layouts:
        pytest.skip(f"the demo's 64x64 layers have no tiling for {world.size // nbatch} rank(s) per batch "
                    f"element")
    assert any(lay.rows * lay.columns > 1 for lay in layouts)
    for lay in layouts:
        run_layout(model, lay, world, root, root / "serial", compare)
    world.Barrier()
    if world.rank == 0:
        shutil.rmtree(root)


@pytest.mark.mpi(min_size=2)
def test_a_step_makes_no_blocking_reduction_over_the_tiles_of_a_batch_slice():
    """The demo's probes (L1, L0, energy) on a layout whose batch slices span several tiles: their
    sums travel while the next step computes, so a step calls no blocking spatial reduction,
    and every probe file still equals the 1-rank run's."""
    from mpi4py import MPI
    from running import run_network

    from pvmpi import Simulation
    from pvmpi.conformance.compare import compare_runs
    from pvmpi.data.dead_leaves import make_image_set

    world = MPI.COMM_WORLD
    root = Path(world.bcast(tempfile.mkdtemp(prefix="pvmpi-lag-") if world.rank == 0 else None))
    if world.rank == 0:
        make_image_set(root / "images", count=4, size=64, seed=2)
    world.Barrier()
    model = demo_model(root / "images" / "images.txt", **{"column.nbatch": 2, "column.stopTime": 8})
    spatial = [lay for lay in fitting_layouts(world.size, model) if lay.rows * lay.columns > 1]
    if not spatial:
        world.Barrier()  # every rank has read the image list
        if world.rank == 0:
            shutil.rmtree(root)
        pytest.skip(f"the demo's 64x64 layers have no tiling for {world.size} ranks")
    if world.rank == 0:
        run_network(model, MPI.COMM_SELF, output_path=str(root / "serial"))
    for lay in spatial:
        out = root / f"B{lay.batch_width}R{lay.rows}C{lay.columns}"
        with Simulation(model, world, layout=lay, output_path=str(out), overwrite=True) as sim:
            sim.step(1)  # the t = 0 lines and the first step
            comms, calls = sim.column.comms, []
            for name in ("spatial_sum", "spatial_min", "spatial_max"):
                real = getattr(comms, name)
                setattr(comms, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
            for _ in range(5):
                sim.column.advance()
            assert calls == [], calls
            sim.run()
            sim.close()
        world.Barrier()
        if world.rank == 0:
            diff = compare_runs(root / "serial", out)
            assert not diff.problems, "\n".join(diff.problems[:10])
    world.Barrier()
    if world.rank == 0:
        shutil.rmtree(root)

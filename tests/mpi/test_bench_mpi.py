"""The bench under MPI: every rank runs it, rank 0 prints one JSON object describing the whole job.

Run as ``mpiexec -n N python -m mpi4py -m pytest --with-mpi tests/mpi``; each
layout of N ranks that fits the (shrunk) demo network is benchmarked for a
few steps. Behaviour only: the reduction over ranks, not the timings.
"""
import json
import shutil
import tempfile
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"


@pytest.mark.mpi(min_size=1)
def test_bench_reduces_over_every_rank(capsys):
    from mpi4py import MPI

    from pvmpi import load
    from pvmpi.bench.run import main
    from pvmpi.data.dead_leaves import make_image_set
    from pvmpi.model.shape import network_shape
    from pvmpi.parallel.decomposition import layouts
    from pvmpi.parallel.layout import layout_problems

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    tmp = tempfile.mkdtemp(prefix="pvmpi-bench-mpi-") if rank == 0 else None
    if rank == 0:
        make_image_set(Path(tmp) / "images", count=8, size=64, seed=1)
    tmp = world.bcast(tmp, root=0)
    sets = ["column.nbatch=4", f"Input.inputPath={tmp}/images/images.txt", "V1.nf=8"]
    shape = network_shape(load(DEMO, sets))
    try:
        for lay in layouts(size):
            if layout_problems(shape, lay.batch_width, lay.rows, lay.columns):
                continue
            argv = [str(DEMO), "--json", "--steps", "2", "--repeat", "2", "--warmup", "1", "--peak-gflops", "50",
                    "--batchwidth", str(lay.batch_width), "--rows", str(lay.rows),
                    "--columns", str(lay.columns)]
            for s in sets:
                argv += ["--set", s]
            assert main(argv) == 0
            out = capsys.readouterr().out.strip().splitlines()
            if rank != 0:
                assert out == []
                continue
            r = json.loads(out[-1])
            assert r["ranks"] == size and r["steps"] == 4
            assert r["layout"] == {"batchwidth": lay.batch_width, "rows": lay.rows, "columns": lay.columns}
            assert len(r["peak_rss_mb_per_rank"]) == size
            assert r["memory"]["neurons"] == 4 * (3 * 64 * 64 + 32 * 32 * 8)  # every rank's share, summed
            assert r["ms_per_step_wall"] > 0 and r["gflops"] > 0
            if lay.rows * lay.columns > 1:
                assert r["phase_groups"]["halo"] > 0
    finally:
        world.Barrier()
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)

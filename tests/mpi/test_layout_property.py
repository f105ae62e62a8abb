"""Layout independence, generatively: drawn networks give the same outputs on every layout.

Each example is a network drawn by :func:`generated.networks.networks`. Rank
0 runs it alone (COMM_SELF) as the reference; then every layout of the
world's ranks that fits it runs it (under ``mpiexec -n 2`` and ``-n 4``:
batch splits, rows, columns, and — for nbatch 1 and 2 — one batch element
per rank with the rows or columns split). Every output file is compared
with the reference (:mod:`pvmpi.conformance.compare`: .pvp values, frame counts and
timestamps, probe text, timestamps files, checkpoint arrays) within float32
summation order. A failing example leaves its folder and prints its config,
which ``python -m pvmpi <folder>/config.yaml`` reruns on one rank.

CI draws a fixed number of examples from a fixed seed (derandomized). A
longer local profile: ``PVMPI_LAYOUT_EXAMPLES=300 PVMPI_LAYOUT_SEED=7
PVMPI_LAYOUT_REPORT=report.json mpiexec -n 4 python -m mpi4py -m pytest
--with-mpi tests/mpi/test_layout_property.py``.
"""
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from generated.networks import Network, networks
from hypothesis import HealthCheck, Phase, given, seed, settings

from pvmpi.conformance.compare import compare_runs
from pvmpi.model.shape import network_shape
from pvmpi.parallel.layout import fitting_layouts

EXAMPLES = int(os.environ.get("PVMPI_LAYOUT_EXAMPLES", "0"))
SEED = os.environ.get("PVMPI_LAYOUT_SEED")
REPORT = os.environ.get("PVMPI_LAYOUT_REPORT")
# CI: examples per world size (a few minutes each, oversubscribed on 2 cores)
CI_EXAMPLES = {2: 100, 4: 50}
TALLY = {"examples": 0, "runs": 0, "one_element_spatial": 0, "ended_in_error": 0, "worst": {},
         "seconds": 0.0}


def _world():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def _examples():
    return EXAMPLES or CI_EXAMPLES.get(_world().Get_size(), 10)


def _wait_for_rank0(world):
    """A barrier that sleeps instead of spinning: the other ranks must not steal rank 0's core
    while it runs the reference alone (MPICH busy-polls)."""
    req = world.Ibarrier()
    while not req.Test():
        time.sleep(0.005)


def _model(net, input_path, out):
    from pvmpi.model.config import parse_yaml
    from pvmpi.model.network_model import build_model

    return build_model(parse_yaml(net.yaml(input_path, out), "generated.yaml"))


def _run(net, input_path, out, comm, layout):
    """Run the network into ``out``; the error message if it failed (on every rank of comm)."""
    from running import run_network

    from pvmpi.errors import PvmpiError

    try:
        run_network(_model(net, input_path, out), comm, layout, output_path=str(out))
    except PvmpiError as e:
        return str(e).replace(str(out), "<out>")
    return None


def check_layout_independence(net):
    """Run ``net`` on one rank and on every fitting layout; raise AssertionError on every rank
    with the differences, the layouts and the config if any output differs.

    A run that stops with an error (a network that diverges: the guard names the layer, step
    and batch element) must stop with the same error on every layout, its outputs up to
    then equal."""
    from mpi4py import MPI

    from pvmpi.parallel.decomposition import Layout

    world = _world()
    t0 = time.perf_counter()
    root = Path(world.bcast(tempfile.mkdtemp(prefix="pvmpi-generated-") if world.rank == 0 else None))
    input_path = reference_error = None
    if world.rank == 0:
        input_path = net.inputs.write(root / "inputs")
        reference_error = _run(net, input_path, root / "serial", MPI.COMM_SELF, Layout(1, 1, 1))
    _wait_for_rank0(world)
    input_path, reference_error = world.bcast((input_path, reference_error))
    problems = []
    for lay in fitting_layouts(network_shape(_model(net, input_path, root / "x")), world.size):
        out = root / f"B{lay.batch_width}R{lay.rows}C{lay.columns}"
        error = _run(net, input_path, out, world, lay)
        world.Barrier()  # after an error each rank closes its own files: rank 0 reads them once all have
        if world.rank == 0:
            if error != reference_error:
                problems.append(f"{lay}: the run ended with {error!r}, on 1 rank with {reference_error!r}")
            diff = compare_runs(root / "serial", out)
            problems += [f"{lay}: {p}" for p in diff.problems]
            for kind, rel in diff.worst.items():
                TALLY["worst"][kind] = max(TALLY["worst"].get(kind, 0.0), rel)
        TALLY["runs"] += 1
        nb_local = net.nbatch // lay.batch_width
        TALLY["one_element_spatial"] += nb_local == 1 and lay.rows * lay.columns > 1
        if world.bcast(bool(problems)):
            break
    problems = world.bcast(problems)
    TALLY["examples"] += 1
    TALLY["ended_in_error"] += reference_error is not None
    TALLY["seconds"] += time.perf_counter() - t0
    if problems:
        if world.rank == 0:
            (root / "config.yaml").write_text(net.yaml(input_path, root / "rerun"))
            (root / "network.yaml").write_text(yaml.safe_dump(net.spec(), sort_keys=False))
        config = (root / "config.yaml").read_text() if world.rank == 0 else ""
        raise AssertionError(
            f"the outputs of a drawn network depend on the layout (folder {root}; rerun "
            f"with python -m pvmpi {root}/config.yaml; network.yaml there is a regression "
            f"example for tests/generated/regressions):\n  " + "\n  ".join(problems[:20]) + "\n" + config)
    world.Barrier()
    if world.rank == 0:
        shutil.rmtree(root)


def _profile(test):
    kw = dict(max_examples=_examples(), database=None, deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck), derandomize=SEED is None,
              phases=(Phase.explicit, Phase.generate))  # no shrinking: each retry runs every layout
    test = settings(**kw)(test)
    return seed(int(SEED))(test) if SEED is not None else test


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if REPORT and _world().rank == 0:
        Path(REPORT).write_text(json.dumps(dict(TALLY, ranks=_world().size), indent=1))


@_profile
@given(net=networks())
def _drawn_on_rank0(net):
    _world().bcast(net)  # to the other ranks' loop in the test below
    check_layout_independence(net)


@pytest.mark.mpi(min_size=2)
@pytest.mark.timeout(1200)  # every drawn network on every layout in one test: 50 at -n 4 came near 600 s
def test_generated_networks_are_layout_independent():
    """Hypothesis draws on rank 0 alone (its engine need not behave alike on every rank: two
    engines once drew different networks); the other ranks take each network from rank 0 and
    run it until rank 0 says it is done. A failure fails every rank."""
    world = _world()
    if world.rank == 0:
        try:
            _drawn_on_rank0()
        finally:
            world.bcast(_DONE)
        return
    failed = None
    while True:
        net = world.bcast(None)
        if isinstance(net, str):  # _DONE
            break
        try:
            check_layout_independence(net)
        except AssertionError as e:  # rank 0 reports it; this rank fails too, at the end
            failed = e
    if failed is not None:
        raise failed


_DONE = "no more networks"


REGRESSIONS = sorted((Path(__file__).parents[1] / "generated" / "regressions").glob("*.yaml"))


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_regression_networks_are_layout_independent(path):
    """Networks the property test once found failing (each file names its bug), on every layout."""
    check_layout_independence(Network.from_spec(yaml.safe_load(path.read_text())))

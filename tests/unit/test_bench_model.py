"""python -m pvmpi bench model: properties of the performance model that a wrong term would break.

Most tests use hand-made per-core costs (no timing); one runs the bench once
(1 rank, a few steps) to check that the model's work counts are the bench's
flop counts and that its 1-rank prediction is the measured step.
"""
import json
import math
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from pvmpi import load as load_model
from pvmpi.bench import model as pm
from pvmpi.data.dead_leaves import make_image_set

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "lca_demo.yaml"
IB = pm.Net(1.5e-6, 12e9)


def demo_net(*sets, activity=0.1):
    m = load_model(DEMO, list(sets))
    return pm.network(m, activity={"V1": activity})


def flat_costs(net, ms_per_unit=1e-6, serial=0.0):
    """Every object of ``net`` at the same per-core cost: a calibration without a measurement."""
    return pm.Calibration({n: ms_per_unit for n in net.work}, 1e-9, serial, {"V1": 0.1}, "test", 1, 0.0)


def test_compute_halves_with_each_batch_split():
    net = demo_net("column.nbatch=16")
    cal = flat_costs(net)
    c = [pm.predict(net, cal, (b, 1, 1), IB)[0]["compute"] for b in (1, 2, 4, 8, 16)]
    for a, b in pairwise(c):
        assert b == pytest.approx(a / 2)
    # threads per rank divide it too
    assert pm.predict(net, cal, (2, 1, 1), IB, threads=4)[0]["compute"] == pytest.approx(c[0] / 8)


def test_halo_only_with_spatial_splits_and_grows_with_neighbours():
    net = demo_net()
    cal = flat_costs(net)
    halo = {lay: pm.predict(net, cal, lay, IB)[0]["halo"] for lay in
            [(8, 1, 1), (1, 2, 1), (1, 2, 2), (1, 4, 1), (1, 4, 4)]}
    assert halo[(8, 1, 1)] == 0  # a batch slice has no neighbours
    assert 0 < halo[(1, 2, 1)] < halo[(1, 4, 1)]  # an interior rank has two neighbours, an edge rank one
    assert halo[(1, 2, 1)] < halo[(1, 2, 2)] < halo[(1, 4, 4)]  # more neighbours: 1 -> 3 -> 8
    # the surface of a tile shrinks more slowly than its volume: halo / compute grows with the splits
    ratio = [pm.predict(net, cal, lay, IB)[0] for lay in [(1, 2, 2), (1, 4, 4), (1, 8, 8)]]
    q = [t["halo"] / t["compute"] for t in ratio]
    assert q[0] < q[1] < q[2]


def test_allreduce_grows_with_log_p():
    net = demo_net("column.nbatch=64")
    latency_only = pm.Net(1e-6, float("inf"))
    a = {p: pm.allreduce_ms(net, p, latency_only) for p in (1, 2, 4, 16, 64)}
    assert a[1] == 0
    assert a[4] == pytest.approx(2 * a[2]) and a[16] == pytest.approx(4 * a[2]) and a[64] == pytest.approx(6 * a[2])
    nbytes, period = net.dw[0]
    assert period == 40  # the demo learns once per display period
    assert nbytes == 16 * 32 * 8 * 8  # dW and its counts in float64: 32 kernels of 8x8
    bw = pm.Net(0.0, 1e9)  # bandwidth term: 2 (P-1)/P x bytes, approaching twice the buffer
    assert pm.allreduce_ms(net, 2, bw) == pytest.approx(1e3 * nbytes / 1e9 / period)
    assert pm.allreduce_ms(net, 64, bw) < 2 * pm.allreduce_ms(net, 2, bw)


def test_efficiency_never_exceeds_one():
    net = demo_net("column.nbatch=64")
    for serial in (0.0, 0.5):
        rows = pm.sweep(net, flat_costs(net, serial=serial), IB, [2 ** i for i in range(11)], threads=1)
        assert rows and all(0 < r["efficiency"] <= 1 + 1e-12 for r in rows)
        assert {r["kind"] for r in rows} == {"batch", "spatial", "mixed"}


def test_impossible_layouts_are_excluded():
    net = demo_net()  # nbatch 8, Input 64x64, V1 32x32 with margin 2
    assert (16, 1, 1) not in pm.possible_layouts(net, 16)  # nbatch 8
    assert (1, 32, 1) not in pm.possible_layouts(net, 32)  # V1 tiles of 1 row < its margin 2
    assert pm.possible_layouts(net, 3) == []  # 3 divides neither nbatch nor 64
    rows = pm.sweep(net, flat_costs(net), IB, [1, 3, 16, 4096])
    assert all(r["ranks"] != 3 for r in rows)
    assert not any(r["kind"] == "batch" and r["ranks"] == 16 for r in rows)
    assert not any(r["ranks"] == 4096 for r in rows)  # 8 x 16 x 16 tiles of V1 (2x2) is the most there is
    ranks = [1, 2, 4, 8, 16]
    stops = pm.where_scaling_stops(pm.sweep(net, flat_costs(net), IB, ranks), ranks)
    assert "no batch layout fits beyond 8" in stops["batch"]["note"]


def test_where_scaling_stops_names_the_dominant_term():
    net = demo_net("column.nbatch=1024")
    net.io_bytes.clear()
    cal = flat_costs(net, ms_per_unit=1e-9, serial=0.0)
    slow = pm.Net(0.0, 1e5)  # a narrow network: the all-reduce of dW stops the batch split
    ranks = [2 ** i for i in range(11)]
    stops = pm.where_scaling_stops(pm.sweep(net, cal, slow, ranks), ranks)
    assert stops["batch"]["below_half_at"] is not None and stops["batch"]["dominant"] == "allreduce"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One short 1-rank, 1-thread bench of the demo shrunk to nbatch 2: (its JSON file, its overrides)."""
    d = tmp_path_factory.mktemp("model")
    images = make_image_set(d / "images", count=4, size=64, seed=1)
    sets = ["column.nbatch=2", f"Input.inputPath={images}", "V1.nf=8"]
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", str(DEMO), "--json", "-t", "1", "--steps", "10",
                           "--repeat", "2", "--warmup", "3", "--peak-gflops", "10",
                           *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    path = d / "bench.json"
    path.write_text(proc.stdout)
    return path, sets


def test_work_counts_are_the_bench_flop_counts_and_one_rank_is_the_measurement(measured):
    path, sets = measured
    res = json.loads(path.read_text())
    model = load_model(DEMO, sets)
    cal = pm.calibrate(res, model)
    net = pm.network(model, activity=cal.activity)
    dense = "deliver:InputErrorToV1"  # gather over a dense pre layer: the count needs no activity
    assert net.work[dense] == pytest.approx(res["gflops_by_phase"][dense] * res["phases"][dense] * 1e6, rel=1e-6)
    assert 0 < cal.activity["V1"] <= 1
    _, total = pm.predict(net, cal, (1, 1, 1), IB)
    assert total == pytest.approx(res["ms_per_step_wall"], rel=0.02)  # allreduce/halo at 1 rank are modelled as 0


def test_command_line_json_and_plot(measured, tmp_path):
    path, sets = measured
    out = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", "model", str(DEMO), "--measured", str(path),
                           *[a for s in sets for a in ("--measure-set", s)],
                           "--set", "column.nbatch=64", "--set", f"Input.inputPath={sets[1].split('=')[1]}",
                           "--ranks", "64", "--json", "-o", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert {row["ranks"] for row in r["rows"]} == {1, 64}
    assert r["network"]["nbatch"] == 64 and set(r["stops"]) == {"batch", "spatial", "mixed"}
    best = min((row for row in r["rows"] if row["ranks"] == 64), key=lambda row: row["ms_per_step"])
    assert math.isclose(sum(best["terms"].values()), best["ms_per_step"])
    assert (out / "model.json").is_file() and (out / "measured.json").is_file()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert 0 < (out / "model.png").stat().st_size < 150_000
    text = subprocess.run([sys.executable, "-m", "pvmpi", "bench", "model", str(DEMO), "--measured",
                           str(out / "measured.json"), *[a for s in sets for a in ("--measure-set", s)],
                           "--max-ranks", "8"], capture_output=True, text=True, timeout=120, check=False)
    assert text.returncode == 0, text.stderr
    assert "where each kind of layout stops scaling" in text.stdout and "ms/step" in text.stdout


def test_a_measurement_of_another_network_is_refused(measured):
    path, _ = measured
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", "model", str(DEMO), "--measured", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "nbatch 2" in proc.stderr and "--measure-set" in proc.stderr


def test_expected_maximum_of_jitter():
    """Two equally likely values: the max of n is the larger unless all n draw the smaller."""
    dev = [-1.0, 1.0] * 50
    assert pm.expected_max_ms(dev, 1) == 0.0
    for n in (2, 3, 10):
        assert pm.expected_max_ms(dev, n) == pytest.approx(1 - 2 * 0.5 ** n)
    assert pm.expected_max_ms([0.0] * 100, 4096) == 0.0  # no jitter, no wait
    # blocks of 2 steps average the jitter out: [-1, 1] pairs sum to 0
    assert pm.expected_max_ms(dev, 64, every=2) == 0.0
    gauss = [NormalDist().inv_cdf((i + 0.5) / 400) for i in range(400)]  # sigma 1
    grows = [pm.expected_max_ms(gauss, n) for n in (2, 16, 400, 4096, 10 ** 6)]
    assert all(a < b for a, b in pairwise(grows))
    assert grows[0] == pytest.approx(1 / math.sqrt(math.pi), rel=0.05)  # E[max of 2 normals] = 1/sqrt(pi)
    assert grows[-1] < math.sqrt(2 * math.log(10 ** 6)) + 0.5  # the Gaussian's growth, not faster


def test_wait_is_the_slowest_of_all_ranks_only_with_a_per_step_collective():
    net = demo_net("column.nbatch=4096")
    cal = flat_costs(net)
    cal.deviations_ms = [(-1.0) ** i * (1 + (i % 7) / 7) for i in range(280)]
    per_step = {p: pm.predict(net, cal, (p, 1, 1), IB, per_step_collective=True)[0]["wait"] for p in (2, 64, 4096)}
    lagged = {p: pm.predict(net, cal, (p, 1, 1), IB)[0]["wait"] for p in (2, 64, 4096)}
    assert per_step[2] < per_step[64] < per_step[4096]
    assert all(lagged[p] < per_step[p] for p in per_step)
    assert pm.predict(net, cal, (1, 1, 1), IB)[0]["wait"] == 0.0
    # a batch slice's 4096 tiles: probes reduce over all of them, each step's sums waited for a
    # step later (blocks of 2 steps); the halo's neighbours, the slowest of 9, meet every step
    cal.deviations_ms = list(np.random.default_rng(5).standard_normal(280))
    assert net.probes > 0
    spatial = pm.predict(net, cal, (1, 64, 64), IB)[0]["wait"]
    probes, halo = pm.expected_max_ms(cal.deviations_ms, 4096, 2), pm.expected_max_ms(cal.deviations_ms, 9, 1)
    assert spatial == pytest.approx(probes) and halo < probes
    net.probes = 0  # then the guard's blocks of 4 steps over all ranks, or the halo
    guard = pm.expected_max_ms(cal.deviations_ms, 4096, 4)
    without = pm.predict(net, cal, (1, 64, 64), IB)[0]["wait"]
    assert without == pytest.approx(max(guard, halo)) and without < spatial


def test_weak_scaling_keeps_the_work_per_rank():
    """nbatch = 4 x P on P ranks: compute stays, the dW all-reduce and the wait grow with log P."""
    nets = {p: demo_net(f"column.nbatch={4 * p}") for p in (1, 2, 64, 4096)}
    cal = flat_costs(nets[1])
    cal.deviations_ms = [(-1.0) ** i * 0.2 for i in range(100)]
    rows = pm.weak_sweep(nets, cal, IB)
    assert [r["nbatch"] for r in rows] == [4, 8, 256, 16384]
    assert {round(r["terms"]["compute"], 12) for r in rows} == {round(rows[0]["terms"]["compute"], 12)}
    assert rows[0]["efficiency"] == pytest.approx(1.0)
    assert all(a["efficiency"] >= b["efficiency"] for a, b in pairwise(rows))
    blocking = pm.weak_sweep(nets, cal, IB, per_step_collective=True)
    assert blocking[-1]["terms"]["wait"] > rows[-1]["terms"]["wait"]


def test_validation_gives_every_rank_a_core():
    """--validate measures a second 1-rank run and 2 ranks on 2 cores, 4 ranks only with 4 cores:
    oversubscribed ranks spin on each other's cores and validate nothing."""
    assert pm.validation_layouts(2) == [(1, 1, 1), (2, 1, 1), (1, 2, 1)]
    assert pm.validation_layouts(4) == list(pm.VALIDATION_LAYOUTS)
    assert pm.validation_layouts(1) == [(1, 1, 1)]


def _result(net, ms, nbatch):
    """A 1-rank, 1-thread bench result whose timers took ``ms(name, work)`` and nothing else."""
    phases = {name: ms(name, w) for name, w in net.work.items()}
    total = sum(phases.values())
    return {"ranks": 1, "threads": 1, "nbatch": nbatch, "phases": phases, "ms_per_step_wall": total,
            "ms_per_step_mean": total, "gflops_by_phase": {}, "config": "demo"}


def test_a_run_at_half_the_batch_splits_each_timer_into_a_fixed_part_and_a_part_per_unit():
    """Timers that cost F_t + U_t x work at nbatch 4 and 2: the calibration recovers F_t and U_t, the
    1-rank prediction is still the measured step, and a batch split divides only the U_t part."""
    big, half = (load_model(DEMO, [f"column.nbatch={nb}"]) for nb in (4, 2))
    net4, net2 = pm.network(big, activity={}), pm.network(half, activity={})
    names = sorted(net4.work)
    fixed = {n: 0.01 * (i % 5) for i, n in enumerate(names)}  # some timers have no fixed part
    per_unit = {n: 1e-6 * (1 + i % 3) for i, n in enumerate(names)}

    def ms(name, work):
        return fixed[name] + per_unit[name] * work

    res4, res2 = _result(net4, ms, 4), _result(net2, ms, 2)
    cal = pm.calibrate(res4, big, (res2, half))
    assert cal.fixed_ms == pytest.approx(fixed, abs=1e-12)
    assert cal.unit_ms == pytest.approx(per_unit, rel=1e-9)
    assert "fixed parts from nbatch 2" in cal.source
    _, one = pm.predict(net4, cal, (1, 1, 1), IB)
    assert one == pytest.approx(res4["ms_per_step_wall"], rel=1e-9)
    terms, _ = pm.predict(net4, cal, (2, 1, 1), IB)
    assert terms["serial"] == pytest.approx(sum(fixed.values()))
    assert terms["compute"] == pytest.approx(sum(per_unit[n] * net4.work[n] for n in names) / 2)
    # without the second run every timed cost is taken to shrink with the split, as before
    plain = pm.calibrate(res4, big)
    assert plain.fixed_ms == {} and pm.predict(net4, plain, (2, 1, 1), IB)[0]["serial"] == 0.0
    with pytest.raises(pm.PvmpiError, match="2 thread"):
        pm.calibrate(res4, big, (dict(res2, threads=2), half))

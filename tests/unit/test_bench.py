"""python -m pvmpi bench: it runs, reports what it promises, counts flops right, and sweeps layouts.

Behaviour only: no test asserts a timing (performance claims live in the
benchmark's own output). Configs are the demo shrunk with --set overrides.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_data import SHARED_BENCH, require

from pvmpi.data.dead_leaves import make_image_set

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "lca_demo.yaml"
BENCH_YAML = REPO / "configs" / "lca_bench.yaml"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """--set overrides that shrink the demo: 2 batch elements of 64x64, 8 dictionary elements."""
    images = make_image_set(tmp_path_factory.mktemp("images"), count=8, size=64, seed=1)
    return ["--set", "column.nbatch=2", "--set", f"Input.inputPath={images}", "--set", "V1.nf=8"]


def bench(*args, cwd=None, env=None, timeout=300):
    e = dict(os.environ)
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=e)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_report_prints_every_field(small, tmp_path):
    trace = tmp_path / "trace.csv"
    out = bench(DEMO, "--steps", 3, "--repeat", 2, "--warmup", 2, "--peak-gflops", 50, "--trace", trace,
                *small).stdout
    for text in ("time per step: median", "min", "max", "throughput:", "ms per step wall-clock", "deliver:InputErrorToV1", "deliver:V1ToInputRecon",
                 "update:V1", "halo exchange", "allreduce (dW)", "io (output files)", "probes", "other",
                 "MFLOP per step", "GFLOP/s", "% of the machine's peak 50.0", "peak RSS", "MB per rank",
                 "GB/s", "memory: ", "MB per step (compulsory traffic)",
                 "start-up to the first step: warm", "2 x 3 steps timed after 2 warm-up (each repeat from the state after it: t = 2 to 5)"):
        assert text in out, text
    with open(trace) as f:
        rows = list(csv.DictReader(f))
    # each repeat runs t = 3..5 again from the state after the warm-up
    assert [(r["step"], r["t"], r["rank"]) for r in rows] == [(str(i), str(i % 3 + 3), "0") for i in range(6)]
    for r in rows:  # the phase groups and 'other' add up to the step
        parts = sum(float(v) for k, v in r.items() if k.startswith("ms_"))
        assert parts == pytest.approx(float(r["ms"]), abs=1e-3)


def test_every_repeat_runs_the_same_steps_from_the_same_state(small, tmp_path):
    out = tmp_path / "out"
    bench(DEMO, "--steps", 3, "--repeat", 3, "--warmup", 2, "--peak-gflops", 50, "-o", out, *small)
    rows = (out / "energy_batchElement_1.txt").read_text().splitlines()[1:]
    t = [float(r.split(",")[0]) for r in rows]
    assert t == [1, 2] + [3, 4, 5] * 3
    assert rows[2:5] == rows[5:8] == rows[8:11]  # the energies too: the same state each time
    assert not (out / "bench-warm-state").exists()  # the saved state is removed with the bench


@pytest.fixture(scope="module")
def json_run(small, tmp_path_factory):
    """One --json bench of the shrunk demo; no --peak-gflops: the peak is measured (and cached in a
    private cache directory). Returns the process and that cache directory."""
    cache = tmp_path_factory.mktemp("cache")
    proc = bench(DEMO, "--json", "--steps", 5, "--repeat", 2, "--warmup", 2, *small,
                 env={"XDG_CACHE_HOME": str(cache)})
    return proc, cache


def test_json_keys_and_sane_values(json_run):
    proc, cache = json_run
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    for key in ("ms_per_step_median", "ms_per_step_min", "ms_per_step_max", "ms_per_step_wall", "steps", "ranks", "threads",
                "backend", "peak_rss_mb", "phases", "layout", "gflops", "peak_gflops", "peak_fraction",
                "startup_warm_s", "phase_groups", "gflop_per_step", "mb_per_step", "gbs", "gbs_by_phase",
                "peak_gbs", "peak_kind", "device"):
        assert key in r, key
    assert r["steps"] == 10 and r["ranks"] == 1 and r["backend"] == "numba" and r["threads"] >= 1
    assert r["layout"] == {"batchwidth": 1, "rows": 1, "columns": 1}
    assert 0 < r["ms_per_step_min"] <= r["ms_per_step_median"] <= r["ms_per_step_max"]
    assert r["ms_per_step_wall"] >= 0.9 * r["ms_per_step_min"]
    assert r["peak_rss_mb"] > 10 and r["gflops"] > 0 and r["peak_gflops"] > 0
    # the end's resident pages split into the process's own and the libraries' files; both under the peak
    assert 10 < r["rss_anonymous_mb"] and 10 < r["rss_file_mb"]
    assert r["rss_anonymous_mb"] + r["rss_file_mb"] <= r["peak_rss_mb"] * 1.01
    assert 0 < r["peak_fraction"] < 1 and r["startup_warm_s"] > 0
    assert (cache / "pvmpi" / "peak_gflops.json").is_file()
    assert all(v >= 0 for v in r["phases"].values())
    assert {"deliver:InputErrorToV1", "update:V1", "probes"} <= set(r["phases"])
    # the exclusive phase timers account for the step (what they miss is reported as 'other'): at most
    # the mean step, and most of a typical one. (Not most of the mean: on this 0.5 ms network one slow
    # step per repeat, its excess outside the timers, moves the 10-step mean by 10-40 %.)
    total = sum(r["phases"].values())
    assert 0.8 * r["ms_per_step_median"] <= total <= 1.05 * r["ms_per_step_mean"], (
        total, r["ms_per_step_median"], r["ms_per_step_mean"])
    assert r["phase_groups"]["other"] == pytest.approx(r["ms_per_step_mean"] - total, abs=1e-6)
    # compulsory traffic: at least V1's update (5 words per neuron: 0.33 MB), and well under 10 MB
    assert 0.33 < r["mb_per_step"] < 10 and r["gbs"] > 0
    assert r["gbs"] == pytest.approx(r["mb_per_step"] / r["ms_per_step_wall"], rel=0.5)  # MB/ms = GB/s
    assert {"deliver:InputErrorToV1", "update:V1"} <= set(r["gbs_by_phase"])
    assert all(v > 0 for v in r["gbs_by_phase"].values())
    assert r["peak_kind"] == "machine" and r["device"] is None and r["peak_gbs"] is None  # a CPU backend


def _fake_h100(**over):
    """A stand-in for numba.cuda's device object with an H100 SXM's attributes."""
    from types import SimpleNamespace

    attrs = dict(name=b"NVIDIA H100 80GB HBM3", compute_capability=(9, 0), MULTIPROCESSOR_COUNT=132,
                 CLOCK_RATE=1980000, MEMORY_CLOCK_RATE=2619000, GLOBAL_MEMORY_BUS_WIDTH=5120, uuid="GPU-1")
    attrs.update(over)
    return SimpleNamespace(**attrs)


def test_gpu_peak_from_device_attributes():
    from pvmpi.bench.machine import gpu_peak
    from pvmpi.bench.run import device_peaks

    p = gpu_peak(_fake_h100())
    assert p["name"] == "NVIDIA H100 80GB HBM3" and p["compute_capability"] == "9.0"
    assert p["gflops"] == pytest.approx(132 * 128 * 2 * 1.98e9 / 1e9)  # 66.9 TFLOP/s
    assert p["gbs"] == pytest.approx(2 * 2619e6 * 5120 / 8 / 1e9)  # 3352 GB/s
    assert "132 SMs x 128 FP32 cores" in p["how"] and "5120 bits" in p["how_gbs"]
    a100 = gpu_peak(_fake_h100(compute_capability=(8, 0), MULTIPROCESSOR_COUNT=108, CLOCK_RATE=1410000))
    assert a100["gflops"] == pytest.approx(108 * 64 * 2 * 1.41)  # 19.5 TFLOP/s
    unknown = gpu_peak(_fake_h100(compute_capability=(42, 1)))
    assert unknown["gflops"] is None and "42.1" in unknown["why"]
    assert unknown["gbs"] == pytest.approx(p["gbs"])  # the bandwidth does not need the table
    # ranks on one device count it once; ranks on two devices add up
    two = device_peaks([{"gpu": p}, {"gpu": dict(p)}, {"gpu": gpu_peak(_fake_h100(uuid="GPU-2"))}])
    assert two["count"] == 2 and two["gflops"] == pytest.approx(2 * p["gflops"])
    assert device_peaks([{"gpu": None}]) is None


def test_report_with_a_device_peak(json_run):
    """With a GPU the compute and memory lines compare with the device's peaks, not the CPU's."""
    from pvmpi.bench.machine import gpu_peak
    from pvmpi.bench.run import format_report, set_peaks

    r = json.loads(json_run[0].stdout)
    dev = gpu_peak(_fake_h100())
    set_peaks(r, dict(dev, count=1), {"gflops": 50.0, "how": "cpu"})
    assert r["peak_kind"] == "device" and r["peak_fraction"] == pytest.approx(r["gflops"] / dev["gflops"])
    assert r["peak_gbs_fraction"] == pytest.approx(r["gbs"] / dev["gbs"])
    out = format_report(r)
    assert "of the device's peak 66908.2 GFLOP/s (NVIDIA H100 80GB HBM3, from 132 SMs x 128 FP32 cores" in out
    assert "of the device's peak 3352.3 GB/s (NVIDIA H100 80GB HBM3, from 2 x 2619 MHz x 5120 bits / 8)" in out
    assert "machine's peak" not in out
    set_peaks(r, dict(gpu_peak(_fake_h100(compute_capability=(42, 1))), count=1), None)
    assert r["peak_fraction"] is None and "the device's peak is unknown" in format_report(r)


def test_compare_numpy_prints_a_ratio(small):
    out = bench(DEMO, "--steps", 2, "--repeat", 1, "--warmup", 1, "--compare", "numpy", "--compare-steps", 2,
                "--peak-gflops", 50, *small).stdout
    assert "numpy backend: median" in out and "numpy/numba = " in out
    r = json.loads(bench(DEMO, "--json", "--steps", 2, "--repeat", 1, "--warmup", 1, "--compare", "numpy",
                         "--compare-steps", 2, "--peak-gflops", 50, *small).stdout)
    assert r["compare"]["backend"] == "numpy" and r["compare"]["steps"] == 2 and r["compare"]["ratio"] > 0


@pytest.fixture(scope="module")
def counted(small, tmp_path_factory):
    """The shrunk demo run 9 steps (numpy) under a FlopCounter, with what it needs to check the counts:
    V1's nonzero activities summed over all steps and over the steps the dictionary learned."""
    from mpi4py import MPI

    from pvmpi import load as load_model
    from pvmpi.bench.flops import FlopCounter
    from pvmpi.kernels import get_backend
    from pvmpi.network.column import Column
    from pvmpi.parallel.comm import Comms
    from pvmpi.parallel.decomposition import Layout

    model = load_model(DEMO, [s for s in small if s != "--set"] + ["Input.displayPeriod=4"])
    with Comms(Layout(1, 1, 1), MPI.COMM_SELF) as comms:
        column = Column(model, comms, get_backend("numpy"), output_path=str(tmp_path_factory.mktemp("out")))
        column.initialize()
        counter = FlopCounter(column)
        counter.start()
        v1 = column.layers["V1"]
        conn = column.connections["V1ToInputError"]
        nnz, learned, learn_steps = 0, 0, 0
        for _ in range(9):
            w = conn.W.copy()
            column.advance()
            counter.step()
            active = int(np.count_nonzero(v1.level(0)))
            nnz += active
            if not np.array_equal(w, conn.W):
                learned += active
                learn_steps += 1
        weights = {name: int(np.prod(c.weights.shape[1:])) for name, c in column.connections.items()
                   if c.has_weights}
        column.close()
    assert learned > 0
    return {"counter": counter, "nnz": nnz, "learned": learned, "learn_steps": learn_steps, "weights": weights}


def test_flop_counts_follow_geometry_and_activity(counted):
    """Dense Φᵀe is charged nb·ny·nx·(8·8)·nf·2 per step; the sparse reconstruction and the Hebbian
    update 2·64 per nonzero V1 activity (counted here from V1's published buffer, not its active list)."""
    nnz, learned = counted["nnz"], counted["learned"]
    by = counted["counter"].per_object
    assert by["deliver:InputErrorToV1"] == 9 * 2 * 32 * 32 * 64 * 8 * 2
    assert by["deliver:V1ToInputRecon"] == 2 * 64 * nnz
    assert by["learn:V1ToInputError"] == 2 * 64 * learned
    assert by["deliver:InputToInputError"] == 9 * 2 * 64 * 64
    assert "deliver:V1ToInputError" not in by  # channel -1: learning only


def test_byte_counts_follow_geometry_and_activity(counted):
    """Compulsory traffic, float32: nb 2, Input/InputError/InputRecon 64x64x1, V1 32x32x8, one arbor;
    the dictionary (and its transpose and clone) holds 8 kernels of 8x8x1 = 512 weights."""
    c = counted["counter"]
    by = c.bytes_per_object
    nnz, learned, learn_steps = counted["nnz"], counted["learned"], counted["learn_steps"]
    assert counted["weights"] == {"V1ToInputError": 512, "InputErrorToV1": 512, "V1ToInputRecon": 512}
    img, v1 = 2 * 64 * 64, 2 * 32 * 32 * 8  # restricted neurons on the rank
    # dense transpose: read the error once, the weights once; read and write V1's GSyn
    assert by["deliver:InputErrorToV1"] == 9 * (4 * img + 4 * 512 + 8 * v1)
    # sparse reconstruction: 8 bytes per active entry, the weights; read and write the recon's GSyn
    assert by["deliver:V1ToInputRecon"] == 8 * nnz + 9 * (4 * 512 + 8 * img)
    # IdentConn: read the input, read and write the error's channel 0
    assert by["deliver:InputToInputError"] == 9 * (4 * img + 8 * img)
    # LCA: read GSyn, read and write V, write A, read the previous A: 5 words per neuron
    assert by["update:V1"] == 9 * 20 * v1
    # HyPerLayer with two channels: read both, write V, write A
    assert by["update:InputError"] == 9 * 16 * img
    # learning, on the steps it ran: V1's active entries, the error's activity, dW read and written
    assert learn_steps > 0
    assert by["learn:V1ToInputError"] == 8 * learned + learn_steps * (4 * img + 8 * 512)
    assert "deliver:V1ToInputError" not in by
    assert c.total_bytes == sum(by.values())


def test_lca_bench_yaml_is_the_params_file():
    """Same groups, classes, parameter names, order and values as ../shared/bench/LCA_bench.params."""
    from pvmpi.model.config import load_yaml
    from pvmpi.model.params import load_params
    from pvmpi.model.schema import FLT_MAX

    require(SHARED_BENCH / "LCA_bench.params", "OpenPV's benchmark folder", "PVMPI_SHARED")

    def norm(v):
        if isinstance(v, list):
            return [norm(x) for x in v]
        if v == "infinity":
            return FLT_MAX
        return float(v) if isinstance(v, (bool, int, float)) else v

    ref = load_params(SHARED_BENCH / "LCA_bench.params")
    mine = load_yaml(BENCH_YAML)
    assert [(g.name, g.cls) for g in mine.groups] == [(g.name, g.cls) for g in ref.groups]
    for a, b in zip(ref.groups, mine.groups):
        assert list(a.values) == list(b.values), a.name
        assert {k: norm(v) for k, v in a.values.items()} == {k: norm(v) for k, v in b.values.items()}, a.name


def test_lca_bench_runs_anywhere_on_pvmpis_inputs(tmp_path):
    """Without -w the bench makes the benchmark's inputs itself (a fresh clone needs nothing else);
    python -m pvmpi.data.bench_inputs makes them for a plain run."""
    proc = bench(BENCH_YAML, "--steps", 1, "--repeat", 1, "--warmup", 1, "--peak-gflops", 50, "--json",
                 cwd=tmp_path)
    assert "with pvmpi's input images" in proc.stderr
    assert json.loads(proc.stdout)["nbatch"] == 4
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    made = subprocess.run([sys.executable, "-m", "pvmpi.data.bench_inputs"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0 and (tmp_path / "input" / "imagelist.txt").read_text().count("input/images/") == 8
    proc = subprocess.run([sys.executable, "-m", "pvmpi", str(BENCH_YAML), "-n"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "V1                       HyPerLCALayer    64x64x64" in proc.stdout


def test_lca_bench_runs_in_a_copy_of_openpvs_folder(tmp_path):
    require(SHARED_BENCH / "LCA_bench.params", "OpenPV's benchmark folder", "PVMPI_SHARED")
    import shutil

    work = tmp_path / "bench"
    shutil.copytree(SHARED_BENCH, work)
    for p in [work, *work.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    # -w uses the given directory (OpenPV's images); the network's outputs go to a temporary directory
    proc = bench(BENCH_YAML, "-w", work, "--steps", 1, "--repeat", 1, "--warmup", 1, "--peak-gflops", 50,
                 "--json", cwd=tmp_path)
    assert "working directory" not in proc.stderr
    assert json.loads(proc.stdout)["nbatch"] == 4
    assert not (work / "output").exists()


def test_errors_are_one_line(small, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", str(DEMO), "--set", "V1.VTresh=1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("pvmpi: error: ") and "Traceback" not in proc.stderr  # a user error
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", "scaling", str(DEMO), "--layouts", "2,x,1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "is not B,R,C" in proc.stderr


def test_default_layouts_fit_the_network():
    from pvmpi import load as load_model
    from pvmpi.bench.scaling import default_layouts
    from pvmpi.parallel.layout import parse_layout

    model = load_model(DEMO, ["column.nbatch=2"])
    assert default_layouts(model, 2, weak=False) == [(1, 1, 1, None), (2, 1, 1, None), (1, 2, 1, None),
                                                      (1, 1, 2, None)]
    assert (1, 1, 3, None) not in default_layouts(model, 3, weak=False)  # 64 is not a multiple of 3
    assert (3, 1, 1, None) not in default_layouts(model, 3, weak=False)  # nbatch 2
    assert (3, 1, 1, None) in default_layouts(model, 3, weak=True)       # nbatch 6 at 3 ranks
    assert parse_layout("2,1,1:1", threads=True) == (2, 1, 1, 1)
    assert parse_layout("1,2,1", threads=True) == (1, 2, 1, None)


def test_scaling_sweep_writes_a_row_per_layout(small, tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", "scaling", str(DEMO), "--max-ranks", "2",
                           "--steps", "3", "--repeat", "1", "--warmup", "1", "-o", str(out), *small],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for text in ("ranks", "layout", "ms/step", "speed-up", "%halo", "%allred", "%I/O", "B=2", "R=2", "C=2"):
        assert text in proc.stdout, text
    with open(out / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["ranks"], r["batchwidth"], r["rows"], r["columns"]) for r in rows] == \
        [("1", "1", "1", "1"), ("2", "2", "1", "1"), ("2", "1", "2", "1"), ("2", "1", "1", "2")]
    assert all(r["status"] == "ok" and float(r["ms_per_step_median"]) > 0 for r in rows)
    assert float(rows[0]["speedup"]) == 1.0
    assert float(rows[2]["pct_halo"]) > 0  # a row split exchanges halos
    assert json.loads((out / "scaling.json").read_text())["rows"][1]["ranks"] == 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "scaling.png").stat().st_size > 0 and (out / "phases.png").stat().st_size > 0


def test_weak_scaling_grows_the_batch_with_the_ranks(small, tmp_path):
    out = tmp_path / "weak"
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "bench", "scaling", str(DEMO), "--weak", "--layouts",
                           "1,1,1:1", "2,1,1:1", "--steps", "2", "--repeat", "1", "--warmup", "1", "-o", str(out),
                           "--no-plots", *small], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with open(out / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["ranks"], r["nbatch"], r["threads"]) for r in rows] == [("1", "2", "1"), ("2", "4", "1")]
    assert "weak scaling" in proc.stdout and not (out / "scaling.png").exists()


def _result(threads=1, nbatch=8, wall=10.0):
    """The fields of a bench --json result that a scaling row reads."""
    from pvmpi.bench.scaling import GROUPS

    return {"status": "ok", "threads": threads, "ms_per_step_mean": wall, "steps": 10, "ms_per_step_wall": wall,
            "ms_per_step_median": wall, "ms_per_step_min": wall, "ms_per_step_max": wall, "nbatch": nbatch,
            "gflops": 1.0, "peak_rss_mb": 100.0, "phase_groups": dict.fromkeys(GROUPS, 1.0)}


def test_a_sweep_without_a_one_rank_run_reports_nan_not_a_crash(tmp_path):
    """A single layout of 2 ranks (e.g. --layouts 2,1,1): no reference, so speed-up and efficiency are NaN."""
    from pvmpi.bench.plots import plot_scaling
    from pvmpi.bench.scaling import add_speedups, format_table, row_of, write_csv

    rows = [row_of((2, 1, 1, None), _result(), 8, cores_available=2)]
    assert add_speedups(rows) is None
    assert np.isnan(rows[0]["speedup"]) and np.isnan(rows[0]["efficiency"])
    assert "nan" in format_table(rows, None, weak=False)
    write_csv(tmp_path / "s.csv", rows)
    plot_scaling(rows, tmp_path, title="t")  # NaN efficiencies are not plotted, and do not break the axes


def test_cores_are_capped_only_by_the_cores_that_ran():
    from pvmpi.bench.scaling import add_speedups, row_of

    one = row_of((1, 1, 1, None), _result(threads=1, wall=10.0), 8, cores_available=2)
    four = row_of((4, 1, 1, None), _result(threads=1, wall=5.0), 8, cores_available=2)  # oversubscribed
    assert four["cores"] == 2
    add_speedups([one, four])
    assert four["speedup"] == pytest.approx(2.0) and four["efficiency"] == pytest.approx(1.0)
    # a merge job on one CPU (SLURM collect step) must not cap a 16-rank run at 1 core
    big = row_of((16, 1, 1, None), _result(threads=2, wall=1.0), 8)
    assert big["cores"] == 32
    assert row_of((16, 1, 1, None), _result(threads=2), 8, cores_available=20)["cores"] == 20


def test_collect_scaling_uses_the_cpus_each_task_was_allocated(tmp_path, capsys):
    """slurm/scaling-*.sbatch write task.json with the task's CPUs; the merge divides by those."""
    from pvmpi.launch import collect_scaling

    for i, (b, cpus, wall) in enumerate([(1, 4, 8.0), (4, 4, 2.0)]):
        d = tmp_path / f"task-{i:03d}"
        d.mkdir()
        (d / "task.json").write_text(json.dumps({"layout": [b, 1, 1], "threads": 1, "cpus": cpus, "weak": False}))
        (d / "bench.out").write_text("pvmpi bench: note\n" + json.dumps(dict(_result(wall=wall), config="x.yaml")))
    assert collect_scaling(tmp_path) == 0
    with open(tmp_path / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["ranks"], r["cores"]) for r in rows] == [("1", "1"), ("4", "4")]
    assert float(rows[1]["efficiency"]) == pytest.approx(1.0)


def test_resident_split_sees_touched_anonymous_pages():
    """64 MB written by the process show up as anonymous resident memory, not as file-backed."""
    from pvmpi.bench import machine

    anon0, file0 = machine.resident_split_mb()
    block = np.ones(16 * 2**20, np.float32)  # 64 MiB, every page touched
    anon1, file1 = machine.resident_split_mb()
    assert 60 < anon1 - anon0 < 75 and abs(file1 - file0) < 5
    del block


def test_noisy_figures_are_flagged():
    """A baseline whose steps spread widely, or an efficiency above 1.2, gets a warning line."""
    from pvmpi.bench.scaling import noise_warnings

    quiet = {"status": "ok", "ms_per_step_min": 4.0, "ms_per_step_max": 4.4, "efficiency": 1.0}
    assert noise_warnings([quiet, {**quiet, "efficiency": 0.8}], quiet) == []
    noisy = {**quiet, "ms_per_step_max": 9.0}
    lines = noise_warnings([noisy, {**quiet, "efficiency": 20.1}], noisy)
    assert len(lines) == 2 and "machine was busy" in lines[0] and "up to 20.1" in lines[1]

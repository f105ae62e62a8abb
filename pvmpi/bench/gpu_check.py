"""The cuda backend checked on a real GPU in one prepared run: ``launch/gpu-check.sh RESULTS_DIR``.

Steps, each in a child process with its own time limit (the whole fits in 8 minutes), each reported
even when another fails: the device, driver and toolkit; the cuda backend's tests on the device;
the benchmark network and the demo on ``--backend cuda`` and ``numba``, every output file compared
(the simulator tests' tolerance); ``bench`` at nbatch 4, 16, 64 and 256 on cuda, on one CPU core
and on all cores, with kernel launches per step and their share of the step. Writes
``summary.json`` and one log per step into RESULTS_DIR. ``--simulator`` rehearses the same
steps at toy sizes in Numba's CUDA simulator (a machine without a GPU; the tests do so).
"""
import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..conformance.compare import LAYOUT_RTOL, compare_runs
from ..errors import PvmpiError
from ..parallel.launcher import mpi_info

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "configs" / "lca_bench.yaml"
DEMO = REPO / "configs" / "lca_demo.yaml"
NBATCH = (4, 16, 64, 256)
# toy sizes for the simulator, where every CUDA thread is a Python thread
TOY = ["column.nx=8", "column.ny=8", "V1.nf=8", "column.stopTime=3"]
# seconds: 480 in all, with the launch cost's 15. Compiling is most of it: the cuda kernels once per
# child process, Numba's CPU kernels once (cached in the checkout for the later children)
LIMITS = {"device": 30, "tests": 140, "outputs": 120, "bench cuda": 90, "bench numba, 1 core": 50,
          "bench numba, all cores": 35, "launch cost": 15}
CUDA_TESTS = ["tests/unit/test_cuda_kernels.py", "tests/system/test_cuda_lca.py", "tests/system/test_cuda_resident.py"]

DEVICE_INFO = r"""
import json, importlib.metadata as md
from pvmpi.kernels import get_backend
cu = get_backend("cuda")
from numba import cuda
out = {"simulator": cu.SIMULATOR}
for pkg in ("numba", "numba-cuda", "numpy", "mpi4py"):
    try:
        out[pkg] = md.version(pkg)
    except md.PackageNotFoundError:
        out[pkg] = None
if not cu.SIMULATOR:
    dev = cuda.get_current_device()
    out["name"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    out["compute_capability"] = ".".join(map(str, dev.compute_capability))
    out["multiprocessors"] = int(dev.MULTIPROCESSOR_COUNT)
    out["toolkit"] = ".".join(map(str, cuda.runtime.get_version()))
    free, total = cuda.current_context().get_memory_info()
    out["memory_gib"] = round(total / 2**30, 1)
    out["driver_cuda"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
print("JSON", json.dumps(out))
"""

LAUNCH_COST = r"""
import json, time
from numba import cuda
from pvmpi.kernels import get_backend
get_backend("cuda")
@cuda.jit
def empty(a):
    pass
a = cuda.device_array(1, dtype="f4")
empty[1, 32](a); cuda.synchronize()
n = 20 if get_backend("cuda").SIMULATOR else 5000
t0 = time.perf_counter()
for _ in range(n):
    empty[1, 32](a)
cuda.synchronize()
print("JSON", json.dumps({"launch_us": 1e6 * (time.perf_counter() - t0) / n}))
"""


class Step:
    """One step's outcome: whether it passed, its seconds and what it found (``summary.json``)."""

    def __init__(self, name):
        self.name, self.ok, self.found, self.t0, self.seconds = name, False, {}, time.perf_counter(), None

    def end(self, ok):
        """The step is over: whether it passed, and its time."""
        self.ok, self.seconds = bool(ok), round(time.perf_counter() - self.t0, 1)
        return self

    def record(self):
        """Its entry in summary.json."""
        return {"ok": self.ok, "seconds": self.seconds, **self.found}


def _log_name(name):
    return name.replace(",", "").replace(" ", "_") + ".log"


def run_child(results, name, cmd, env, limit, cwd=REPO):
    """Run cmd (a list) with a time limit; its output goes to RESULTS/<name>.log. Returns (rc, output)."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        text = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")) \
            + f"\n[gpu-check: {name} stopped at its limit of {limit} s]\n"
    (results / _log_name(name)).write_text(text)
    return rc, text


def _json_line(text):
    """The last ``JSON {...}`` or ``{...}`` line of a child's output, parsed (None if there is none)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("JSON "):
            line = line[5:]
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def _python(*args):
    return [sys.executable, *args]


def check_device(results, env):
    """Device, compute capability, toolkit, driver and package versions (a child process); the MPI library."""
    s = Step("device")
    rc, text = run_child(results, s.name, _python("-c", DEVICE_INFO), env, LIMITS[s.name])
    info = _json_line(text)
    try:
        mpi = mpi_info()
        s.found["mpi"] = f"{mpi.library_version.splitlines()[0]} ({mpi.library_path})"
    except PvmpiError as e:  # reported: every later step needs mpi4py's MPI library
        s.found["mpi"] = f"unavailable: {e}"
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        s.found["nvidia_smi"] = q.stdout.strip()
    s.found["info"] = info if info is not None else text.strip().splitlines()[-3:]
    return s.end(rc == 0 and info is not None)


def run_tests(results, env, simulator):
    """The cuda backend's tests on the device (PVMPI_CUDA_TESTS=gpu; in the simulator, its kernel tests)."""
    s = Step("tests")
    env = dict(env, PVMPI_CUDA_TESTS="sim" if simulator else "gpu")
    # the rehearsal: a few of them (the whole files run in the simulator in CI already)
    tests = [CUDA_TESTS[0], "-k", "contract or signatures or active_list"] if simulator else CUDA_TESTS
    rc, text = run_child(results, s.name, _python("-m", "pytest", "-q", "-p", "no:cacheprovider", *tests),
                         env, LIMITS[s.name])
    tail = [line for line in text.strip().splitlines() if " passed" in line or " failed" in line or "error" in line]
    s.found["summary"] = tail[-1] if tail else text.strip().splitlines()[-1:]
    return s.end(rc == 0)


def _run_network(results, name, config, backend, out, sets, env, limit, cwd):
    cmd = _python("-m", "pvmpi", str(config), "--backend", backend, "-o", str(out), "-q", "--overwrite",
                  *[a for kv in sets for a in ("--set", kv)])
    return run_child(results, f"run {name} {backend}", cmd, env, limit, cwd=cwd)


def compare_outputs(results, env, simulator, work):
    """The benchmark network (its 200 steps) and the demo (cut to 200 steps) on numba and cuda."""
    s = Step("outputs")
    from ..data.bench_inputs import make_bench_inputs
    from ..data.dead_leaves import main as dead_leaves

    make_bench_inputs(work)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the list's path
        dead_leaves([str(work / "demo_data"), "--count", "64", "--size", "64", "--seed", "1"])
    toy = TOY + ["column.nbatch=1"] if simulator else []
    networks = {"bench": (BENCH, toy), "demo": (DEMO, (toy or []) + ([] if simulator else ["column.stopTime=200"]))}
    deadline = time.perf_counter() + LIMITS[s.name]
    ok = True
    for name, (config, sets) in networks.items():
        dirs, failed = {}, False
        for backend in ("numba", "cuda"):
            left = max(1, int(deadline - time.perf_counter()))
            dirs[backend] = work / f"{name}_{backend}"
            rc, _ = _run_network(results, name, config, backend, dirs[backend], sets, env, left, work)
            failed |= rc != 0
        if failed:
            s.found[name] = {"agree": False, "problems": [f"a run failed: see run_{name}_*.log"]}
            ok = False
            continue
        d = compare_runs(dirs["numba"], dirs["cuda"], rtol=LAYOUT_RTOL)
        s.found[name] = {"agree": not d.problems, "files": len(list(dirs["numba"].rglob("*.*"))),
                         "worst_relative": {k: float(f"{v:.3g}") for k, v in d.worst.items()},
                         "problems": d.problems[:20]}
        ok &= not d.problems
    s.found["rtol"] = LAYOUT_RTOL
    return s.end(ok)


def sweep(argv):
    """Child: ``bench --json`` at each nbatch in this process (compiled kernels reused); JSON lines."""
    p = argparse.ArgumentParser(prog="python -m pvmpi.bench.gpu_check sweep")
    p.add_argument("--backend", required=True)
    p.add_argument("--threads", default="1")
    p.add_argument("--nbatch", required=True)
    p.add_argument("--steps", default="20")
    p.add_argument("--warmup", default="3")
    p.add_argument("--repeat", default="3")
    p.add_argument("--set", action="append", default=[])
    a = p.parse_args(argv)
    from .run import main as bench

    here = os.getcwd()
    for nb in a.nbatch.split(","):
        sets = [x for kv in a.set + [f"column.nbatch={nb}"] for x in ("--set", kv)]
        bench([str(BENCH), "--backend", a.backend, "-t", a.threads, "--json", "--steps", a.steps, "--repeat", a.repeat,
               "--warmup", a.warmup, *sets])
        os.chdir(here)  # the bench worked in a folder it has removed
    return 0


def run_benches(results, env, simulator):
    """bench on cuda, on one CPU core and on all cores, at each nbatch; the launch cost on the device."""
    steps = []
    nbatch = "1,2" if simulator else ",".join(map(str, NBATCH))
    extra = [a for kv in TOY[:3] for a in ("--set", kv)] + ["--warmup", "1", "--repeat", "1"] if simulator else []
    cores = str(os.cpu_count() or 1)
    table = {}
    for name, backend, threads, n in (("bench cuda", "cuda", "1", "1" if simulator else "50"),
                                      ("bench numba, 1 core", "numba", "1", "1" if simulator else "20"),
                                      ("bench numba, all cores", "numba", cores, "1" if simulator else "20")):
        s = Step(name)
        cmd = _python("-m", "pvmpi.bench.gpu_check", "sweep", "--backend", backend, "--threads", threads,
                      "--nbatch", nbatch, "--steps", n, *extra)
        child_env = dict(env, NUMBA_NUM_THREADS=threads)
        rc, text = run_child(results, name, cmd, child_env, LIMITS[name])
        rows = [r for r in (_json_line(line) for line in text.splitlines() if line.startswith("{")) if r]
        table[name] = {r["nbatch"]: {"ms_per_step": r["ms_per_step_wall"],
                                     "image_steps_per_s": r["nbatch"] * 1e3 / r["ms_per_step_wall"],
                                     "launches_per_step": r.get("kernel_launches_per_step"),
                                     "allocations_per_step": r.get("device_allocations_per_step"),
                                     "host_waits_per_step": r.get("host_waits_per_step"),
                                     "threads": r["threads"]} for r in rows}
        s.found["rows"] = table[name]
        steps.append(s.end(rc == 0 and len(rows) == len(nbatch.split(","))))
    rc, text = run_child(results, "launch cost", _python("-c", LAUNCH_COST), env, LIMITS["launch cost"])
    cost = _json_line(text) or {}
    return steps, table, cost.get("launch_us")


def figures(table, launch_us):
    """Per nbatch: image-steps/s, cuda over one core and over all cores, the launches' share of a step."""
    cuda, one, every = (table.get(k, {}) for k in ("bench cuda", "bench numba, 1 core", "bench numba, all cores"))
    out = {}
    for nb, r in sorted(cuda.items()):
        row = {"cuda_ms_per_step": r["ms_per_step"], "cuda_image_steps_per_s": r["image_steps_per_s"],
               "launches_per_step": r["launches_per_step"], "host_waits_per_step": r.get("host_waits_per_step")}
        if nb in one:
            row["vs_one_core"] = one[nb]["ms_per_step"] / r["ms_per_step"]
        if nb in every:
            row["vs_all_cores"] = every[nb]["ms_per_step"] / r["ms_per_step"]
        if launch_us is not None and r["launches_per_step"] is not None:
            row["launch_share"] = r["launches_per_step"] * launch_us * 1e-3 / r["ms_per_step"]
        out[nb] = row
    return out


def main(argv=None):
    """launch/gpu-check.sh: every step, summary.json, a table; exit 1 if a step failed."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:
        return sweep(argv[1:])
    p = argparse.ArgumentParser(prog="launch/gpu-check.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="folder for summary.json and the logs (made if missing)")
    p.add_argument("--simulator", action="store_true", help="rehearse at toy sizes in Numba's CUDA simulator")
    a = p.parse_args(argv)
    results = Path(a.results).resolve()
    results.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + [x for x in [os.environ.get("PYTHONPATH")] if x]))
    if a.simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    work = results / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    t0 = time.perf_counter()
    steps = [check_device(results, env), run_tests(results, env, a.simulator),
             compare_outputs(results, env, a.simulator, work)]
    bench_steps, table, launch_us = run_benches(results, env, a.simulator)
    steps += bench_steps
    shutil.rmtree(work, ignore_errors=True)
    summary = {"simulator": a.simulator, "seconds": round(time.perf_counter() - t0, 1),
               "ok": all(s.ok for s in steps), "steps": {s.name: s.record() for s in steps},
               "launch_us": launch_us, "figures": figures(table, launch_us)}
    (results / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"gpu-check: device {json.dumps(steps[0].found)}")
    for s in steps:
        print(f"gpu-check: {s.name:<24} {'ok' if s.ok else 'FAILED'} ({s.record()['seconds']} s)")
    for nb, r in summary["figures"].items():
        ratios = " ".join(f"{k} {r[k]:.1f}x" for k in ("vs_one_core", "vs_all_cores") if k in r)
        share = f", launches {100 * r['launch_share']:.0f} % of the step" if "launch_share" in r else ""
        print(f"gpu-check: nbatch {nb:>4}: cuda {r['cuda_ms_per_step']:.3f} ms/step, "
              f"{r['cuda_image_steps_per_s']:.0f} image-steps/s, {ratios}{share}")
    print(f"gpu-check: summary in {results / 'summary.json'} ({summary['seconds']} s)")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""What the bench needs to know about the machine and its surroundings.

* The machine's peak: float32 GEMM GFLOP/s of numpy's BLAS, measured once in
  a fresh process (so this process's thread settings and an MPI job's busy
  ranks cannot skew it) and cached per host, because a bench run divides by
  it every time and measuring costs a second or two.
* A GPU's peak (:func:`gpu_peak`): float32 GFLOP/s and memory GB/s from the
  device's attributes (SMs, FP32 cores per SM of its compute capability,
  clocks, bus width), nothing measured.
* Peak resident memory of this process.
* Which configs are the benchmark network (run in a folder with its inputs).
* A clean environment for child processes started from inside an MPI job:
  without the launcher's PMI variables a child Python starts as its own
  one-rank MPI job instead of trying to join the parent's.
"""
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

PEAK_N = 1536  # square float32 GEMM: 7 GFLOP, a fraction of a second on one core

_PEAK_SCRIPT = """
import json, sys, time
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
c = np.empty((n, n), np.float32)
np.matmul(a, b, out=c)
best = float("inf")
for _ in range(10):
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"gflops": 2.0 * n ** 3 / best / 1e9}))
"""

_MPI_ENV_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "HYDI_", "MPIR_", "MPI_LOCAL", "OMPI_", "ORTE_", "I_MPI_")
_USER_SETTINGS = ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")


def clean_env(**extra):
    """os.environ without the MPI launcher's per-job variables (a user's own settings stay), plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_MPI_ENV_PREFIXES) or k in _USER_SETTINGS}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def peak_rss_mb():
    """Peak resident set size of this process in MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e6 if sys.platform == "darwin" else rss * 1024 / 1e6


def resident_split_mb():
    """This process's resident memory now as (anonymous, file-backed) MB, or None off Linux.

    Anonymous pages are the process's own (heap, arrays, JIT-compiled code);
    file-backed ones are mostly the code of shared libraries (LLVM's alone is
    40-70 MB), which the page cache shares between the ranks of a node. Peak
    RSS counts both, so it overstates what each extra rank costs.
    """
    kb = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:  # "Name:   123 kB" (the first line names the address range)
                name, _, rest = line.partition(":")
                value = rest.split()
                if len(value) == 2 and value[1] == "kB" and value[0].isdigit():
                    kb[name] = int(value[0])
    except OSError:
        return None
    if "Rss" not in kb or "Anonymous" not in kb:
        return None
    return kb["Anonymous"] * 1024 / 1e6, (kb["Rss"] - kb["Anonymous"]) * 1024 / 1e6


def cpu_count():
    """Cores this process may run on (its affinity mask where the OS has one), not all of the node's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cache_file():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pvmpi" / "peak_gflops.json"


def _peak_key():
    import numpy as np

    return f"{platform.node()}|{cpu_count()} cpus|{platform.machine()}|numpy {np.__version__}|n {PEAK_N}"


def _measure(threads):
    """GEMM GFLOP/s of a fresh Python using ``threads`` BLAS threads."""
    env = clean_env(**{v: threads for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(PEAK_N)], capture_output=True,
                         text=True, env=env, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["gflops"]


def peak_gflops(remeasure=False):
    """``{"gflops": all cores, "gflops_1thread": one core, "how": ...}``, measured once per host and cached."""
    path = _cache_file()
    key = _peak_key()
    cached = None
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") != key:
            cached = None
    except (OSError, ValueError):
        pass
    if cached is not None and not remeasure:
        return cached
    cores = cpu_count()
    one = _measure(1)
    # On a shared machine other jobs only ever lower a measurement: keep the best seen, and
    # "all cores" never counts below one core.
    many = max(_measure(cores), one)
    if cached is not None:
        one = max(one, cached.get("gflops_1thread") or 0)
        many = max(many, cached.get("gflops") or 0)
    result = {"key": key, "gflops": many, "gflops_1thread": one, "cores": cores,
              "how": f"float32 GEMM {PEAK_N}x{PEAK_N} with numpy's BLAS, best of 10, all {cores} cores "
                     f"(and 1 thread), measured once on this host (best kept) and cached in {path}"}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, path)
    except OSError:
        pass
    return result


# ------------------------------------------------------------------ GPU
# FP32 cores (float32 FMA lanes) per SM by compute capability: the CUDA C Programming Guide's
# table of arithmetic throughput (32-bit floating-point add, multiply, multiply-add per clock per SM).
FP32_CORES_PER_SM = {
    (5, 0): 128, (5, 2): 128, (5, 3): 128,
    (6, 0): 64, (6, 1): 128, (6, 2): 128,
    (7, 0): 64, (7, 2): 64, (7, 5): 64,
    (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
    (9, 0): 128,
}


def cuda_simulated():
    """Whether numba.cuda runs in its simulator (no real device: no device peak)."""
    try:
        from numba.cuda.core import config as cuda_config
    except ImportError:  # older numba-cuda, or numba's own cuda target
        from numba import config as cuda_config
    return bool(getattr(cuda_config, "ENABLE_CUDASIM", 0))


def _attr(device, name):
    """An integer device attribute, 0 when the driver cannot report it."""
    try:
        return int(getattr(device, name))
    except Exception:  # noqa: BLE001 -- a driver without the attribute: unknown
        return 0


def gpu_peak(device):
    """The float32 peak and memory bandwidth of a Numba CUDA device, from its attributes.

    ``gflops`` = MULTIPROCESSOR_COUNT x FP32 cores per SM (by compute capability,
    :data:`FP32_CORES_PER_SM`) x 2 (a multiply-add) x CLOCK_RATE; ``gbs`` =
    2 (double data rate) x MEMORY_CLOCK_RATE x GLOBAL_MEMORY_BUS_WIDTH / 8. A
    figure the attributes cannot give (a capability not in the table, a clock
    the driver does not report) is None, with ``why``. ``device`` is
    ``numba.cuda.get_current_device()`` or anything with those attributes.
    """
    name = getattr(device, "name", "GPU")
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    cc = tuple(int(v) for v in device.compute_capability)
    sms = _attr(device, "MULTIPROCESSOR_COUNT")
    clock_khz = _attr(device, "CLOCK_RATE")
    mem_khz = _attr(device, "MEMORY_CLOCK_RATE")
    bus_bits = _attr(device, "GLOBAL_MEMORY_BUS_WIDTH")
    cores = FP32_CORES_PER_SM.get(cc)
    ccs = f"{cc[0]}.{cc[1]}"
    out = {"name": str(name), "compute_capability": ccs, "sms": sms, "fp32_cores_per_sm": cores,
           "clock_mhz": clock_khz / 1e3, "memory_clock_mhz": mem_khz / 1e3, "bus_bits": bus_bits,
           "uuid": getattr(device, "uuid", None), "gflops": None, "gbs": None, "why": None}
    if cores is None:
        out["why"] = f"no FP32 cores-per-SM entry for compute capability {ccs}"
    elif sms <= 0 or clock_khz <= 0:
        out["why"] = "the driver does not report the SM count or the clock"
    else:
        out["gflops"] = sms * cores * 2 * clock_khz * 1e3 / 1e9
        out["how"] = (f"{name}, from {sms} SMs x {cores} FP32 cores (cc {ccs}) x 2 flops x "
                      f"{clock_khz / 1e6:.3f} GHz")
    if mem_khz > 0 and bus_bits > 0:
        out["gbs"] = 2 * mem_khz * 1e3 * bus_bits / 8 / 1e9
        out["how_gbs"] = f"{name}, from 2 x {mem_khz / 1e3:.0f} MHz x {bus_bits} bits / 8"
    return out


# ------------------------------------------------------------------ working directory
def needs_bench_inputs(config):
    """The benchmark network, whose relative paths name ``input/imagelist.txt``."""
    return Path(config).name in ("lca_bench.yaml", "LCA_bench.params")



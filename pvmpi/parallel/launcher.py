"""The MPI launcher that belongs to mpi4py's MPI: which MPI that is, where its ``mpiexec`` is,
and whether a launcher found belongs to it (a launcher of another MPI would start N unrelated
one-rank jobs). The MPI library is probed in a subprocess: nothing here starts MPI."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pvmpi.errors import PvmpiError

VENDOR_NAMES = {"mpich": "MPICH", "mvapich": "MVAPICH", "intel": "Intel MPI", "cray": "Cray MPICH",
                "openmpi": "Open MPI", "unknown": "an unknown MPI"}


def library_vendor(text):
    """Vendor of an MPI library from its ``MPI_Get_library_version`` string."""
    t = text.lower()
    if "open mpi" in t:
        return "openmpi"
    if "intel(r) mpi" in t or "intel mpi" in t:
        return "intel"
    if "mvapich" in t:
        return "mvapich"
    if "cray mpich" in t:
        return "cray"
    if "mpich" in t:
        return "mpich"
    return "unknown"


def launcher_vendors(text):
    """The MPI libraries a launcher serves, from its ``--version`` output (empty set: unknown)."""
    t = text.lower()
    if "open mpi" in t or "open-mpi" in t or "openrte" in t or "prrte" in t:
        return {"openmpi"}
    if "intel(r) mpi" in t:
        return {"intel"}
    if "mvapich" in t:
        return {"mvapich"}
    if "hydra" in t:  # MPICH's process manager, also MVAPICH's mpiexec
        return {"mpich", "mvapich"}
    return set()


def _version_in(text):
    import re

    m = re.search(r"version:?\s*v?(\d+(?:\.\d+)+)", text, re.IGNORECASE) or \
        re.search(r"\b(?:mpi|mpich|mpiexec|mpirun)\b[^\n\d]*v?(\d+(?:\.\d+)+)", text, re.IGNORECASE)
    return m.group(1) if m else None


@dataclass
class MPIInfo:
    """The MPI that mpi4py under ``python`` loads: vendor, version and library (see :func:`mpi_info`)."""

    python: str
    vendor: str
    version: str
    library_version: str
    library_path: str = None
    mpi4py_version: str = None

    @property
    def name(self):
        v = f" {self.version}" if self.version else ""
        return f"{VENDOR_NAMES.get(self.vendor, self.vendor)}{v}"


_PROBE = r"""
import json, os, sys
try:
    import mpi4py
except ImportError:
    print(json.dumps({"error": "mpi4py is not installed"})); sys.exit(0)
mpi4py.rc.initialize = False
mpi4py.rc.finalize = False
from mpi4py import MPI
lib = None
try:
    for line in open("/proc/self/maps"):
        parts = line.split()
        if len(parts) >= 6 and os.path.basename(parts[-1]).startswith(("libmpi.so", "libmpich.so", "libmpi_")):
            lib = parts[-1]
            break
except OSError:
    pass
print(json.dumps({"library_version": MPI.Get_library_version(), "library_path": lib,
                  "mpi4py": mpi4py.__version__}))
"""


def mpi_info(python=None):
    """The MPI library that mpi4py loads under ``python`` (probed in a subprocess, MPI not started)."""
    python = python or sys.executable
    try:
        proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False)
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        raise PvmpiError(f"could not ask {python} for its MPI library (mpi4py)",
                         hint="run launch/setup.sh, or give --python PATH of the Python that has mpi4py") from None
    if "error" in data:
        raise PvmpiError(f"{data['error']} for {python}", hint="run launch/setup.sh (pip install mpi4py mpich)")
    text = data["library_version"]
    return MPIInfo(python=python, vendor=library_vendor(text), version=_version_in(text) or "",
                   library_version=text, library_path=data.get("library_path"),
                   mpi4py_version=data.get("mpi4py"))


def launcher_version(path):
    """``mpiexec --version`` output ('' when it cannot tell)."""
    try:
        proc = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (proc.stdout or "") + (proc.stderr or "")


def mpiexec_candidates(info):
    """Where the launcher of mpi4py's MPI may be, most likely first (duplicates removed)."""
    seen, out = set(), []

    def add(p):
        if p is None:
            return
        p = Path(p)
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen and p.is_file() and os.access(p, os.X_OK):
            seen.add(key)
            out.append(str(p))

    for name in ("mpiexec", "mpirun"):
        add(Path(info.python).parent / name)  # beside the Python (a venv's bin/, as the pip MPI wheels do)
    if info.library_path:  # <prefix>/lib/libmpi.so -> <prefix>/bin/mpiexec
        for name in ("mpiexec", "mpirun"):
            add(Path(info.library_path).parent.parent / "bin" / name)
    for name in ("mpiexec", "mpirun"):
        add(shutil.which(name))
    return out


def check_launcher(path, info):
    """Raise PvmpiError unless ``path`` is a launcher of ``info``'s MPI; returns a note (or None)."""
    text = launcher_version(path)
    serves = launcher_vendors(text)
    if info.vendor not in serves:
        what = " or ".join(sorted(VENDOR_NAMES[v] for v in serves)) if serves else "an MPI it does not name"
        first = text.strip().splitlines()[0] if text.strip() else "no --version output"
        raise PvmpiError(f"{path} is the launcher of {what} ({first}), but mpi4py under {info.python} uses "
                         f"{info.name}: it would start unrelated one-rank jobs or fail",
                         hint=f"use the mpiexec of {info.name} (beside {info.library_path or 'its library'}), "
                              "or srun inside a SLURM allocation")
    version = _version_in(text)
    if version and info.version and version != info.version and info.vendor in ("mpich", "openmpi"):
        return f"{path} is version {version}, the library {info.version}: same MPI, other release"
    return None


def find_mpiexec(info, given=None):
    """The checked mpiexec for mpi4py's MPI: ``given`` or the first matching candidate; (path, notes)."""
    if given:
        path = shutil.which(given) or given
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise PvmpiError(f"{given}: no such launcher", param="--mpiexec")
        note = check_launcher(path, info)
        return path, [note] if note else []
    refused = []
    for path in mpiexec_candidates(info):
        try:
            note = check_launcher(path, info)
        except PvmpiError as e:
            refused.append(e.what)
            continue
        return path, ([note] if note else []) + [f"refused {r}" for r in refused]
    raise PvmpiError(f"no mpiexec of {info.name} (the MPI of mpi4py under {info.python}) was found"
                     + ("; refused: " + "; ".join(refused) if refused else ""),
                     hint="install pvmpi's MPI with launch/setup.sh (its mpiexec lands beside the Python), "
                          "give --mpiexec PATH, or use --launcher srun in a SLURM allocation")


def mpiexec_path(given=None):
    """The mpiexec of the MPI installed with this Python (or the one given), never one found on PATH."""
    exe = Path(given) if given else Path(sys.executable).parent / "mpiexec"
    if not exe.exists():
        raise PvmpiError(f"{exe} not found: the MPI launcher belongs beside this Python",
                         hint="install pvmpi with launch/setup.sh (the mpich wheel puts mpiexec in .venv/bin), "
                              "or name your MPI's launcher with --mpiexec PATH")
    return str(exe)

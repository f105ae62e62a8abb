"""Run one params file through OpenPV and through pvmpi, each in a scratch copy of its folder.

OpenPV is found through ``PVMPI_OPENPV`` (the path of a ``pvrun`` that runs
OpenPV as one process, as ``pvrun -p X.params -t 1``). Both runs start from a
copy of the case folder, so a test's own files stay untouched and the two
runs cannot see each other's outputs.
"""
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PvmpiError

ENV = "PVMPI_OPENPV"
# Open MPI as one process: its defaults probe the ucx/cm messaging layers and close the ofi
# transport with a one-second sleep, ~2 s of a run; ob1 over self needs neither (0.1 s).
ONE_PROCESS_MCA = {"OMPI_MCA_pml": "ob1", "OMPI_MCA_btl": "^ofi", "OMPI_MCA_mtl": "^ofi", "OMPI_MCA_osc": "^ucx"}


def openpv_binary():
    """The ``pvrun`` named by PVMPI_OPENPV, or None when unset; an error when it names nothing."""
    path = os.environ.get(ENV)
    if not path:
        return None
    if not os.access(path, os.X_OK):
        raise PvmpiError(f"{ENV}={path} is not an executable file", hint="point it at OpenPV's pvrun")
    return str(Path(path).resolve())


@dataclass(frozen=True)
class Step:
    """One run of OpenPV's test: a params file relative to the case folder, the command-line
    arguments the test gives it, whether the test expects the run to fail, what the test does to
    the folder before it (``("copy"|"move", src, dest)``, ``("remove", path)``), and arguments
    pvmpi needs beside OpenPV's where it differs on purpose (``--overwrite``)."""

    params: str
    args: tuple = ()
    fails: bool = False
    before: tuple = ()
    pvmpi_args: tuple = ()

    @property
    def name(self):
        return self.params + (" " + " ".join(self.args) if self.args else "")


@dataclass(frozen=True)
class Case:
    """What OpenPV's test runs in a case folder (holding ``input/``): one run, or a chain of
    runs in the same folder, each starting where the earlier ones left their files."""

    folder: Path
    steps: tuple
    not_run: str = ""  # why OpenPV's tests never run it, when they do not

    @classmethod
    def single(cls, folder, params, *args):
        """A case of one run of ``params`` (relative to ``folder``) with ``args``."""
        return cls(Path(folder), (Step(params, tuple(args)),))

    @property
    def params(self):
        """The params file of the first run."""
        return self.steps[0].params

    @property
    def name(self):
        return f"{self.folder.name}/" + " → ".join(s.name + (" (fails)" if s.fails else "")
                                                     for s in self.steps)


@dataclass
class Run:
    """Where a run wrote, how it ended, and what it printed."""

    folder: Path
    returncode: int
    log: str = field(repr=False)

    @property
    def error(self):
        """pvmpi's one-line error (``pvmpi: error: ...``), or the log's last line."""
        lines = [ln for ln in self.log.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("pvmpi: error:")]
        return (errors[-1][len("pvmpi: error:"):].strip() if errors else lines[-1] if lines else "")


_GROUP = re.compile(r'\b([A-Za-z_]\w*)(\s+"[^"]*"\s*=\s*\{)([^{}]*)(\}\s*;)')
_WRITE_STEP = re.compile(r"\bwriteStep\s*=\s*[^;]*;")
_COMMENT = re.compile(r'"[^"\n]*"|/[^\n]*')


def every_layer_written(text):
    """Params text in which every layer group writes its output at every step (writeStep = 1).

    Many OpenPV tests check a layer only in C++ and never write it; the comparison sees what
    both programs write, so the scratch copies of both runs write every layer. Comments (any
    ``/`` outside quotes) are left as they are."""
    from ..model.schema import CLASSES, is_a

    masked = _COMMENT.sub(lambda m: m.group() if m.group().startswith('"') else " " * len(m.group()), text)
    out, last = [], 0
    for m in _GROUP.finditer(masked):
        cls, body = m.group(1), m.group(3)
        if cls not in CLASSES or not is_a(cls, "BaseLayer") or "#include" in body:
            continue
        start = m.start(3)
        step = _WRITE_STEP.search(body)
        if step:
            out += [text[last:start + step.start()], "writeStep = 1;"]
            last = start + step.end()
        else:
            out += [text[last:start], "\n    writeStep = 1;"]
            last = start
    return "".join(out) + text[last:]


def scratch(case, where, label):
    """A fresh copy of the case folder under ``where`` (writable), named by ``label``, whose params
    files write every layer (:func:`every_layer_written`)."""
    dest = Path(where) / label / case.folder.name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(case.folder, dest, ignore=shutil.ignore_patterns("output*", "Checkpoints"))
    for p in [dest, *dest.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    for params in {dest / s.params for s in case.steps}:
        if params.is_file():  # not a params file an earlier run writes
            params.write_text(every_layer_written(params.read_text(errors="replace")))
    return dest


def prepare(folder, step):
    """Do to a scratch folder what OpenPV's test does before ``step`` (copy, move, remove)."""
    for action, *paths in step.before:
        src = Path(folder) / paths[0]
        if action == "remove":
            shutil.rmtree(src, ignore_errors=True)
            continue
        dest = Path(folder) / paths[1]
        shutil.rmtree(dest, ignore_errors=True)  # the test removes an earlier copy first
        (shutil.copytree if action == "copy" else shutil.move)(src, dest)


def _run(command, cwd, timeout, env=None):
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Run(Path(cwd), -1, f"timed out after {timeout} s")
    return Run(Path(cwd), proc.returncode, proc.stdout + proc.stderr)


def openpv_env():
    """The environment OpenPV runs in: this one, with Open MPI set for one process where it says nothing."""
    return {**ONE_PROCESS_MCA, **os.environ}


def run_openpv(binary, folder, step, timeout=300):
    """OpenPV on one thread: one run of a case in its scratch ``folder``."""
    prepare(folder, step)
    return _run([binary, "-p", step.params, "-t", "1", *step.args], folder, timeout, openpv_env())


def run_pvmpi(folder, step, timeout=300):
    """pvmpi on one rank (OpenPV's command line): one run of a case in its scratch ``folder``."""
    prepare(folder, step)
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pvmpi", "-p", step.params, *step.args, *step.pvmpi_args]
    return _run(command, folder, timeout, env)

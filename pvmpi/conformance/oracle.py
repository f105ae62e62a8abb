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


def openpv_binary():
    """The ``pvrun`` named by PVMPI_OPENPV, or None when unset; an error when it names nothing."""
    path = os.environ.get(ENV)
    if not path:
        return None
    if not os.access(path, os.X_OK):
        raise PvmpiError(f"{ENV}={path} is not an executable file", hint="point it at OpenPV's pvrun")
    return str(Path(path).resolve())


@dataclass(frozen=True)
class Case:
    """One OpenPV run: a case folder (holding ``input/``), its params file relative to it, and
    the command-line arguments OpenPV's test gives it."""

    folder: Path
    params: str
    args: tuple = ()

    @property
    def name(self):
        return f"{self.folder.name}/{self.params}" + (" " + " ".join(self.args) if self.args else "")


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
    file writes every layer (:func:`every_layer_written`)."""
    dest = Path(where) / label / case.folder.name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(case.folder, dest, ignore=shutil.ignore_patterns("output*", "Checkpoints"))
    for p in [dest, *dest.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    params = dest / case.params
    params.write_text(every_layer_written(params.read_text(errors="replace")))
    return dest


def _run(command, cwd, timeout, env=None):
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Run(Path(cwd), -1, f"timed out after {timeout} s")
    return Run(Path(cwd), proc.returncode, proc.stdout + proc.stderr)


def run_openpv(binary, case, where, timeout=300):
    """OpenPV on one thread in a scratch copy of the case folder."""
    folder = scratch(case, where, "openpv")
    return _run([binary, "-p", case.params, "-t", "1", *case.args], folder, timeout)


def run_pvmpi(case, where, timeout=300):
    """pvmpi on one rank (OpenPV's command line) in a scratch copy of the case folder."""
    folder = scratch(case, where, "pvmpi")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return _run([sys.executable, "-m", "pvmpi", "-p", case.params, *case.args], folder, timeout, env)

"""Issue #21's fault trials as one set: ``python tests/faults/trials.py [--quick] [--json FILE]``.

Each trial runs pvmpi as a user would, in its own folder, and ends in exactly one outcome (clean, lost
data, traceback, hang, unclear); a table per class and the totals are printed; exit 1 unless all are clean.
"""
import argparse
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "system")]  # tests/ and tests/system: their helpers

from procs import ranks_of  # noqa: E402
from running import MPIEXEC, mpi_command  # noqa: E402
from test_bad_inputs import CASES, NET_PARAMS, NET_YAML, UNDER_MPI, with_output, write_images, yaml_case  # noqa: E402
from test_guard import NET as GUARD_NET  # noqa: E402
from test_machine_faults import FAULTY  # noqa: E402
from test_mpi_errors import DEMO, test_bad_layout_fails_fast_with_one_message, tiny_net  # noqa: E402
from test_no_lost_outputs import CHECKPOINTS, tamper  # noqa: E402
from test_no_lost_outputs import net as written_net  # noqa: E402

OUTCOMES = ("clean", "lost data", "traceback", "hang", "unclear")
MANIFEST = "checksums.sha256"  # the list of a checkpoint's files and their SHA-256
ERROR_LINE = re.compile(r"^pvmpi(-launch)?: error: ")
CRASH = (134, 137, 139)  # abort, SIGKILL (the out-of-memory killer), segfault, as a launcher reports them
BAD_LAYOUTS = next(m.args[1] for m in test_bad_layout_fails_fast_with_one_message.pytestmark
                   if m.name == "parametrize")


class SetupFailed(Exception):
    """A trial's earlier steps (an earlier run, a signalled run) did not end as they should."""


@dataclass
class Trial:
    """One fault: ``make(d)`` writes its files (earlier runs included) and returns pvmpi's arguments."""
    group: str
    name: str
    make: object
    expect: tuple = ()  # substrings of the error line (else of stdout + stderr) naming the culprit
    status: object = "error"  # "error" (non-zero, one error line), 0, 130, or "pipe" (0 quietly, or one error line)
    ranks: int = 0  # 0: python -m pvmpi; n: under mpiexec -n n (tests/running.py)
    start: tuple = ("-m", "pvmpi")
    signal: tuple = None  # (signal, glob of d to wait for, "pid" | "group" | "ranks")
    pipe: str = None  # a shell pipeline after the command (``| head -2``)
    changes: tuple = ()  # folders of d whose earlier files a successful run may rewrite
    fsize: int = None  # a file size limit (bytes): writes past it fail as on a full disk (EFBIG)
    verify: object = None  # verify(d, proc) -> a problem, or None
    timeout: float = 90

    def with_args(self, *extra):
        """This trial with ``extra`` arguments after its own."""
        make = self.make
        self.make = lambda d: list(make(d)) + list(extra)
        return self


# ------------------------------------------------------------------ running


def command(t, argv):
    """The trial's command line (a list; a shell string with a pipe)."""
    if t.ranks:
        cmd = mpi_command(t.ranks, *t.start, *argv)
    else:
        cmd = [sys.executable, *t.start, *argv]
    if t.pipe:
        return "set -o pipefail; " + shlex.join(cmd) + " " + t.pipe
    return cmd


def limited(fsize):
    """A preexec function: files may not grow past ``fsize`` bytes (SIGXFSZ ignored: write fails)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply if fsize else None


def launch(t, d, argv):
    """Start the trial's command in ``d``; the Popen."""
    cmd = command(t, argv)
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=d, shell=isinstance(cmd, str), env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=limited(t.fsize),
                            executable="/bin/bash" if isinstance(cmd, str) else None)


def send_signal(t, d, proc):
    """Wait until ``d`` holds the trial's glob (the run is under way), then signal it as a user would."""
    sig, pattern, target = t.signal
    deadline = time.time() + t.timeout / 2
    while not list(d.glob(pattern)):
        if proc.poll() is not None or time.time() > deadline:
            return
        time.sleep(0.02)
    time.sleep(0.2)
    if target == "group":  # Ctrl-C in a terminal: the whole foreground group
        os.killpg(proc.pid, sig)
    elif target == "ranks":  # a batch system signalling every task
        for pid in ranks_of(d, MPIEXEC, exclude=(proc.pid,)):
            os.kill(pid, sig)
    else:
        proc.send_signal(sig)


def execute(t, d, argv):
    """Run the trial's command to its end; the finished Popen (stdout, stderr), or None on a hang."""
    proc = launch(t, d, argv)
    if t.signal:
        send_signal(t, d, proc)
    try:
        proc.stdout_text, proc.stderr_text = proc.communicate(timeout=t.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return proc


def snapshot(d):
    """{relative path: bytes} of every file in ``d``."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def pvmpi(d, *args, ok=True, timeout=90):
    """An earlier run of pvmpi in ``d`` (part of a trial's setup); must succeed unless ``ok`` is False."""
    proc = subprocess.run([sys.executable, "-m", "pvmpi", *map(str, args)], cwd=d, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, NUMBA_NUM_THREADS="1"))
    if ok and proc.returncode != 0:
        raise SetupFailed(f"setup run {' '.join(map(str, args))}: exit {proc.returncode}: {proc.stderr[-400:]}")
    return proc


# ------------------------------------------------------------------ classifying


def lost(before, d, changes):
    """The earlier files that are gone or differ (not under ``changes``)."""
    return [rel for rel, data in before.items() if not rel.startswith(changes or ("\0",))
            and (not (d / rel).is_file() or (d / rel).read_bytes() != data)]


def classify(t, d, proc, before):
    """(outcome, why) of a finished trial."""
    if proc is None:
        return "hang", f"no end within {t.timeout:g} s"
    gone = lost(before, d, t.changes)
    if gone:
        return "lost data", "changed or removed: " + ", ".join(gone[:4])
    out, err, rc = proc.stdout_text, proc.stderr_text, proc.returncode
    if "Traceback" in err or "internal error" in err or rc < 0 or rc in CRASH:
        return "traceback", f"exit {rc}"
    errors = [ln for ln in err.splitlines() if ERROR_LINE.match(ln)]
    if t.status == "pipe" and rc in (0, 141) and not err.strip():  # 141: killed by SIGPIPE, as `yes | head`
        return "clean", "output stream closed quietly"
    if t.status in ("error", "pipe"):
        if rc == 0:
            return "unclear", "exit 0 where an error was expected"
        if len(errors) != 1:
            return "unclear", f"{len(errors)} error lines, exit {rc}"
        text = errors[0]
    else:
        if rc != t.status:
            return "unclear", f"exit {rc}, expected {t.status}"
        if errors:
            return "unclear", f"error line(s) with exit {rc}"
        text = out + err
    missing = [s for s in t.expect if s not in text]
    if missing:
        return "unclear", "the message lacks " + ", ".join(repr(s) for s in missing)
    problem = t.verify(d, proc) if t.verify else None
    return ("unclear", problem) if problem else ("clean", "")


def attempt(t, root):
    """Make, run and classify one trial in a fresh folder under ``root``; its record."""
    d = Path(tempfile.mkdtemp(prefix=re.sub(r"\W", "_", t.name) + "-", dir=root))
    t0 = time.monotonic()
    argv, proc = [], None
    try:
        argv = [str(a) for a in t.make(d)]
        before = snapshot(d)
        proc = execute(t, d, argv)
        outcome, why = classify(t, d, proc, before)
    except subprocess.TimeoutExpired as e:
        outcome, why = "hang", f"setup: {e}"
    except SetupFailed as e:
        outcome, why = "unclear", str(e)
    except Exception as e:  # the trial's own setup broke: say so, go on with the others
        outcome, why = "unclear", f"setup error (the trial's, not pvmpi's): {type(e).__name__}: {e}"
    cmd = command(t, argv)
    return {"group": t.group, "name": t.name, "outcome": outcome, "why": why, "folder": str(d),
            "command": cmd if isinstance(cmd, str) else shlex.join(cmd), "seconds": round(time.monotonic() - t0, 1),
            "exit": None if proc is None else proc.returncode,
            "stdout": "" if proc is None else proc.stdout_text[-1500:],
            "stderr": "" if proc is None else proc.stderr_text[-3000:]}


# ------------------------------------------------------------------ what the trials write


def net(d, stop=1, text=NET_YAML, *edits):
    """The tiny 8x8 network of test_bad_inputs in ``d`` (``stop`` steps; (old, new) ``edits``)."""
    write_images(d)
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    (d / "net.yaml").write_text(text.replace("stopTime: 1", f"stopTime: {stop}"))
    return ["net.yaml", "-o", "out", "-q"]


def tiny(*extra, stop=1, edits=()):
    """make(d): the tiny network, ``extra`` arguments after it."""
    return lambda d: net(d, stop, NET_YAML, *edits) + list(extra)


def ran(*extra, first=(), stop=4):
    """make(d): the tiny network run once (``first`` arguments), then ``extra`` arguments."""
    def make(d):
        written_net(d)
        (d / "net.yaml").write_text((d / "net.yaml").read_text().replace("stopTime: 4", f"stopTime: {stop}"))
        pvmpi(d, "net.yaml", "-q", *first)
        return ["net.yaml", "-q", *extra]
    return make


def with_checkpoints(*extra, damage=None, first=()):
    """make(d): the network of test_no_lost_outputs run with checkpoints, ``damage(ck)`` done to
    them, then ``extra``."""
    def make(d):
        written_net(d)
        pvmpi(d, "net.yaml", "-q", *CHECKPOINTS, *first)
        if damage:
            damage(d / "out" / "ck")
        return ["net.yaml", "-q", *extra]
    return make


def every(part, action):
    """damage(ck): ``action(checkpoint)`` on each checkpoint (``part`` = "all") or the newest ("newest")."""
    def damage(ck):
        checkpoints = sorted(ck.glob("Checkpoint*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
        for c in checkpoints if part == "all" else checkpoints[-1:]:
            action(c)
    return damage


def largest(c):
    """The checkpoint's largest data file, whatever the checkpoint format (not its checksum list)."""
    return max((f for f in c.iterdir() if f.is_file() and f.name != MANIFEST), key=lambda f: f.stat().st_size)


def no_manifest(c):
    (c / MANIFEST).unlink()


def truncate(c):
    f = largest(c)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def zero_bytes(c):
    largest(c).write_bytes(b"")


def remove_data(c):
    largest(c).unlink()


def flip_byte(c):
    f = largest(c)
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))


def alter(c):
    """Plausible numbers in place of the stored ones: test_no_lost_outputs' tamper on an HDF5
    checkpoint, else the last value of Err's V file changed."""
    if (c / "checkpoint.h5").is_file():
        return tamper(c)
    import numpy as np

    f = next(c.glob("Err_V*"))
    raw = bytearray(f.read_bytes())
    raw[-4:] = (np.frombuffer(bytes(raw[-4:]), "<f4") + np.float32(0.5)).tobytes()
    f.write_bytes(bytes(raw))


def guard_net(bad, extra="", error_on_nan=False):
    """make(d): test_guard's network whose frame 3 holds ``bad`` (NaN, Inf, an overflowing value)."""
    def make(d):
        import numpy as np

        from pvmpi.io import pvp

        with pvp.DenseWriter(d / "in.pvp", 4, 4, 1) as w:
            for i in range(6):
                frame = np.full((1, 4, 4, 1), i + 1, np.float32)
                frame[0, 2, 1, 0] = bad if i == 3 else frame[0, 2, 1, 0]
                w.write(float(i), frame)
        text = GUARD_NET.replace("ENOAN", str(error_on_nan).lower()) + extra
        (d / "net.yaml").write_text(text)
        return ["net.yaml", "-o", "out", "-q"]
    return make


OVERFLOW = ("Thresholded: {class: ANNLayer, phase: 1, InitVType: ZeroV, VThresh: 0}\n"
            "Scaled: {class: RescaleConn, scale: 10, channelCode: 0, preLayerName: Input, postLayerName: Thresholded}\n")


def demo(*sets):
    """make(d): the demo network with few small images, ``--set`` each of ``sets``."""
    def make(d):
        from pvmpi.data.dead_leaves import make_image_set

        images = make_image_set(d / "images", count=4, size=32, seed=5)
        args = [str(DEMO), "-o", "out", "-q", "--set", f"Input.inputPath={images}", "--set", "column.nbatch=2",
                "--set", "V1.nf=8"]
        for s in sets:
            args += ["--set", s]
        return args
    return make


def png(path, size):
    """A grey PNG image of ``size`` (rows, columns) at ``path``."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full(size, 128, np.uint8)).save(path)


def params_file(d):
    """The tiny network as an OpenPV params file, net.params."""
    (d / "net.params").write_text(NET_PARAMS)


def written(name, text, *args):
    """make(d): net.params and ``name`` holding ``text``; ``args``."""
    def make(d):
        params_file(d)
        (d / name).write_text(text)
        return list(args)
    return make


def outputs_pvp(d):
    """A real output file (Err.pvp) for the pvp tools to read."""
    net(d)
    pvmpi(d, "net.yaml", "-o", "out", "-q")
    return d / "out" / "Err.pvp"


def tool(*args, before=outputs_pvp):
    """make(d): ``before(d)`` (an output file), then ``python -m pvmpi ARGS`` ({pvp} = that file)."""
    def make(d):
        made = before(d) if before else None
        return [str(a).replace("{pvp}", str(made)) for a in args]
    return make


def in_the_way(name, content=b"in the way\n"):
    """setup: a file at ``name`` of ``d`` where pvmpi wants a folder."""
    def make(d):
        args = net(d, 5)
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return args
    return make


def occupied(*extra):
    """make(d): the tiny network, its output folder holding another run's file."""
    def make(d):
        args = net(d)
        (d / "out").mkdir()
        (d / "out" / "Err.pvp").write_bytes(b"another run's output")
        return args + list(extra)
    return make


def checkpoint_beyond_0(d, proc):
    return None if len(list(d.glob("out/ck/Checkpoint*"))) > 2 else "no checkpoint for SIGUSR1"


def checkpoint_exists(d, proc):
    return None if list(d.glob("out/ck/Checkpoint*")) else "no checkpoint written"


def old_checkpoints_gone(d, proc):
    names = sorted(p.name for p in (d / "out" / "ck").iterdir())
    return None if names == ["Checkpoint0", "Checkpoint2"] else f"checkpoints left: {names}"


def beside(n):
    return lambda d, proc: None if (d / "out" / f"nbatch{n}").is_dir() else f"no out/nbatch{n}"


def valid_yaml(d, proc):
    import yaml

    try:
        text = (d / "out.yaml").read_text()
        return None if isinstance(yaml.safe_load(text), dict) else "out.yaml is not a YAML mapping"
    except (OSError, yaml.YAMLError) as e:
        return f"out.yaml: {e}"


def relative_list(entry):
    """The image list in sub/ holding ``entry`` (relative), the images in d."""
    def make(d):
        args = net(d, 1, NET_YAML, ("inputPath: list.txt", "inputPath: sub/list.txt"))
        (d / "sub").mkdir()
        (d / "sub" / "list.txt").write_text(f"{entry}0.png\n{entry}1.png\n")
        return args
    return make


CK_SETS = ["column.checkpointWrite=true", "column.checkpointWriteDir=out/ck", "column.checkpointWriteStepInterval=50"]


def long_run(d, ranks=0, checkpoints=True, stop=100000):
    """pvmpi's arguments of a long run of the tiny network (batch split over 2 ranks with ``ranks``)."""
    sets = CK_SETS if checkpoints else []
    if ranks == 2:
        return tiny_net(d, stop, *sets)
    return net(d, stop) + [a for s in sets for a in ("--set", s)]


def signalled(sig, target="pid", ranks=0, checkpoints=True, then=None):
    """make(d): a long run (the trial); with ``then``, that run signalled once a checkpoint is written,
    and the trial a run to 5 steps past it with ``then`` (``-r``)."""
    if then is None:
        return lambda d: long_run(d, ranks, checkpoints)

    def make(d):
        first = Trial("setup", "signalled", None, signal=(sig, "out/ck/Checkpoint*", target), ranks=ranks)
        proc = execute(first, d, long_run(d, ranks))
        if proc is None or "stopped by a signal" not in proc.stdout_text:
            raise SetupFailed("the signalled run did not stop with a checkpoint: "
                              + ("no end" if proc is None else proc.stderr_text[-400:]))
        step = max(int(re.sub(r"\D", "", p.name)) for p in d.glob("out/ck/Checkpoint*"))
        return long_run(d, ranks, stop=step + 5) + list(then)
    return make


# ------------------------------------------------------------------ the trials

GB = ("GiB",)


def from_cases():
    """test_bad_inputs' table: configs, images and PVP files, layouts, restarts, outputs."""
    groups = {"yaml": "config", "params": "config", "config": "config", "set": "config", "bad": "config",
              "image": "inputs", "pvp": "inputs", "layout": "layout", "restart": "checkpoints",
              "output": "paths"}
    return [Trial(groups[name.split("-")[0]], name, case(make), tuple(expect), ranks=ranks if ranks > 1 else 0)
            for name, make, expect, ranks in CASES]


def case(make):
    """make(d) of a test_bad_inputs case: its images, its files, one quiet step into ./out."""
    def made(d):
        write_images(d)
        return with_output([str(a) for a in make(d)])
    return made


def under_mpiexec():
    """A sample of the cases under mpiexec -n 1 and -n 2 (rank 0 prints once, no rank waits)."""
    sample = {c.name: c for c in from_cases() if c.name in UNDER_MPI}
    more = [
        Trial("mpiexec", "r-without-checkpoint", ran("-r", "--set", "Err.valueBC=1"),
              ("-r: no checkpoint to continue from",)),
        Trial("mpiexec", "disk-full-rank-0", tiny(stop=5), ("No space left on device",),
              start=(FAULTY, "step=3,rank=0,kind=nospace")),
        Trial("mpiexec", "nbatch-1e9", tiny("--set", "column.nbatch=1000000000"), ("nbatch 1000000000", *GB)),
        Trial("mpiexec", "nan-input", guard_net(float("nan")), ("Input", "not finite")),
        Trial("mpiexec", "another-runs-output-dry", occupied("-n"), ("out", "--overwrite")),
    ]
    trials = []
    for n in (1, 2):
        for c in [*sample.values(), *more]:
            trials.append(Trial("mpiexec", f"{c.name}@{n}", c.make, c.expect, c.status, n, c.start,
                                changes=c.changes))
    return trials


def config_trials():
    return [
        Trial("config", "yaml-python-tag", lambda d: net(d) and yaml_case(
            "nx: 8", "nx: !!python/object/apply:os.system ['touch pwned']")(d) + ["-o", "out", "-q"],
            ("net.yaml:3:", "python/object")),
        Trial("config", "params-file-missing", lambda d: ["-p", "nope.params", "-o", "out"], ("nope.params",)),
        Trial("config", "openpv-config-file-bad-key", written("run.cfg", "ParamsFile:net.params\nBogusKey:3\n",
                                                               "run.cfg"), ("BogusKey",)),
        Trial("config", "threads-zero", tiny("-t", "0"), ("-t",)),
        Trial("config", "seed-not-a-number", tiny("-s", "x"), ("-s",)),
        Trial("config", "backend-unknown", tiny("--backend", "gpu"), ("--backend",)),
    ]


def message_trials():
    """The unclear messages of the issue: each names the parameter, file and line it is about."""
    return [
        Trial("messages", "stopTime-negative", lambda d: _stop(d, -5), ("net.yaml:7", "column.stopTime"), status=0),
        Trial("messages", "stopTime-negative-set", tiny("--set", "column.stopTime=-5"), ("column.stopTime",),
              status=0),
        Trial("messages", "channelCode-beyond-post", tiny(edits=[("channelCode: 0", "channelCode: 2")]),
              ("InputToErr", "channelCode 2"), status=0),
        Trial("messages", "channelCode-negative", tiny(edits=[("channelCode: 0", "channelCode: -3")]),
              ("InputToErr.channelCode",)),
        Trial("messages", "nx-negative-yaml", tiny(edits=[("nx: 8", "nx: -8")]), ("net.yaml:3", "column.nx")),
        Trial("messages", "nx-negative-set", tiny("--set", "column.nx=-8"), ("--set", "column.nx")),
        Trial("messages", "set-not-a-number", tiny("--set", "column.nx=abc"), ("--set", "column.nx", "abc")),
        Trial("messages", "set-no-dot", tiny("--set", "nx=3"), ("--set", "nx=3")),
        Trial("messages", "set-no-equals", tiny("--set", "column.nx"), ("--set", "column.nx")),
        Trial("messages", "set-unknown-param", tiny("--set", "Err.VThreshh=1"), ("--set", "Err.VThreshh")),
        Trial("messages", "set-yaml-syntax", tiny("--set", "column.nx=[8"), ("--set", "column.nx")),
        Trial("messages", "set-nbatch-zero", tiny("--set", "column.nbatch=0"), ("column.nbatch",)),
        Trial("messages", "set-dt-nan", tiny("--set", "column.dt=nan"), ("column.dt",)),
        Trial("messages", "set-bool-word", tiny("--set", "column.checkpointWrite=maybe"),
              ("--set", "column.checkpointWrite")),
        Trial("messages", "mixed-image-sizes", _mixed, ("big.png",), status=0),
        Trial("messages", "relative-list-paths", relative_list("img"), (), status=0),
        Trial("messages", "relative-list-paths-dotdot", relative_list("../img"), ("../img0.png", "working directory")),
    ]


def _stop(d, stop):
    """The tiny network with stopTime ``stop`` in its config."""
    return net(d, stop)


def _mixed(d):
    """The tiny network's second image 12x12 (the first 8x8)."""
    args = net(d)
    png(d / "big.png", (12, 12))
    (d / "list.txt").write_text("img0.png\nbig.png\n")
    return args


def input_trials():
    return [
        Trial("inputs", "image-truncated-png", lambda d: _cut(d, "img1.png", 60), ("img1.png",)),
        Trial("inputs", "image-zero-bytes", lambda d: _cut(d, "img1.png", 0), ("img1.png",)),
        Trial("inputs", "mixed-image-sizes-2-ranks", _mixed, ("big.png",), status=0, ranks=2),
        Trial("inputs", "image-list-names-a-folder", lambda d: _list_of(d, "img0.png\nsub\n", mkdir="sub"),
              ("sub",)),
        Trial("inputs", "image-list-is-a-folder", lambda d: _list_folder(d), ("list.txt",)),
        Trial("inputs", "pvp-zero-bytes", lambda d: _pvp_input(d, b""), ("in.pvp",)),
        Trial("inputs", "pvp-missing", lambda d: _pvp_input(d, None), ("in.pvp",)),
    ]


def _cut(d, name, size):
    """The tiny network with its image ``name`` cut to ``size`` bytes."""
    args = net(d)
    (d / name).write_bytes((d / name).read_bytes()[:size])
    return args


def _list_of(d, text, mkdir=None):
    args = net(d)
    if mkdir:
        (d / mkdir).mkdir()
    (d / "list.txt").write_text(text)
    return args


def _list_folder(d):
    args = net(d)
    (d / "list.txt").unlink()
    (d / "list.txt").mkdir()
    return args


def _pvp_input(d, content):
    args = net(d, 1, NET_YAML, ("class: ImageLayer\n  nf: 1\n  phase: 0\n  inputPath: list.txt",
                                "class: PvpLayer\n  nf: 1\n  phase: 0\n  inputPath: in.pvp"))
    if content is not None:
        (d / "in.pvp").write_bytes(content)
    return args


def on_demo(args):
    """make(d): the demo config as it is, into ./out, with ``args``."""
    return lambda d: [str(DEMO), "-o", "out", *args]


def layout_trials():
    trials = [Trial("layout", f"demo-on-{n}-ranks-{i}", on_demo(args), (message,), ranks=n)
              for i, (n, args, message) in enumerate(BAD_LAYOUTS)]
    launcher = ("-m", "pvmpi.launch")
    return trials + [
        Trial("layout", "batchwidth-zero", tiny("-batchwidth", "0"), ("BatchWidth",)),
        Trial("layout", "columns-negative", tiny("-columns", "-1"), ("NumColumns",)),
        Trial("layout", "rows-indivisible", tiny("-rows", "3"), ("NumRows",), ranks=0),
        Trial("layout", "rows-columns-too-many", tiny("-rows", "2", "-columns", "2"), ("4",)),
        Trial("layout", "batchwidth-over-nbatch", tiny("-batchwidth", "4"), ("BatchWidth=4",)),
        Trial("layout", "rows-2-of-2-ranks-fits-not", tiny("-rows", "3"), ("NumRows",), ranks=2),
        Trial("layout", "launcher-layout-mismatch", lambda d: ["-n", "2", "--layout", "3,1,1", "--dry-run",
                                                               *net(d)[:1]], ("BatchWidth=3",), start=launcher),
        Trial("layout", "launcher-layout-garbage", lambda d: ["-n", "2", "--layout", "abc", "--dry-run",
                                                              *net(d)[:1]], ("--layout", "abc"), start=launcher),
        Trial("layout", "launcher-layout-zero", lambda d: ["-n", "2", "--layout", "0,1,2", "--dry-run",
                                                           *net(d)[:1]], ("--layout",), start=launcher),
    ]


def divergence_trials():
    nan, inf = float("nan"), float("inf")
    return [
        Trial("divergence", "nan-input", guard_net(nan), ("Input", "not finite", "step 3")),
        Trial("divergence", "inf-input", guard_net(inf), ("Input", "not finite", "step 3")),
        Trial("divergence", "minus-inf-input", guard_net(-inf), ("Input", "not finite")),
        Trial("divergence", "nan-input-2-ranks", guard_net(nan), ("Input", "not finite", "batch element 1"),
              ranks=2, start=("-m", "pvmpi")),
        Trial("divergence", "overflow-in-A", guard_net(3e38, OVERFLOW), ("Thresholded", "not finite")),
        Trial("divergence", "overflow-in-V", guard_net(-3e38, OVERFLOW, error_on_nan=True),
              ("Thresholded", "membrane potential V")),
        Trial("divergence", "lca-exploding-learning", demo("V1ToInputError.dWMax=1e38", "column.stopTime=60"),
              ("not finite",)),
    ]


def disk_trials():
    ck = ["--set", "column.checkpointWrite=true", "--set", "column.checkpointWriteDir=out/ck",
          "--set", "column.checkpointWriteStepInterval=1"]
    big = [("nx: 8", "nx: 512"), ("ny: 8", "ny: 512")]
    huge = [("nx: 8", "nx: 2048"), ("ny: 8", "ny: 2048")]
    return [
        Trial("full disk", "outputs-rank-0", tiny(stop=5), ("out/Err.pvp", "No space left on device"),
              start=(FAULTY, "step=3,rank=0,kind=nospace")),
        Trial("full disk", "outputs-step-1", tiny(stop=5), ("No space left on device",),
              start=(FAULTY, "step=1,rank=0,kind=nospace")),
        Trial("full disk", "outputs-rank-1-of-2", lambda d: tiny_net(d, 5), ("No space left on device",),
              ranks=2, start=(FAULTY, "step=3,rank=1,kind=nospace")),
        Trial("full disk", "outputs-all-ranks-of-2", lambda d: tiny_net(d, 5), ("No space left on device",),
              ranks=2, start=(FAULTY, "step=3,rank=all,kind=nospace")),
        Trial("full disk", "log-file-on-dev-full", lambda d: net(d, 3)[:-1] + ["-l", "/dev/full"], ("/dev/full",)),
        Trial("full disk", "file-size-limit-outputs", tiny("--set", "Err.writeStep=1", stop=100, edits=big),
              ("out/", ".pvp: cannot write or read: File too large"), fsize=LIMIT),  # Input's or Err's
        Trial("full disk", "file-size-limit-checkpoint", tiny(*ck, "--set", "Err.writeStep=-1", "--set",
                                                              "Input.writeStep=-1", "--set", "column.nbatch=8",
                                                              stop=2, edits=huge),
              ("out/ck", "File too large"), fsize=LIMIT),
        Trial("full disk", "file-size-limit-2-ranks", lambda d: _big_tiny(d),
              ("out/", ".pvp: cannot write or read: File too large"),
              ranks=2, fsize=LIMIT),
    ]


LIMIT = 100_000_000  # bytes a file may grow to in the file-size trials (MPI's start-up needs less)


def _big_tiny(d):
    """test_mpi_errors' tiny network on 2 ranks, 512x512, Err written every step."""
    args = tiny_net(d, 100, "Err.writeStep=1")
    (d / "net.yaml").write_text((d / "net.yaml").read_text().replace("nx: 8", "nx: 512").replace("ny: 8", "ny: 512"))
    return args


def path_trials():
    return [
        Trial("paths", "checkpoint-folder-is-a-file", in_the_way("plain"), ("plain", "Not a directory"))
        .with_args("--set", "column.checkpointWrite=true", "--set", "column.checkpointWriteDir=plain/ck",
                   "--set", "column.checkpointWriteStepInterval=2"),
        Trial("paths", "timestamps-is-a-file", in_the_way("out/timestamps"), ("timestamps",)).with_args("--overwrite"),
        Trial("paths", "output-is-a-file", in_the_way("out"), ("out",)),
        Trial("paths", "output-in-sysfs", tiny("-o", "/sys/pvmpi-trial-out"), ("/sys/pvmpi-trial-out",)),
        Trial("paths", "checkpoints-in-sysfs", tiny("--set", "column.checkpointWrite=true", "--set",
                                                    "column.checkpointWriteDir=/sys/pvmpi-ck", stop=3),
              ("/sys/pvmpi-ck",)),
        Trial("paths", "last-checkpoint-dir-is-a-file", in_the_way("last"), ("last",))
        .with_args("--set", "column.lastCheckpointDir=last/ck"),
        Trial("paths", "log-file-in-a-file", in_the_way("plain"), ("plain",)).with_args("-l", "plain/log.txt"),
        Trial("paths", "output-of-another-run-2-ranks", occupied(), ("out", "--overwrite"), ranks=2),
    ]


def pipe_trials():
    return [
        Trial("closed stdout", "run-head-2", lambda d: net(d, 3000)[:-1],
              ("<stdout>",), status="pipe", pipe="| head -2"),
        Trial("closed stdout", "run-2-ranks-head-1", lambda d: tiny_net(d, 3000, quiet=False), ("<stdout>",),
              status="pipe", pipe="| head -1", ranks=2),
        Trial("closed stdout", "describe-head-1", lambda d: ["describe", "HyPerLCALayer"], ("<stdout>",),
              status="pipe", pipe="| head -1"),
        Trial("closed stdout", "describe-all-true", lambda d: ["describe"], ("<stdout>",), status="pipe",
              pipe="| true"),
        Trial("closed stdout", "dry-run-head-1", lambda d: net(d)[:-1] + ["-n"], ("<stdout>",), status="pipe",
              pipe="| head -1"),
        Trial("closed stdout", "help-true", lambda d: ["--help"], ("<stdout>",), status="pipe", pipe="| true"),
        Trial("closed stdout", "pvp-info-true", tool("pvp", "info", "{pvp}"), ("<stdout>",), status="pipe",
              pipe="| true"),
        Trial("closed stdout", "convert-to-stdout-true", lambda d: params_file(d) or ["convert", "net.params"],
              ("<stdout>",), status="pipe", pipe="| true"),
    ]


def signal_trials():
    group = "signals"
    return [
        Trial(group, "sigterm", signalled(signal.SIGTERM), ("stopped by a signal",), status=0,
              signal=(signal.SIGTERM, "out/ck/Checkpoint*", "pid"), verify=checkpoint_exists),
        Trial(group, "sigint", signalled(signal.SIGINT), ("stopped by a signal",), status=130,
              signal=(signal.SIGINT, "out/ck/Checkpoint*", "group"), verify=checkpoint_exists),
        Trial(group, "sigusr2", signalled(signal.SIGUSR2), ("stopped by a signal",), status=0,
              signal=(signal.SIGUSR2, "out/ck/Checkpoint*", "pid"), verify=checkpoint_exists),
        Trial(group, "sigusr1", lambda d: net(d, 3000) + [a for s in [*CK_SETS[:2], "column.checkpointWriteStepInterval=100000"]
                                                        for a in ("--set", s)],
              (), status=0, signal=(signal.SIGUSR1, "out/ck/Checkpoint0*", "pid"), verify=checkpoint_beyond_0),
        Trial(group, "sigint-no-checkpointing", signalled(signal.SIGINT, checkpoints=False),
              ("stopped by a signal",), status=130, signal=(signal.SIGINT, "out/Err.pvp", "group")),
        Trial(group, "sigterm-no-checkpointing", signalled(signal.SIGTERM, checkpoints=False),
              ("stopped by a signal",), status=0, signal=(signal.SIGTERM, "out/Err.pvp", "pid")),
        Trial(group, "sigint-2-ranks", signalled(signal.SIGINT, ranks=2), ("stopped by a signal",), status=130,
              signal=(signal.SIGINT, "out/ck/Checkpoint*", "group"), ranks=2, verify=checkpoint_exists),
        Trial(group, "sigterm-2-ranks", signalled(signal.SIGTERM, ranks=2), ("stopped by a signal",), status=0,
              signal=(signal.SIGTERM, "out/ck/Checkpoint*", "pid"), ranks=2, verify=checkpoint_exists),
        Trial(group, "sigusr2-2-ranks-tasks", signalled(signal.SIGUSR2, ranks=2), ("stopped by a signal",),
              status=0, signal=(signal.SIGUSR2, "out/ck/Checkpoint*", "ranks"), ranks=2, verify=checkpoint_exists),
        Trial(group, "sigint-then-r", signalled(signal.SIGINT, "group", then=["-r"]), ("continuing from out/ck",),
              status=0, changes=("out/",)),
        Trial(group, "sigterm-then-r", signalled(signal.SIGTERM, then=["-r"]), ("continuing from out/ck",),
              status=0, changes=("out/",)),
        Trial(group, "sigint-2-ranks-then-r", signalled(signal.SIGINT, "group", ranks=2, then=["-r"]),
              ("continuing from out/ck",), status=0, ranks=2, changes=("out/",)),
    ]


def checkpoint_trials():
    tail = CHECKPOINTS[:-1]
    return [
        Trial("checkpoints", "r-no-checkpoints-over-outputs", ran("-r", "--set", "Err.valueBC=1"),
              ("-r: no checkpoint to continue from", "out")),
        Trial("checkpoints", "r-empty-checkpoint-folder-over-outputs", ran("-r", *CHECKPOINTS[:2],
                                                                           "--set", "column.checkpointWriteDir=ck"),
              ("-r: no checkpoint",)),
        Trial("checkpoints", "r-all-truncated", with_checkpoints(*CHECKPOINTS, "-r", damage=every("all", truncate)),
              ("Checkpoint0", "Checkpoint6", "unreadable")),
        Trial("checkpoints", "r-all-zero-bytes", with_checkpoints(*CHECKPOINTS, "-r",
                                                                  damage=every("all", zero_bytes)), ("Checkpoint6",)),
        Trial("checkpoints", "r-all-data-removed", with_checkpoints(*CHECKPOINTS, "-r",
                                                                  damage=every("all", remove_data)), ("Checkpoint6",)),
        Trial("checkpoints", "r-all-tampered", with_checkpoints(*CHECKPOINTS, "-r", damage=every("all", alter)),
              ("Checkpoint6", "damaged")),
        Trial("checkpoints", "r-newest-truncated", with_checkpoints(*tail, "column.stopTime=8", "-r",
                                                                    damage=every("newest", truncate)),
              ("Checkpoint6", "continuing from out/ck/Checkpoint4"), status=0, changes=("out/",)),
        Trial("checkpoints", "r-newest-tampered", with_checkpoints(*tail, "column.stopTime=8", "-r",
                                                                   damage=every("newest", alter)),
              ("passed over Checkpoint6: damaged", "continuing from out/ck/Checkpoint4"), status=0,
              changes=("out/",)),
        Trial("checkpoints", "r-newest-flipped-byte", with_checkpoints(*tail, "column.stopTime=8", "-r",
                                                                       damage=every("newest", flip_byte)),
              ("Checkpoint6", "continuing from out/ck/Checkpoint4"), status=0, changes=("out/",)),
        Trial("checkpoints", "c-truncated", with_checkpoints(*CHECKPOINTS, "-c", "out/ck/Checkpoint4",
                                                             damage=every("all", truncate)),
              ("Checkpoint4",)),
        Trial("checkpoints", "c-tampered", with_checkpoints(*CHECKPOINTS, "-c", "out/ck/Checkpoint6",
                                                            damage=every("newest", alter)),
              ("Checkpoint6", "damaged")),
        Trial("checkpoints", "c-altered-values", with_checkpoints(*CHECKPOINTS, "-c", "out/ck/Checkpoint6",
                                                                   damage=every("newest", alter)),
              ("Checkpoint6", "Err")),
        Trial("checkpoints", "c-flipped-byte", with_checkpoints(*CHECKPOINTS, "-c", "out/ck/Checkpoint6",
                                                                damage=every("newest", flip_byte)),
              ("Checkpoint6",)),
        Trial("checkpoints", "c-data-removed", with_checkpoints(*CHECKPOINTS, "-c", "out/ck/Checkpoint6",
                                                              damage=every("newest", remove_data)),
              ("Checkpoint6",)),
        Trial("checkpoints", "r-checksum-list-removed", with_checkpoints(*tail, "column.stopTime=8", "-r",
                                                                         damage=every("all", no_manifest)),
              ("Checkpoint6: damaged", MANIFEST, "is missing")),
        Trial("checkpoints", "c-is-a-file", with_checkpoints(*CHECKPOINTS, "-c", "net.yaml"), ("net.yaml",)),
        Trial("checkpoints", "overwrite-with-old-checkpoints", with_checkpoints(*tail, "column.stopTime=2",
                                                                               "--overwrite"),
              ("--overwrite: removed 4 checkpoint(s)",), status=0, changes=("out/",), verify=old_checkpoints_gone),
        Trial("checkpoints", "overwrite-then-r", lambda d: with_checkpoints(*tail, "column.stopTime=2",
                                                                           "--overwrite")(d) and pvmpi(
            d, "net.yaml", "-q", *tail, "column.stopTime=2", "--overwrite") and
            ["net.yaml", "-q", *tail, "column.stopTime=4", "-r"], ("continuing from out/ck/Checkpoint2",),
            status=0, changes=("out/",)),
        Trial("checkpoints", "r-another-nbatch", with_checkpoints(*tail, "column.stopTime=8", "--set",
                                                                  "column.nbatch=4", "-r"),
              ("nbatch 2", "out/nbatch4"), status=0, changes=("out/ck",), verify=beside(4)),
        Trial("checkpoints", "c-another-nbatch", with_checkpoints(*tail, "column.stopTime=8", "--set",
                                                                  "column.nbatch=4", "-c", "out/ck/Checkpoint6"),
              ("nbatch 2", "out/nbatch4"), status=0, changes=("out/ck",), verify=beside(4)),
        Trial("checkpoints", "r-fresh-folder", lambda d: written_net(d) and ["net.yaml", "-q", *CHECKPOINTS, "-r"],
              ("no complete checkpoint in out/ck; starting at t = 0",), status=0),
        Trial("checkpoints", "r-changed-config", with_checkpoints(*tail, "column.stopTime=8", "--set",
                                                                  "Err.valueBC=1", "-r"),
              ("continuing from out/ck/Checkpoint6", "Err.valueBC"), status=0, changes=("out/",)),
        Trial("checkpoints", "r-on-2-ranks", with_checkpoints(*tail, "column.stopTime=8", "-r", "-batchwidth", "2"),
              ("continuing from out/ck/Checkpoint6",), status=0, ranks=2, changes=("out/",)),
        Trial("checkpoints", "r-2-ranks-all-truncated", with_checkpoints(*CHECKPOINTS, "-r", "-batchwidth", "2",
                                                                         damage=every("all", truncate)),
              ("Checkpoint6", "unreadable"), ranks=2),
    ]


def dry_run_trials():
    huge = [("nbatch-1e9", ["--set", "column.nbatch=1000000000"], ("nbatch 1000000000", *GB)),
            ("layer-100000x100000", ["--set", "column.nx=100000", "--set", "column.ny=100000"], GB),
            ("nf-2e9", ["--set", "Err.nf=2000000000", "--set", "Input.nf=2000000000"], GB)]
    trials = []
    for name, sets, expect in huge:
        trials.append(Trial("dry run", name + "-dry", tiny("-n", *sets), ("net.yaml", *expect), timeout=60))
        trials.append(Trial("dry run", name + "-run", tiny(*sets), ("net.yaml", *expect), timeout=60))
    return trials + [
        Trial("dry run", "output-in-sysfs-dry", tiny("-n", "-o", "/sys/pvmpi-trial-out"), ("/sys/pvmpi-trial-out",)),
        Trial("dry run", "output-under-a-file-dry", in_the_way("plain"), ("plain",)).with_args("-n", "-o", "plain/out"),
        Trial("dry run", "output-of-another-run-dry", ran("-n", "--set", "Err.valueBC=1"), ("out", "--overwrite")),
        Trial("dry run", "huge-2-ranks-dry", tiny("-n", "--set", "column.nbatch=1000000000", "-batchwidth", "2"),
              ("nbatch 1000000000",), ranks=2),
    ]


def tool_trials():
    sysfs = "/sys/pvmpi-trial"
    return [
        Trial("tools", "to-npy-into-sysfs", tool("pvp", "to-npy", "{pvp}", "-o", f"{sysfs}.npy"), (sysfs,)),
        Trial("tools", "to-hdf5-into-sysfs", tool("pvp", "to-hdf5", "{pvp}", "-o", f"{sysfs}.h5"), (sysfs,)),
        Trial("tools", "to-npy-under-a-file", tool("pvp", "to-npy", "{pvp}", "-o", "net.yaml/x.npy"), ("net.yaml",)),
        Trial("tools", "to-hdf5-under-a-file", tool("pvp", "to-hdf5", "{pvp}", "-o", "net.yaml/x.h5"), ("net.yaml",)),
        Trial("tools", "from-images-into-sysfs", tool("pvp", "from-images", "list.txt", "-o", f"{sysfs}.pvp"),
              (sysfs,)),
        Trial("tools", "info-truncated", tool("pvp", "info", "cut.pvp", before=lambda d: (d / "cut.pvp").write_bytes(
            outputs_pvp(d).read_bytes()[:50])), ("cut.pvp",)),
        Trial("tools", "info-missing", tool("pvp", "info", "nope.pvp", before=None), ("nope.pvp",)),
        Trial("tools", "diff-missing", tool("pvp", "diff", "{pvp}", "nope.pvp"), ("nope.pvp",)),
        Trial("tools", "describe-unknown-class", tool("describe", "HyPerLayr", before=None), ("HyPerLayr",)),
        Trial("tools", "convert-txt-to-yaml", written("n.txt", NET_PARAMS, "convert", "n.txt", "out.yaml"),
              ("n.txt",)),
        Trial("tools", "convert-params-to-yaml", lambda d: params_file(d) or ["convert", "net.params", "out.yaml"],
              (), status=0, verify=valid_yaml),
        Trial("tools", "convert-over-existing", written("out.yaml", "mine\n", "convert", "net.params", "out.yaml"),
              ("out.yaml",)),
        Trial("tools", "convert-into-sysfs", lambda d: params_file(d) or ["convert", "net.params", f"{sysfs}.yaml"],
              (sysfs,)),
        Trial("tools", "plot-into-sysfs", tool("plot", "out", "-o", sysfs, before=lambda d: outputs_pvp(d)),
              (sysfs,)),
    ]


def all_trials():
    return [*from_cases(), *config_trials(), *message_trials(), *input_trials(), *layout_trials(),
            *divergence_trials(), *disk_trials(), *path_trials(), *pipe_trials(), *signal_trials(),
            *checkpoint_trials(), *dry_run_trials(), *tool_trials(), *under_mpiexec()]


QUICK = {"yaml-syntax", "stopTime-negative", "image-missing", "layout-zero-rows", "nan-input", "outputs-rank-0",
         "checkpoint-folder-is-a-file", "run-head-2", "sigint", "r-all-truncated", "nbatch-1e9-dry",
         "to-npy-into-sysfs", "r-without-checkpoint@2"}


# ------------------------------------------------------------------ report


def table(records):
    """The outcomes per class and the totals, as text."""
    groups = list(dict.fromkeys(r["group"] for r in records))
    rows = [(g, [sum(r["outcome"] == o for r in records if r["group"] == g) for o in OUTCOMES]) for g in groups]
    rows.append(("total", [sum(r["outcome"] == o for r in records) for o in OUTCOMES]))
    head = f"| {'class':<14} | " + " | ".join(OUTCOMES) + " | trials |"
    lines = [head, "|" + "|".join("-" * len(c) for c in head.strip("|").split("|")) + "|"]
    for name, counts in rows:
        cells = " | ".join(f"{c:>{len(o)}}" for c, o in zip(counts, OUTCOMES))
        lines.append(f"| {name:<14} | {cells} | {sum(counts):>6} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one representative trial per class")
    p.add_argument("--json", metavar="FILE", help="write every trial's record (command, outcome, output) here")
    p.add_argument("-k", metavar="TEXT", help="only the trials whose class or name contains TEXT")
    p.add_argument("--keep", action="store_true", help="keep the trial folders")
    args = p.parse_args(argv)
    trials = all_trials()
    if args.quick:
        trials = [t for t in trials if t.name in QUICK]
    if args.k:
        trials = [t for t in trials if args.k in t.name or args.k in t.group]
    root = Path(tempfile.mkdtemp(prefix="pvmpi-trials-"))
    records = []
    for i, t in enumerate(trials, 1):
        rec = attempt(t, root)
        records.append(rec)
        print(f"[{i:3}/{len(trials)}] {rec['outcome']:<9} {t.group}/{t.name} ({rec['seconds']} s) {rec['why']}",
              flush=True)
    print("\n" + table(records))
    bad = [r for r in records if r["outcome"] != "clean"]
    for r in bad:
        print(f"\n{r['outcome']}: {r['group']}/{r['name']}: {r['why']}\n  $ {r['command']}\n  exit {r['exit']}\n"
              + "".join(f"  | {ln}\n" for ln in (r["stderr"] or r["stdout"]).strip().splitlines()[-6:]))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

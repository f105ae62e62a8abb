"""What the machine causes — a full disk, a file where a folder should be, a closed output stream —
ends in one line naming the path, a non-zero exit and no traceback, on any rank."""
import subprocess
import sys
from pathlib import Path

import pytest
from running import MPIEXEC
from test_bad_inputs import NET_YAML, write_images

FAULTY = str(Path(__file__).with_name("faulty.py"))


def net(d, stop=5):
    write_images(d)
    (d / "net.yaml").write_text(NET_YAML.replace("stopTime: 1", f"stopTime: {stop}"))
    return d


def run(d, *args, ranks=1, start=("-m", "pvmpi")):
    cmd = [sys.executable, *start, "net.yaml", "-o", "out", "-q", *args]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks)] + cmd + ["-batchwidth", str(ranks)]
    return subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=120)


def one_line(proc, *words):
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("pvmpi: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("ranks, rank", [(1, "0"), (2, "1")])
def test_a_full_disk_mid_run_is_one_line(tmp_path, ranks, rank):
    d = net(tmp_path)
    proc = run(d, ranks=ranks, start=(FAULTY, f"step=3,rank={rank},kind=nospace"))
    one_line(proc, "out/Err.pvp", "No space left on device")
    assert (d / "out" / "Input.pvp").is_file()  # what was written before stays


def test_a_file_where_the_checkpoint_folder_should_be(tmp_path):
    d = net(tmp_path)
    (d / "plain").write_text("a file, not a folder\n")
    proc = run(d, "--set", "column.checkpointWrite=true", "--set", "column.checkpointWriteDir=plain/ck",
               "--set", "column.checkpointWriteStepInterval=2")
    one_line(proc, "plain", "Not a directory")
    assert (d / "plain").read_text() == "a file, not a folder\n"


def test_a_file_where_an_output_folder_should_be(tmp_path):
    d = net(tmp_path)
    (d / "out").mkdir()
    (d / "out" / "timestamps").write_text("in the way\n")
    one_line(run(d, "--overwrite"), "timestamps")


def test_a_closed_output_stream_is_one_line(tmp_path):
    proc = subprocess.run(f'"{sys.executable}" -m pvmpi describe HyPerLCALayer | head -1', shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("HyPerLCALayer")
    assert proc.stderr.strip() in ("", "pvmpi: error: <stdout>: the output stream was closed (Broken pipe)")
    assert "Traceback" not in proc.stderr


def test_ctrl_c_checkpoints_and_exits_130(tmp_path):
    """Ctrl-C (SIGINT) stops the run as SIGTERM does: a checkpoint of the step, exit status 130, no
    traceback; -r continues from it."""
    import signal
    import time

    d = net(tmp_path, stop=100000)
    ck = ["--set", "column.checkpointWrite=true", "--set", "column.checkpointWriteDir=out/ck",
          "--set", "column.checkpointWriteStepInterval=50"]
    proc = subprocess.Popen([sys.executable, "-m", "pvmpi", "net.yaml", "-o", "out", *ck], cwd=d,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (d / "out" / "ck").is_dir() or not any((d / "out" / "ck").iterdir()):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopped by a signal" in out, out + err
    resumed = subprocess.run([sys.executable, "-m", "pvmpi", "net.yaml", "-o", "out", "-q", *ck, "-r",
                              "--set", "column.stopTime=1"], cwd=d, capture_output=True, text=True, timeout=120)
    assert "continuing from out/ck/Checkpoint" in resumed.stderr, resumed.stderr


@pytest.mark.parametrize("dry", [True, False])
def test_a_network_larger_than_the_node_is_refused_before_allocating(tmp_path, dry):
    """nbatch 1e9: the dry run and the run both refuse at once, naming what it needs and what the node
    has (the floor is computed from the model: nothing is allocated)."""
    import time

    d = net(tmp_path)
    t0 = time.monotonic()
    proc = run(d, *(["-n"] if dry else []), "--set", "column.nbatch=1000000000")
    line = one_line(proc, "net.yaml", "nbatch 1000000000", "GiB available")
    assert time.monotonic() - t0 < 30, line


def test_the_dry_run_says_whether_the_node_has_room(tmp_path):
    proc = run(net(tmp_path), "-n")
    assert proc.returncode == 0 and "this node: " in proc.stdout and "available: room for" in proc.stdout

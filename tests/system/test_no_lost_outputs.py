"""A run never replaces an earlier run's outputs unless told (--overwrite): -r without a usable
checkpoint stops with one line naming what it found; --overwrite takes the old checkpoints with it."""
import subprocess
import sys

import numpy as np
import pytest
from test_bad_inputs import NET_YAML, write_images

from pvmpi.io.checkpoint import state_file

CHECKPOINTS = ["--set", "column.checkpointWrite=true", "--set", "column.checkpointWriteDir=out/ck",
               "--set", "column.checkpointWriteStepInterval=2", "--set", "column.stopTime=6"]


def pvmpi(d, *args):
    return subprocess.run([sys.executable, "-m", "pvmpi", "net.yaml", "-q", *args], cwd=d, capture_output=True,
                          text=True, timeout=120)


def outputs(d):
    """{relative path: bytes} of every output file but the checkpoints and the timers."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted((d / "out").rglob("*"))
            if p.is_file() and "ck" not in p.parts and p.name != "timers.txt"}


def net(tmp_path):
    write_images(tmp_path)
    (tmp_path / "net.yaml").write_text(NET_YAML.replace("stopTime: 1", "stopTime: 4")
                                       + "  writeStep: 1\n")
    return tmp_path


def one_error(proc):
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("pvmpi: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def test_r_without_a_checkpoint_keeps_the_outputs(tmp_path):
    d = net(tmp_path)
    assert pvmpi(d).returncode == 0
    before = outputs(d)
    line = one_error(pvmpi(d, "-r", "--set", "Err.valueBC=1"))
    assert "-r: no checkpoint to continue from" in line and "would replace the outputs in out" in line
    assert outputs(d) == before


def test_r_with_only_damaged_checkpoints_names_them(tmp_path):
    d = net(tmp_path)
    assert pvmpi(d, *CHECKPOINTS).returncode == 0
    before = outputs(d)
    for ck in (d / "out" / "ck").iterdir():
        f = state_file(ck)
        with open(f, "r+b") as h:
            h.truncate(100)
    line = one_error(pvmpi(d, *CHECKPOINTS, "-r"))
    assert "Checkpoint0: unreadable" in line and "Checkpoint6: unreadable" in line, line
    assert outputs(d) == before


def test_r_on_a_fresh_folder_starts_and_names_what_it_continues(tmp_path):
    d = net(tmp_path)
    proc = pvmpi(d, *CHECKPOINTS, "-r")  # the first piece of a requeued job
    assert proc.returncode == 0 and "no complete checkpoint in out/ck; starting at t = 0" in proc.stderr
    proc = pvmpi(d, *CHECKPOINTS[:-1], "column.stopTime=8", "-r")
    assert proc.returncode == 0 and "continuing from out/ck/Checkpoint6 (t = 6, step 6)" in proc.stderr, proc.stderr
    assert "the config differs from the checkpoint's: column.stopTime: 6 -> 8" in proc.stderr, proc.stderr


def test_overwrite_takes_the_old_checkpoints_with_it(tmp_path):
    d = net(tmp_path)
    assert pvmpi(d, *CHECKPOINTS).returncode == 0
    proc = pvmpi(d, *CHECKPOINTS[:-1], "column.stopTime=2", "--overwrite")
    assert proc.returncode == 0 and "--overwrite: removed 4 checkpoint(s) of the replaced run" in proc.stderr
    assert sorted(p.name for p in (d / "out" / "ck").iterdir()) == ["Checkpoint0", "Checkpoint2"]


def tamper(checkpoint, form):
    """Overwrite Err's V in a checkpoint with plausible numbers (its shape and type kept); the name
    the refusal must give."""
    if form == "hdf5":
        import h5py

        with h5py.File(state_file(checkpoint), "r+") as h:
            h["layers/Err/V"][...] = h["layers/Err/V"][...] + 0.5
        return "layers/Err/V does not match its checksum"
    f = checkpoint / "Err_V.pvp"
    data = bytearray(f.read_bytes())
    values = np.frombuffer(data, "<f4", offset=88)  # after the 80-byte header and the frame's time
    values += 0.5
    f.write_bytes(bytes(data))
    return "Err_V.pvp does not match checksums.sha256"


@pytest.mark.parametrize("form", ["openpv", "hdf5"])
def test_a_tampered_checkpoint_is_refused_naming_what_changed(tmp_path, form):
    d = net(tmp_path)
    given = [*CHECKPOINTS, "--set", f"column.checkpointFormat={form}"]
    assert pvmpi(d, *given).returncode == 0
    why = tamper(d / "out" / "ck" / "Checkpoint4", form)
    line = one_error(pvmpi(d, *given, "-c", "out/ck/Checkpoint4"))
    assert "Checkpoint4" in line and f"damaged: {why}" in line, line
    tamper(d / "out" / "ck" / "Checkpoint6", form)  # the newest too: -r passes over both, and says so
    proc = pvmpi(d, *given[:-3], "column.stopTime=8", "--set", f"column.checkpointFormat={form}", "-r")
    assert proc.returncode == 0, proc.stderr
    assert f"-r: passed over Checkpoint6: damaged: {why}" in proc.stderr, proc.stderr
    assert "Checkpoint4: damaged" in proc.stderr and "continuing from out/ck/Checkpoint2" in proc.stderr


def test_r_from_last_checkpoint_dir_writes_the_continued_state_there(tmp_path):
    """Without checkpointWrite, -r continues lastCheckpointDir and leaves the new final state in it
    (OpenPV always writes lastCheckpointDir, even the one it read)."""
    import numpy as np

    d = net(tmp_path)
    last = ["--set", "column.lastCheckpointDir=out/last"]
    assert pvmpi(d, *last).returncode == 0
    proc = pvmpi(d, *last, "--set", "column.stopTime=8", "-r")
    assert proc.returncode == 0 and "continuing from out/last" in proc.stderr, proc.stderr
    time_, step = np.fromfile(d / "out" / "last" / "timeinfo.bin", "<f8")[0], \
        np.fromfile(d / "out" / "last" / "timeinfo.bin", "<i8")[1]
    assert (time_, step) == (8.0, 8)

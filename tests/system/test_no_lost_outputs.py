"""A run never replaces an earlier run's outputs unless told (--overwrite): -r without a usable
checkpoint stops with one line naming what it found; --overwrite takes the old checkpoints with it."""
import subprocess
import sys

from test_bad_inputs import NET_YAML, write_images

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
        (ck / "checkpoint.h5").write_bytes((ck / "checkpoint.h5").read_bytes()[:100])
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


def tamper(checkpoint, dataset="layers/Err/V"):
    """Overwrite a dataset of a checkpoint with plausible numbers (its shape and type kept)."""
    import h5py

    with h5py.File(checkpoint / "checkpoint.h5", "r+") as h:
        h[dataset][...] = h[dataset][...] + 0.5


def test_a_tampered_checkpoint_is_refused_naming_what_changed(tmp_path):
    d = net(tmp_path)
    assert pvmpi(d, *CHECKPOINTS).returncode == 0
    tamper(d / "out" / "ck" / "Checkpoint4")
    line = one_error(pvmpi(d, *CHECKPOINTS, "-c", "out/ck/Checkpoint4"))
    assert "Checkpoint4" in line and "damaged: layers/Err/V does not match its checksum" in line
    tamper(d / "out" / "ck" / "Checkpoint6")  # the newest too: -r passes over both, and says so
    proc = pvmpi(d, *CHECKPOINTS[:-1], "column.stopTime=8", "-r")
    assert proc.returncode == 0, proc.stderr
    assert "-r: passed over Checkpoint6: damaged: layers/Err/V" in proc.stderr
    assert "Checkpoint4: damaged" in proc.stderr and "continuing from out/ck/Checkpoint2" in proc.stderr

"""Outputs and checkpoints survive a crash: temporary name, fsync, rename; outputs on disk before the
checkpoint that counts them."""
import os

import numpy as np
import pytest

from pvmpi.io import checkpoint, outputs, pvp


class OneRank:
    """The parts of Comms a shared-array checkpoint uses, for one process."""

    is_root = True

    def barrier(self):
        pass


@pytest.fixture
def calls(monkeypatch):
    """Record fsync (by path) and rename calls, in order."""
    log = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(a, b):
        log.append(("rename", str(a), str(b)))
        real_rename(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    return log


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "pv.params"
    outputs.write_atomic(path, "old\n")

    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        outputs.write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    monkeypatch.undo()
    outputs.write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir() if p.name != "pv.params" and ".tmp" not in p.name] == []


def test_checkpoint_is_fsynced_before_it_appears_and_outputs_before_it(tmp_path, calls):
    out = pvp.DenseWriter(tmp_path / "L.pvp", 2, 2, 1)
    out.write(1.0, np.ones((2, 2, 1)))
    path = str(tmp_path / "Checkpoint1")
    ck = checkpoint.CheckpointWriter(OneRank(), path, {"nbatch": 1})
    ck.shared("w", np.arange(3.0), "weights")
    calls.clear()
    ck.close()
    names = [c[1] for c in calls]
    rename = next(i for i, c in enumerate(calls) if c[0] == "rename")
    assert calls[rename][1:] == (path + ".incomplete", path)
    synced = names[:rename]
    assert str(tmp_path / "L.pvp") in synced  # the output it counts
    assert path + ".incomplete/checkpoint.h5" in synced and path + ".incomplete" in synced
    assert calls[rename + 1] == ("fsync", str(tmp_path))  # the rename itself
    assert checkpoint.is_complete(path)
    out.close()


def test_a_checkpoint_cut_short_never_looks_complete(tmp_path):
    path = str(tmp_path / "Checkpoint5")
    ck = checkpoint.CheckpointWriter(OneRank(), path, {"nbatch": 1})
    ck.shared("w", np.arange(3.0), "weights")
    ck.h5.close()  # the process dies here: no close()
    assert not os.path.exists(path) and not checkpoint.is_complete(path + ".incomplete")
    assert checkpoint.newest_checkpoint(str(tmp_path)) is None


def test_a_replaced_checkpoint_is_moved_aside_until_the_new_one_is_in_place(tmp_path, calls):
    path = str(tmp_path / "Last")
    for value in (1.0, 2.0):
        ck = checkpoint.CheckpointWriter(OneRank(), path, {"nbatch": 1})
        ck.shared("w", np.full(3, value), "weights")
        ck.close()
    renames = [c[1:] for c in calls if c[0] == "rename"]
    assert renames[-2:] == [(path, path + ".old"), (path + ".incomplete", path)]
    assert not os.path.exists(path + ".old")
    rd = checkpoint.CheckpointReader(path, 1)
    assert rd.shared("w")[0] == 2.0
    rd.close()


def test_sync_outputs_forgets_closed_files(tmp_path):
    f = outputs.open_text(tmp_path / "probe.txt")
    f.write("t = 1\n")
    outputs.sync_outputs()
    f.close()
    outputs.sync_outputs()  # a closed stream is skipped, not an error
    assert (tmp_path / "probe.txt").read_text() == "t = 1\n"

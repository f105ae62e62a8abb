"""Jitter in a running input layer: frames shifted and flipped by the drawn values, on any layout,
and continued exactly from a checkpoint."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from running import mpi_command

from pvmpi.io import pvp

NET = """
column:
  class: HyPerCol
  nx: 8
  ny: 6
  nbatch: 4
  stopTime: 6
  randomSeed: 1234567890
  checkpointWrite: true
  checkpointWriteDir: OUT/checkpoints
  checkpointWriteStepInterval: 2
Input:
  class: PvpLayer
  inputPath: IN
  displayPeriod: 1
  padValue: -1
  jitterChangeInterval: 1
  jitterChangeIntervalUnit: timestep
  maxShiftX: 2
  maxShiftY: 1
  xFlipEnabled: true
  yFlipEnabled: true
  yFlipToggle: true
  randomSeed: 4242
"""


def run(tmp_path, out, *args, ranks=1):
    cmd = [sys.executable, "-m", "pvmpi"] if ranks == 1 else mpi_command(ranks, "-m", "pvmpi")
    config = tmp_path / "net.yaml"
    proc = subprocess.run([*cmd, str(config), "-o", str(out), "-q", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def network(tmp_path):
    frames = np.arange(5 * 6 * 8, dtype=np.float32).reshape(5, 1, 6, 8, 1) + 1
    with pvp.DenseWriter(tmp_path / "in.pvp", 8, 6, 1) as w:
        for i, f in enumerate(frames):
            w.write(float(i), f)
    (tmp_path / "net.yaml").write_text(textwrap.dedent(NET).replace("IN", str(tmp_path / "in.pvp"))
                                       .replace("OUT", str(tmp_path / "out")))
    return frames[:, 0, :, :, 0]


def expected_frames(frames, steps=6, nbatch=4, seed=4242):
    """Independent draws: a change at every load (t = 0, 1, ...); the frame written at t uses draw t."""
    raw = iter(int(v) for v in np.random.RandomState(seed).randint(0, 2 ** 32, size=1000, dtype=np.uint64))
    flip_y = [False] * nbatch
    out = []
    for t in range(steps + 1):
        shown = []
        for b in range(nbatch):
            sx, sy = next(raw) % 5 - 2, next(raw) % 3 - 1
            fx = next(raw) % 100 > 50
            flip_y[b] = not flip_y[b]
            img = frames[(b + 4 * max(t - 1, 0)) % 5]  # byFile, displayPeriod 1: t = 0 and 1 show the first
            moved = np.full_like(img, -1.0)  # padValue where the shift leaves no picture
            ys, xs = slice(max(sy, 0), 6 + min(sy, 0)), slice(max(sx, 0), 8 + min(sx, 0))
            moved[ys, xs] = img[max(-sy, 0):6 - max(sy, 0), max(-sx, 0):8 - max(sx, 0)]
            if fx:
                moved = moved[:, ::-1]
            if flip_y[b]:
                moved = moved[::-1]
            shown.append(moved)
        out.append(np.stack(shown))
    return np.stack(out)


@pytest.mark.parametrize("ranks, layout", [(1, []), (4, ["-batchwidth", "2", "-rows", "2"])])
def test_jittered_frames(tmp_path, network, ranks, layout):
    run(tmp_path, tmp_path / "out", *layout, ranks=ranks)
    got = pvp.read(tmp_path / "out" / "Input.pvp")
    np.testing.assert_array_equal(got.times, np.arange(7))
    want = expected_frames(network)
    assert len({w.tobytes() for w in want[1:, 0]}) > 3  # the draws differ from step to step
    np.testing.assert_array_equal(got.values[..., 0], want)


def test_jitter_continues_from_a_checkpoint(tmp_path, network):
    out = tmp_path / "out"
    run(tmp_path, out)
    ref = (out / "Input.pvp").read_bytes()
    saved = tmp_path / "saved"
    shutil.copytree(out, saved)
    for name in ("Checkpoint4", "Checkpoint6"):  # as if the run had stopped after step 2
        shutil.rmtree(out / "checkpoints" / name)
    run(tmp_path, out, "-r")
    assert (out / "Input.pvp").read_bytes() == ref

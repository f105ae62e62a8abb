"""`python -m pvmpi pvp ...`: info, to-npy, to-hdf5, from-images, diff; and pvp.read's sparse form."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from shared_data import OPENPV_TESTS

from pvmpi.data.dead_leaves import make_image_set
from pvmpi.io import pvp, pvp_tools
from pvmpi.io.images import convert_features, load_image

RNG = np.random.default_rng(99)
NX, NY, NF = 5, 4, 3


def dense_file(path, writes=3, batch=2, scale=1.0, change=None):
    """A dense file of `writes` x `batch` frames; `change` = (write, b, y, x, f, delta)."""
    data = (RNG.standard_normal((writes, batch, NY, NX, NF)) * scale).astype(np.float32)
    return write_dense(path, data, change), data


def write_dense(path, data, change=None):
    data = data.copy()
    if change is not None:
        *where, delta = change
        data[tuple(where)] += np.float32(delta)
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        for t, frames in enumerate(data):
            w.write(float(100 * (t + 1)), frames)
    return path


def sparse_file(path, writes=3, batch=2):
    data = RNG.standard_normal((writes, batch, NY, NX, NF)).astype(np.float32)
    data[RNG.random(data.shape) > 0.3] = 0
    with pvp.SparseWriter(path, NX, NY, NF) as w:
        for t, frames in enumerate(data):
            w.write(float(t + 1), frames)
    return path, data


def weights_file(path, frames=3):
    ws = RNG.standard_normal((frames, 1, 6, 3, 3, 2)).astype(np.float32)
    with pvp.WeightsWriter(path) as w:
        for k, W in enumerate(ws):
            w.write(float(10 * k), W, 1, 1, 6)
    return path, ws


def run(*args):
    """pvp_tools.main, capturing stdout; returns (status, stdout)."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = pvp_tools.main([str(a) for a in args])
    return status, buf.getvalue()


# ------------------------------------------------------------------ pvp.read additions

def test_read_time_alias_and_sparse_form(tmp_path):
    path, data = sparse_file(tmp_path / "s.pvp")
    dense = pvp.read(path)
    assert dense.time is dense.times and not dense.is_sparse
    sp = pvp.read(path, sparse=True)
    assert sp.is_sparse and sp.values.shape == (3, 2, NY, NX, NF) and sp.batch_size == 2
    np.testing.assert_array_equal(sp.values.to_dense(), data)
    np.testing.assert_array_equal(sp.time, [1, 2, 3])
    assert sp.values.nnz == np.count_nonzero(data)
    np.testing.assert_array_equal(sp.values.active_counts(),
                                  np.count_nonzero(data.reshape(3, 2, -1), axis=2))
    idx, val = sp.values.frame(2, 1)
    np.testing.assert_array_equal(val, data[2, 1].ravel()[idx])
    part = pvp.read(path, frames=slice(1, 3), sparse=True)
    np.testing.assert_array_equal(part.values.to_dense(), data[1:3])
    # dense files have a sparse form too; weights do not
    dpath, ddata = dense_file(tmp_path / "d.pvp")
    np.testing.assert_array_equal(pvp.read(dpath, sparse=True).values.to_dense(), ddata)
    wpath, _ = weights_file(tmp_path / "w.pvp")
    with pytest.raises(ValueError, match="activity"):
        pvp.read(wpath, sparse=True)
    with pytest.raises(IndexError):
        sp.values.frame(0, 2)


# ------------------------------------------------------------------ info

def test_info_dense_sparse_weights(tmp_path):
    path, data = dense_file(tmp_path / "d.pvp")
    info = pvp_tools.file_info(path)
    assert info["kind"] == "activity" and info["batch_size"] == 2 and info["writes"] == 3
    assert info["frames"] == 6 and info["neurons"] == NX * NY * NF
    assert info["times"] == {"first": 100.0, "last": 300.0, "step": 100.0}
    assert info["values"]["min"] == pytest.approx(float(data.min()))
    assert info["values"]["max"] == pytest.approx(float(data.max()))
    assert info["values"]["mean"] == pytest.approx(float(data.astype(np.float64).mean()))
    spath, sdata = sparse_file(tmp_path / "s.pvp")
    sinfo = pvp_tools.file_info(spath)
    assert sinfo["values"]["nonzero"] == np.count_nonzero(sdata)
    assert sinfo["values"]["nonzero_fraction"] == pytest.approx(np.count_nonzero(sdata) / sdata.size)
    assert sinfo["values"]["min"] == pytest.approx(min(0.0, float(sdata.min())))
    wpath, ws = weights_file(tmp_path / "w.pvp")
    winfo = pvp_tools.file_info(wpath)
    assert winfo["kind"] == "weights" and winfo["frames"] == 3 and winfo["patches"] == 6
    assert (winfo["nyp"], winfo["nxp"], winfo["nfp"]) == (3, 3, 2)
    assert winfo["values"]["max"] == pytest.approx(float(ws.max()))
    status, out = run("info", path, spath, wpath)
    assert status == 0
    assert "6 = 3 write(s) x 2 batch element(s)" in out and "shared weights" in out
    assert "sparse activity" in out and "% nonzero" in out
    status, out = run("info", "--json", path)
    assert status == 0 and json.loads(out)["batch_size"] == 2


OPENPV_FILES = sorted(p.relative_to(OPENPV_TESTS) for p in OPENPV_TESTS.rglob("*.pvp"))


@pytest.mark.parametrize("name", OPENPV_FILES, ids=str)
def test_info_on_every_openpv_file(openpv_tests, name):
    path = openpv_tests / name
    status, out = run("info", path)
    assert status == 0 and out.startswith(str(path))
    info = pvp_tools.file_info(path)
    h = pvp.read_header(path)
    if info["kind"] == "activity":
        assert info["frames"] == h["nbands"] and info["writes"] * info["batch_size"] == info["frames"]
    else:
        assert info["frames"] == pvp.weights_num_frames(path)
    if info["frames"]:
        assert np.isfinite(info["values"]["mean"]) and info["values"]["min"] <= info["values"]["max"]


def test_openpv_files_found(openpv_tests):
    assert len(OPENPV_FILES) > 20


# ------------------------------------------------------------------ conversions

def test_to_npy_and_npz(tmp_path):
    path, data = dense_file(tmp_path / "d.pvp")
    status, out = run("to-npy", path)
    assert status == 0 and "d.npy" in out
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), data)
    np.testing.assert_array_equal(np.load(tmp_path / "d.time.npy"), [100, 200, 300])
    assert run("to-npy", path)[0] == 1  # never overwrites without --force
    assert run("to-npy", path, "--force", "--frames", "1:")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), data[1:])
    wpath, ws = weights_file(tmp_path / "w.pvp")
    assert run("to-npy", wpath, "-o", tmp_path / "w.npz")[0] == 0
    z = np.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(z["values"], ws)
    np.testing.assert_array_equal(z["time"], [0, 10, 20])
    assert int(z["header_numpatches"]) == 6


def test_to_hdf5_dense_sparse_weights(tmp_path):
    path, data = dense_file(tmp_path / "d.pvp")
    assert run("to-hdf5", path, "--gzip")[0] == 0
    with h5py.File(tmp_path / "d.h5") as f:
        np.testing.assert_array_equal(f["values"][...], data)
        np.testing.assert_array_equal(f["time"][...], [100, 200, 300])
        assert f.attrs["batch_size"] == 2 and f.attrs["nx"] == NX
    spath, sdata = sparse_file(tmp_path / "s.pvp")
    assert run("to-hdf5", spath, "--sparse", "--frames=-2:")[0] == 0
    with h5py.File(tmp_path / "s.h5") as f:
        g = f["values"]
        sf = pvp.SparseFrames(tuple(g.attrs["shape"]), g["indptr"][...], g["indices"][...],
                              g["data"][...])
        np.testing.assert_array_equal(sf.to_dense(), sdata[-2:])
    wpath, ws = weights_file(tmp_path / "w.pvp")
    assert run("to-hdf5", wpath, "-o", tmp_path / "sub" / "w.h5")[0] == 0
    with h5py.File(tmp_path / "sub" / "w.h5") as f:
        np.testing.assert_array_equal(f["values"][...], ws)
    assert run("to-hdf5", wpath, "--sparse", "-o", tmp_path / "w2.h5")[0] == 1


def test_from_images(tmp_path):
    listfile = make_image_set(tmp_path / "imgs", count=3, size=16, seed=5)
    out = tmp_path / "imgs.pvp"
    status, text = run("from-images", listfile, "-o", out, "--display-period", "20")
    assert status == 0 and "3 frame(s)" in text
    data = pvp.read(out)
    assert data.filetype == 4 and data.values.shape == (3, 1, 16, 16, 1)
    np.testing.assert_array_equal(data.times, [0, 20, 40])
    names = listfile.read_text().split()
    for k, name in enumerate(names):
        np.testing.assert_array_equal(data.values[k, 0], convert_features(load_image(name), 1))
    assert run("from-images", listfile, "-o", out)[0] == 1  # exists
    assert run("from-images", listfile, "-o", out, "--nf", "3", "--force")[0] == 0
    assert pvp.read(out).values.shape == (3, 1, 16, 16, 3)


def test_from_images_size_mismatch_names_the_file(tmp_path, capsys):
    small = make_image_set(tmp_path / "a", count=2, size=16, seed=1).read_text().split()
    big = make_image_set(tmp_path / "b", count=1, size=24, seed=1).read_text().split()
    listfile = tmp_path / "mixed.txt"
    listfile.write_text("\n".join(small + big) + "\n")
    out = tmp_path / "mixed.pvp"
    assert pvp_tools.main(["from-images", str(listfile), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pvmpi: error: ") and big[0] in err and "24x24" in err and "16x16" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()  # no partial file left behind


# ------------------------------------------------------------------ diff

def test_diff_detects_one_changed_value(tmp_path):
    a, data = dense_file(tmp_path / "a.pvp")
    b = write_dense(tmp_path / "b.pvp", data, change=(1, 1, 2, 3, 0, 1e-3))
    status, out = run("diff", a, b)
    assert status == 1
    assert "DIFFERENT" in out and "1 of 360 values differ" in out
    assert "first difference:   write 1, batch element 1, y 2, x 3, f 0 (t = 200)" in out
    assert "largest difference: write 1, batch element 1, y 2, x 3, f 0" in out
    assert run("diff", a, b, "--atol", "2e-3")[0] == 0


def test_diff_accepts_round_off(tmp_path):
    a, data = dense_file(tmp_path / "a.pvp")
    b = write_dense(tmp_path / "b.pvp", data * np.float32(1 + 3e-7))
    status, out = run("diff", a, b)
    assert status == 0 and "equal within rtol 1e-05" in out and "largest difference" in out
    assert run("diff", a, b, "--rtol", "1e-8")[0] == 1
    assert run("diff", a, a, "--rtol", "0", "--atol", "0")[0] == 0


def test_diff_first_and_largest_differ(tmp_path):
    a, data = dense_file(tmp_path / "a.pvp")
    data2 = data.copy()
    data2[0, 0, 0, 0, 1] += 0.01
    data2[2, 1, 3, 4, 2] += 5.0
    b = write_dense(tmp_path / "b.pvp", data2)
    res = pvp_tools.diff_files(a, b)
    assert not res.equal and res.differing == 2
    assert (res.first.frame, res.first.index) == (0, (0, 0, 1))
    assert (res.largest.frame, res.largest.index) == (5, (3, 4, 2))
    assert res.largest.abs == pytest.approx(5.0, rel=1e-5)


def test_diff_structure_sparse_weights_and_errors(tmp_path):
    a, data = dense_file(tmp_path / "a.pvp")
    fewer = write_dense(tmp_path / "fewer.pvp", data[:2])
    status, out = run("diff", a, fewer)
    assert status == 1 and "different frame counts: 6 vs 4" in out
    later = tmp_path / "later.pvp"
    with pvp.DenseWriter(later, NX, NY, NF) as w:
        for t, frames in enumerate(data):
            w.write(float(100 * (t + 2)), frames)
    status, out = run("diff", a, later)
    assert status == 1 and "different timestamps" in out
    # the same values in a sparse file compare equal (with a note)
    spath, sdata = sparse_file(tmp_path / "s.pvp")
    dpath = tmp_path / "s_dense.pvp"
    with pvp.DenseWriter(dpath, NX, NY, NF) as w:
        for t, frames in enumerate(sdata):
            w.write(float(t + 1), frames)
    status, out = run("diff", spath, dpath)
    assert status == 0 and "file types differ (6 vs 4)" in out
    w1, ws = weights_file(tmp_path / "w1.pvp")
    w2 = tmp_path / "w2.pvp"
    ws2 = ws.copy()
    ws2[2, 0, 4, 1, 2, 1] += 0.5
    with pvp.WeightsWriter(w2) as w:
        for k, W in enumerate(ws2):
            w.write(float(10 * k), W, 1, 1, 6)
    status, out = run("diff", w1, w2)
    assert status == 1 and "frame 2, arbor 0, kernel 4, y 1, x 2, f 1" in out
    status, out = run("diff", a, w1)
    assert status == 1 and "different shapes" in out
    assert run("diff", a, tmp_path / "missing.pvp")[0] == 2


def test_diff_directories(tmp_path):
    for d in ("r1", "r2"):
        (tmp_path / d).mkdir()
    _, data = dense_file(tmp_path / "r1" / "A.pvp")
    write_dense(tmp_path / "r2" / "A.pvp", data)
    weights_file(tmp_path / "r1" / "W.pvp")
    status, out = run("diff", tmp_path / "r1", tmp_path / "r2")
    assert status == 1 and "only in" in out and "W.pvp" in out
    os.remove(tmp_path / "r1" / "W.pvp")
    status, out = run("diff", tmp_path / "r1", tmp_path / "r2")
    assert status == 0 and "1 of 1 common .pvp files equal" in out


def test_module_exit_status_from_the_shell(tmp_path):
    a, data = dense_file(tmp_path / "a.pvp")
    b = write_dense(tmp_path / "b.pvp", data, change=(0, 0, 0, 0, 0, 1.0))
    cmd = [sys.executable, "-m", "pvmpi.io.pvp_tools", "diff", str(a), str(b)]
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 1
    cmd[-1] = str(a)
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0

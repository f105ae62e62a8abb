"""PVP reading and writing: round trips, byte layout, damaged files, OpenPV's own files."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.io import pvp

RNG = np.random.default_rng(1234)
NX, NY, NF = 5, 4, 3
N = NX * NY * NF


def header_ints(path, count=18, offset=0):
    """The int32 header fields, read independently of the module under test."""
    return np.fromfile(path, "<i4", count=count, offset=offset)


def sparse_frames(shape, batch, density=0.3):
    a = RNG.standard_normal((batch,) + shape).astype(np.float32)
    a[RNG.random(a.shape) > density] = 0.0
    return a


def assert_error_names(excinfo, path):
    assert str(path) in str(excinfo.value)


# ------------------------------------------------------------------ dense (type 4)

def test_dense_round_trip_and_layout(tmp_path):
    path = tmp_path / "a.pvp"
    writes = [RNG.standard_normal((3, NY, NX, NF)).astype(np.float32) for _ in range(2)]
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        assert header_ints(path)[17] == 0
        for t, frames in enumerate(writes):
            w.write(float(t + 1), frames)
            assert w.num_frames == 3 * (t + 1)
            assert header_ints(path)[17] == 3 * (t + 1)  # nbands after every write
    h = header_ints(path)
    assert list(h) == [80, 20, 4, NX, NY, NF, 1, N, 4, 3, 1, 1, NX, NY, 0, 0, 3, 6]  # nbatch: 3 per write
    assert np.fromfile(path, "<f8", count=1, offset=72)[0] == 0.0
    frame_bytes = 8 + 4 * N
    assert os.path.getsize(path) == 80 + 6 * frame_bytes
    for n in range(6):
        start = 80 + n * frame_bytes
        assert np.fromfile(path, "<f8", count=1, offset=start)[0] == 1 + n // 3
        data = np.fromfile(path, "<f4", count=N, offset=start + 8)
        np.testing.assert_array_equal(data, writes[n // 3][n % 3].ravel())
    with pvp.ActivityFile(path) as af:
        assert (af.nx, af.ny, af.nf, af.num_frames, af.filetype) == (NX, NY, NF, 6, 4)
        np.testing.assert_array_equal(af.times, [1, 1, 1, 2, 2, 2])
        frame = af.read_frame(4)
        assert frame.dtype == np.float32 and frame.shape == (NY, NX, NF)
        np.testing.assert_array_equal(frame, writes[1][1])
        np.testing.assert_array_equal(af.read_frame(-1), writes[1][2])
        idx, val = af.read_frame_sparse(0)
        np.testing.assert_array_equal(idx, np.flatnonzero(writes[0][0]))
        with pytest.raises(IndexError):
            af.read_frame(6)


def test_dense_single_frame_without_batch_axis(tmp_path):
    path = tmp_path / "one.pvp"
    frame = np.arange(N, dtype=np.float32).reshape(NY, NX, NF)
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        w.write(0.5, frame)
        with pytest.raises(ValueError):
            w.write(1.0, np.zeros((NX, NY, NF)))
    data = pvp.read(path)
    assert data.values.shape == (1, 1, NY, NX, NF) and data.batch_size == 1
    np.testing.assert_array_equal(data.values[0, 0], frame)


def test_dense_append_and_truncate(tmp_path):
    path = tmp_path / "a.pvp"
    frames = RNG.standard_normal((5, NY, NX, NF)).astype(np.float32)
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        w.write(1.0, frames[:2])
        w.write(2.0, frames[2:4])
        w.truncate(2)
        assert w.num_frames == 2 and header_ints(path)[17] == 2
        assert os.path.getsize(path) == 80 + 2 * (8 + 4 * N)
    with pvp.DenseWriter(path, NX, NY, NF, append=True) as w:
        assert w.num_frames == 2
        w.write(3.0, frames[4])
    with pvp.ActivityFile(path) as af:
        np.testing.assert_array_equal(af.times, [1, 1, 3])
        np.testing.assert_array_equal(af.read_frames(0, 3), frames[[0, 1, 4]])
    assert header_ints(path)[17] == 3
    with pytest.raises(PvmpiError) as err:
        pvp.DenseWriter(path, NX + 1, NY, NF, append=True)
    assert_error_names(err, path)
    with pytest.raises(PvmpiError):
        pvp.SparseWriter(path, NX, NY, NF, append=True)


def test_dense_append_drops_partial_frame(tmp_path):
    path = tmp_path / "a.pvp"
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        w.write(1.0, np.ones((2, NY, NX, NF), np.float32))
    with open(path, "ab") as f:
        f.write(b"\0" * 13)  # an interrupted write
    with pytest.warns(pvp.PvpWarning):
        w = pvp.DenseWriter(path, NX, NY, NF, append=True)
    with w:
        assert w.num_frames == 2
        w.write(2.0, np.zeros((NY, NX, NF), np.float32))
    with pvp.ActivityFile(path) as af:
        np.testing.assert_array_equal(af.times, [1, 1, 2])


def test_append_creates_missing_file(tmp_path):
    path = tmp_path / "new.pvp"
    with pvp.DenseWriter(path, NX, NY, NF, append=True) as w:
        w.write(0.0, np.ones((NY, NX, NF), np.float32))
    with pvp.ActivityFile(path) as af:
        assert af.num_frames == 1


# ------------------------------------------------------------------ sparse (type 6, 2)

def test_sparse_round_trip_and_layout(tmp_path):
    path = tmp_path / "s.pvp"
    first = sparse_frames((NY, NX, NF), 3)
    first[1] = 0.0  # an all-zero frame
    second = sparse_frames((NY, NX, NF), 3)
    with pvp.SparseWriter(path, NX, NY, NF) as w:
        w.write(1.0, first)
        assert header_ints(path)[17] == 3
        w.write(2.0, second)
        assert w.num_frames == 6
    h = header_ints(path)
    assert list(h) == [80, 20, 6, NX, NY, NF, 1, 0, 8, 3, 1, 1, NX, NY, 0, 0, 3, 6]  # nbatch: 3 per write
    # first frame by hand: time, numActive, (index, value) pairs in index order
    pos = 80
    assert np.fromfile(path, "<f8", count=1, offset=pos)[0] == 1.0
    count = np.fromfile(path, "<i4", count=1, offset=pos + 8)[0]
    entries = np.fromfile(path, pvp.SPARSE_ENTRY, count=count, offset=pos + 12)
    np.testing.assert_array_equal(entries["index"], np.flatnonzero(first[0]))
    np.testing.assert_array_equal(entries["value"], first[0].ravel()[np.flatnonzero(first[0])])
    size = 80 + sum(12 + 8 * np.count_nonzero(f) for f in np.concatenate([first, second]))
    assert os.path.getsize(path) == size
    with pvp.ActivityFile(path) as af:
        assert af.num_frames == 6
        np.testing.assert_array_equal(af.times, [1, 1, 1, 2, 2, 2])
        idx, val = af.read_frame_sparse(1)
        assert idx.dtype == np.uint32 and val.dtype == np.float32 and idx.size == 0
        np.testing.assert_array_equal(af.read_frames(0, 6), np.concatenate([first, second]))
    data = pvp.read(path)
    assert data.batch_size == 3 and data.filetype == 6
    np.testing.assert_array_equal(data.values, np.stack([first, second]))


def test_sparse_write_sparse_sorts_and_drops_zeros(tmp_path):
    path = tmp_path / "s.pvp"
    with pvp.SparseWriter(path, NX, NY, NF) as w:
        w.write_sparse(5.0, [([7, 2, 30], [1.5, -2.0, 0.0]), ([], [])])
        with pytest.raises(ValueError):
            w.write_sparse(6.0, [([N], [1.0])])
        with pytest.raises(ValueError):
            w.write_sparse(6.0, [([3, 3], [1.0, 2.0])])
    with pvp.ActivityFile(path) as af:
        idx, val = af.read_frame_sparse(0)
        np.testing.assert_array_equal(idx, [2, 7])
        np.testing.assert_array_equal(val, [-2.0, 1.5])
        assert af.read_frame_sparse(1)[0].size == 0
        dense = af.read_frame(0).ravel()
        assert dense[2] == -2.0 and dense[7] == 1.5 and np.count_nonzero(dense) == 2


def test_sparse_append_and_truncate(tmp_path):
    path = tmp_path / "s.pvp"
    frames = sparse_frames((NY, NX, NF), 4)
    with pvp.SparseWriter(path, NX, NY, NF) as w:
        for t in range(4):
            w.write(float(t), frames[t])
        w.truncate(2)
        assert header_ints(path)[17] == 2
    with pvp.SparseWriter(path, NX, NY, NF, append=True) as w:
        assert w.num_frames == 2
        w.write(9.0, frames[3])
    with pvp.ActivityFile(path) as af:
        np.testing.assert_array_equal(af.times, [0, 1, 9])
        np.testing.assert_array_equal(af.read_frames(0, 3), frames[[0, 1, 3]])


def test_sparse_append_drops_partial_frame(tmp_path):
    path = tmp_path / "s.pvp"
    with pvp.SparseWriter(path, NX, NY, NF) as w:
        w.write_sparse(1.0, [([1, 4], [1.0, 2.0])])
        w.write_sparse(2.0, [([3, 9, 12], [1.0, 2.0, 3.0])])
    cut(path, 5)  # the last frame was being written when the run died
    with pytest.warns(pvp.PvpWarning, match="frame 1"):
        w = pvp.SparseWriter(path, NX, NY, NF, append=True)
    with w:
        assert w.num_frames == 1 and header_ints(path)[17] == 1
        w.write_sparse(3.0, [([0], [5.0])])
    with pvp.ActivityFile(path) as af:
        np.testing.assert_array_equal(af.times, [1, 3])
        np.testing.assert_array_equal(af.read_frame_sparse(1)[0], [0])


def write_binary_sparse(path, frames, nx, ny, nf):
    """A type-2 file built with numpy alone: time, numActive, uint32 indices."""
    header = np.array([80, 20, 2, nx, ny, nf, 1, 0, 4, 2, 1, 1, nx, ny, 0, 0, 1, len(frames)],
                      "<i4").tobytes() + np.array([0.0], "<f8").tobytes()
    body = b"".join(np.array([t], "<f8").tobytes() + np.array([len(i)], "<i4").tobytes()
                    + np.asarray(i, "<u4").tobytes() for t, i in frames)
    Path(path).write_bytes(header + body)


def test_binary_sparse_type2(tmp_path):
    path = tmp_path / "b.pvp"
    write_binary_sparse(path, [(1.0, [0, 5, 59]), (2.0, []), (3.0, [11])], NX, NY, NF)
    with pvp.ActivityFile(path) as af:
        assert af.filetype == 2 and af.num_frames == 3
        np.testing.assert_array_equal(af.times, [1, 2, 3])
        idx, val = af.read_frame_sparse(0)
        np.testing.assert_array_equal(idx, [0, 5, 59])
        np.testing.assert_array_equal(val, [1, 1, 1])
        frame = af.read_frame(2)
        assert frame.shape == (NY, NX, NF) and frame.sum() == 1.0
        assert frame.ravel()[11] == 1.0
    assert pvp.read(path).values.shape == (3, 1, NY, NX, NF)


# ------------------------------------------------------------------ weights (type 5)

def weights(arbors=2, patches=6, nyp=3, nxp=4, nfp=2):
    return RNG.standard_normal((arbors, patches, nyp, nxp, nfp)).astype(np.float32)


def test_weights_round_trip_and_layout(tmp_path):
    path = tmp_path / "w.pvp"
    w0, w1 = weights(), weights()
    with pvp.WeightsWriter(path) as w:
        w.write(0.0, w0, 1, 2, 3)
        w.write(10.0, w1, 1, 2, 3)
        assert w.num_frames == 2
    frame_bytes = 104 + 2 * 6 * (8 + 4 * 3 * 4 * 2)
    assert os.path.getsize(path) == 2 * frame_bytes
    for k, (t, wk) in enumerate([(0.0, w0), (10.0, w1)]):
        base = k * frame_bytes
        h = header_ints(path, offset=base)
        assert list(h) == [104, 26, 5, 1, 2, 3, 2, 0, 4, 3, 1, 1, 1, 2, 0, 0, 1, 2]
        assert np.fromfile(path, "<f8", count=1, offset=base + 72)[0] == t
        assert list(np.fromfile(path, "<i4", count=3, offset=base + 80)) == [4, 3, 2]
        wmin, wmax = np.fromfile(path, "<f4", count=2, offset=base + 92)
        assert (wmin, wmax) == (wk.min(), wk.max())
        assert np.fromfile(path, "<i4", count=1, offset=base + 100)[0] == 6
        patch = np.fromfile(path, "<u2", count=2, offset=base + 104)
        assert list(patch) == [4, 3] and np.fromfile(path, "<u4", count=1, offset=base + 108) == 0
        first = np.fromfile(path, "<f4", count=24, offset=base + 112)
        np.testing.assert_array_equal(first, wk[0, 0].ravel())
    assert pvp.weights_num_frames(path) == 2
    with open(path, "rb") as f:
        f.seek(frame_bytes)
        assert pvp.read_header(f)["time"] == 10.0 and f.tell() == frame_bytes + 104
    t, got, h = pvp.read_weights(path, frame=1)
    assert t == 10.0 and h["numpatches"] == 6 and got.dtype == np.float32
    np.testing.assert_array_equal(got, w1)
    data = pvp.read(path)
    assert data.values.shape == (2, 2, 6, 3, 4, 2) and data.filetype == 5
    np.testing.assert_array_equal(data.times, [0.0, 10.0])
    np.testing.assert_array_equal(data.values[0], w0)
    part = pvp.read(path, frames=slice(1, None))
    np.testing.assert_array_equal(part.values[0], w1)


def test_weights_compressed(tmp_path):
    path = tmp_path / "wc.pvp"
    w0 = weights(arbors=1)
    with pvp.WeightsWriter(path, compressed=True) as w:
        w.write(3.0, w0, 2, 1, 3)
    h = header_ints(path)
    assert (h[8], h[9]) == (1, 1)
    assert os.path.getsize(path) == 104 + 6 * (8 + 3 * 4 * 2)
    q = np.fromfile(path, "u1", count=24, offset=112)
    span = float(w0.max()) - float(w0.min())
    np.testing.assert_array_equal(q, np.floor(255 * (w0[0, 0].ravel() - w0.min()) / span + 0.5))
    t, got, _ = pvp.read_weights(path)
    assert t == 3.0
    assert np.max(np.abs(got - w0)) <= span / 255 / 2 + 1e-6
    with pytest.raises(PvmpiError):
        pvp.WeightsWriter(path, append=True, compressed=False)


def test_weights_append_and_truncate(tmp_path):
    path = tmp_path / "w.pvp"
    ws = [weights() for _ in range(3)]
    with pvp.WeightsWriter(path) as w:
        for t, wk in enumerate(ws):
            w.write(float(t), wk, 1, 2, 3)
        w.truncate(1)
    assert pvp.weights_num_frames(path) == 1
    with pvp.WeightsWriter(path, append=True) as w:
        assert w.num_frames == 1
        w.write(5.0, ws[2], 1, 2, 3)
        with pytest.raises(PvmpiError):
            w.write(6.0, weights(patches=3), 1, 1, 3)
    data = pvp.read(path)
    np.testing.assert_array_equal(data.times, [0.0, 5.0])
    np.testing.assert_array_equal(data.values[1], ws[2])


# ------------------------------------------------------------------ read(): batch inference

def test_read_infers_batch_and_slices(tmp_path):
    path = tmp_path / "a.pvp"
    frames = RNG.standard_normal((4, 2, NY, NX, NF)).astype(np.float32)
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        for t in range(4):
            w.write(float(t), frames[t])
    data = pvp.read(path)
    assert data.batch_size == 2 and data.values.shape == (4, 2, NY, NX, NF)
    np.testing.assert_array_equal(data.values, frames)
    np.testing.assert_array_equal(data.times, [0, 1, 2, 3])
    assert data.header["nbands"] == 8
    part = pvp.read(path, frames=slice(1, 3))
    np.testing.assert_array_equal(part.values, frames[1:3])
    np.testing.assert_array_equal(part.times, [1, 2])
    every_other = pvp.read(path, frames=slice(None, None, -2))
    np.testing.assert_array_equal(every_other.values, frames[::-2])
    assert pvp.read(path, frames=slice(9, 10)).values.shape == (0, 2, NY, NX, NF)


def test_read_unequal_batches_keeps_frames(tmp_path):
    path = tmp_path / "a.pvp"
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        w.write(1.0, np.zeros((2, NY, NX, NF), np.float32))
        w.write(2.0, np.ones((3, NY, NX, NF), np.float32))
    data = pvp.read(path)
    assert data.batch_size == 1 and data.values.shape == (5, 1, NY, NX, NF)
    np.testing.assert_array_equal(data.times, [1, 1, 2, 2, 2])


def test_infer_batch_size():
    assert pvp.infer_batch_size([]) == 1
    assert pvp.infer_batch_size([0, 0, 1, 1, 2, 2]) == 2
    assert pvp.infer_batch_size([0, 1, 2]) == 1
    assert pvp.infer_batch_size([0, 0, 1]) == 1


# ------------------------------------------------------------------ damaged files

def dense_file(tmp_path, frames=2):
    path = tmp_path / "d.pvp"
    with pvp.DenseWriter(path, NX, NY, NF) as w:
        w.write(1.0, np.ones((frames, NY, NX, NF), np.float32))
    return path


def sparse_file(tmp_path):
    path = tmp_path / "s.pvp"
    with pvp.SparseWriter(path, NX, NY, NF) as w:
        w.write(1.0, sparse_frames((NY, NX, NF), 2, density=0.5))
    return path


def patch_bytes(path, offset, dtype, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(np.array([value], dtype).tobytes())


def cut(path, nbytes):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - nbytes)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pvp"
    for call in (pvp.read_header, pvp.ActivityFile, pvp.read_weights, pvp.read):
        with pytest.raises(PvmpiError, match="not found") as err:
            call(path)
        assert_error_names(err, path)


@pytest.mark.parametrize("offset,value,message", [
    (0, 81, "headersize"),
    (4, 26, "numparams"),
    (8, 7, "unknown PVP file type"),
    (8, 5, "headersize"),
    (8, 1, "unsupported"),
    (8, 3, "headersize"),
    (20, 0, "nf 0"),
    (32, 8, "unsupported dense"),
])
def test_bad_header(tmp_path, offset, value, message):
    path = dense_file(tmp_path)
    patch_bytes(path, offset, "<i4", value)
    with pytest.raises(PvmpiError, match=message) as err:
        pvp.ActivityFile(path)
    assert_error_names(err, path)


def test_truncated_header(tmp_path):
    path = tmp_path / "short.pvp"
    path.write_bytes(b"\x50\0\0\0" * 5)
    with pytest.raises(PvmpiError, match="truncated") as err:
        pvp.read_header(path)
    assert_error_names(err, path)


def test_truncated_dense(tmp_path):
    path = dense_file(tmp_path)
    cut(path, 4)
    with pytest.raises(PvmpiError, match="truncated") as err:
        pvp.ActivityFile(path)
    assert_error_names(err, path)
    with pytest.raises(PvmpiError):
        pvp.read(path)


def test_nbands_disagreeing_with_data_warns(tmp_path):
    path = dense_file(tmp_path, frames=3)
    patch_bytes(path, 68, "<i4", 7)
    with pytest.warns(pvp.PvpWarning, match="nbands"):
        af = pvp.ActivityFile(path)
    assert af.num_frames == 3
    af.close()


def test_truncated_sparse(tmp_path):
    path = sparse_file(tmp_path)
    cut(path, 3)
    with pytest.raises(PvmpiError, match="truncated") as err:
        pvp.ActivityFile(path)
    assert_error_names(err, path)


def test_truncated_sparse_prefix(tmp_path):
    path = sparse_file(tmp_path)
    with open(path, "ab") as f:
        f.write(b"\0" * 5)
    with pytest.raises(PvmpiError, match="past the end"):
        pvp.ActivityFile(path)


@pytest.mark.parametrize("count", [-1, N + 1])
def test_corrupt_sparse_count(tmp_path, count):
    path = sparse_file(tmp_path)
    patch_bytes(path, 88, "<i4", count)
    with pytest.raises(PvmpiError, match="numActive") as err:
        pvp.ActivityFile(path)
    assert_error_names(err, path)


def test_corrupt_sparse_index(tmp_path):
    path = tmp_path / "s.pvp"
    with pvp.SparseWriter(path, NX, NY, NF) as w:
        w.write_sparse(1.0, [([1, 2], [1.0, 2.0])])
    patch_bytes(path, 92 + 8, "<u4", N)
    with pvp.ActivityFile(path) as af:
        with pytest.raises(PvmpiError, match="index") as err:
            af.read_frame(0)
    assert_error_names(err, path)


def test_weights_not_whole_frames(tmp_path):
    path = tmp_path / "w.pvp"
    with pvp.WeightsWriter(path) as w:
        w.write(0.0, weights(), 1, 2, 3)
    cut(path, 1)
    for call in (pvp.read_weights, pvp.weights_num_frames, pvp.read):
        with pytest.raises(PvmpiError, match="whole number") as err:
            call(path)
        assert_error_names(err, path)


def test_weights_frame_header_corrupt(tmp_path):
    path = tmp_path / "w.pvp"
    with pvp.WeightsWriter(path) as w:
        w.write(0.0, weights(), 1, 2, 3)
        w.write(1.0, weights(), 1, 2, 3)
    frame_bytes = os.path.getsize(path) // 2
    patch_bytes(path, frame_bytes + 100, "<i4", 5)  # numpatches of frame 1
    pvp.read_weights(path, 0)
    with pytest.raises(PvmpiError, match="frame 1"):
        pvp.read_weights(path, 1)


def test_activity_reader_rejects_weights_and_vice_versa(tmp_path):
    wpath = tmp_path / "w.pvp"
    with pvp.WeightsWriter(wpath) as w:
        w.write(0.0, weights(), 1, 2, 3)
    with pytest.raises(PvmpiError, match="unsupported PVP file type 5"):
        pvp.ActivityFile(wpath)
    patch_bytes(wpath, 8, "<i4", 3)  # non-shared weights: same header size
    with pytest.raises(PvmpiError, match="unsupported PVP file type 3") as err:
        pvp.ActivityFile(wpath)
    assert_error_names(err, wpath)
    assert pvp.read_weights(wpath)[1].shape == (2, 6, 3, 4, 2)
    with pytest.raises(PvmpiError, match="not a weights file"):
        pvp.read_weights(dense_file(tmp_path))


# ------------------------------------------------------------------ OpenPV-written files

def test_openpv_gpulca_weights(openpv_tests):
    path = openpv_tests / "GPULCATest/input/weights.pvp"
    h = pvp.read_header(path)
    assert (h["filetype"], h["nx"], h["ny"], h["nf"]) == (5, 64, 32, 24)
    assert (h["numpatches"], h["nxp"], h["nyp"], h["nfp"], h["nbands"]) == (24, 18, 18, 1, 1)
    assert pvp.weights_num_frames(path) == 1
    t, w, _ = pvp.read_weights(path)
    assert t == 0.0 and w.shape == (1, 24, 18, 18, 1)
    assert w.min() == np.float32(h["wMin"]) and w.max() == np.float32(h["wMax"])
    patch = 8 + 4 * 18 * 18
    raw = np.fromfile(path, "<f4", count=18 * 18, offset=104 + 23 * patch + 8)
    np.testing.assert_array_equal(w[0, 23].ravel(), raw)


@pytest.mark.parametrize("name,shape,frames,first_times", [
    ("GPULCATest/input/initialV1.pvp", (32, 64, 24), 1, [0.0]),
    ("GPULCATest/input/inputImages.pvp", (64, 128, 1), 2, [20.0, 40.0]),
    ("GPULCATest/input/correct.pvp", (64, 128, 1), 40, [1.0, 2.0, 3.0]),
])
def test_openpv_gpulca_activity(openpv_tests, name, shape, frames, first_times):
    path = openpv_tests / name
    with pvp.ActivityFile(path) as af:
        assert af.filetype == 4 and af.frame_shape == shape and af.num_frames == frames
        np.testing.assert_array_equal(af.times[:len(first_times)], first_times)
        n = frames - 1
        raw = np.fromfile(path, "<f4", count=int(np.prod(shape)),
                          offset=80 + n * (8 + 4 * int(np.prod(shape))) + 8)
        np.testing.assert_array_equal(af.read_frame(n).ravel(), raw)


def test_openpv_sparse_values(openpv_tests):
    path = openpv_tests / "WriteSparseFileTest/input/correct.pvp"
    with pvp.ActivityFile(path) as af:
        assert af.filetype == 6 and af.frame_shape == (32, 32, 8) and af.num_frames == 10
        np.testing.assert_array_equal(af.times, np.arange(1, 11))
        count = np.fromfile(path, "<i4", count=1, offset=88)[0]
        idx, val = af.read_frame_sparse(0)
        assert idx.size == count
        assert np.all(np.diff(idx.astype(np.int64)) > 0) and np.all(val != 0)
        frame = af.read_frame(0).ravel()
        np.testing.assert_array_equal(frame[idx], val)
        assert np.count_nonzero(frame) == count


OPENPV_TESTS = Path(os.environ.get(
    "PVMPI_OPENPV_TESTS", Path(__file__).resolve().parents[3] / "shared" / "openpv-tests"))
OPENPV_FILES = sorted(p.relative_to(OPENPV_TESTS) for p in OPENPV_TESTS.rglob("*.pvp"))


@pytest.mark.parametrize("name", OPENPV_FILES, ids=str)
def test_every_openpv_file_opens(openpv_tests, name):
    path = openpv_tests / name
    h = pvp.read_header(path)
    size = os.path.getsize(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pvp.PvpWarning)
        if h["filetype"] == 5:
            frames = pvp.weights_num_frames(path)
            assert frames >= 1
            frame_bytes = 104 + h["nbands"] * h["numpatches"] * (
                8 + h["datasize"] * h["nxp"] * h["nyp"] * h["nfp"])
            assert frames * frame_bytes == size
            assert pvp.read_weights(path, frames - 1)[1].shape[:2] == (h["nbands"],
                                                                   h["numpatches"])
            return
        with pvp.ActivityFile(path) as af:
            assert af.num_frames == h["nbands"] and len(af.times) == af.num_frames
            assert (af.nx, af.ny, af.nf) == (h["nx"], h["ny"], h["nf"])
            if h["filetype"] == 4:
                assert size == 80 + af.num_frames * (8 + 4 * h["nx"] * h["ny"] * h["nf"])
            last = af.read_frame(af.num_frames - 1)
            assert last.shape == (h["ny"], h["nx"], h["nf"]) and np.all(np.isfinite(last))


def test_the_batch_size_is_in_the_header_as_petavisions_batch_release_wrote_it(tmp_path):
    """nbatch in an activity file's header is the frames of one write (the global batch): a 2015-style
    analysis script gets each batch element's series as frames (t - 1) * nbatch + b of nbands / nbatch."""
    nb, T = 3, 4
    data = np.arange(T * nb * 2 * 2 * 1, dtype=np.float32).reshape(T, nb, 2, 2, 1)
    for writer in (pvp.DenseWriter, pvp.SparseWriter):
        path = tmp_path / f"{writer.__name__}.pvp"
        with writer(path, 2, 2, 1) as w:
            for t in range(T):
                w.write(float(t + 1), data[t])
        h = pvp.read_header(path)
        assert h["nbatch"] == nb and h["nbands"] == T * nb
        values = pvp.read(path).values.reshape(h["nbands"], 2, 2, 1)  # frames in file order
        for b in range(nb):
            series = [values[(t - 1) * h["nbatch"] + b] for t in range(1, h["nbands"] // h["nbatch"] + 1)]
            np.testing.assert_array_equal(np.stack(series), data[:, b])
        with writer(path, 2, 2, 1, append=True) as w:  # appending keeps it
            w.write(float(T + 1), data[0])
        assert pvp.read_header(path)["nbatch"] == nb

"""Halo exchange equals the window of the globally padded array, for every
layout of the world's ranks (run under mpiexec -n 1, 2, 3, 4, ...)."""
import numpy as np
import pytest

from pvmpi.errors import PvmpiError

PAD_VALUE = -7.25


def _global_restricted(nbatch, ny, nx, nf, seed):
    # Identical on every rank: every rank builds the whole reference.
    return np.random.default_rng(seed).standard_normal((nbatch, ny, nx, nf)).astype(np.float32)


def _run_layout(comms, nb_local, ny_local, nx_local, nf, mx, my, mirror, method):
    from pvmpi.parallel.halo import HaloExchange

    lay = comms.layout
    nbatch, ny, nx = nb_local * lay.batch_width, ny_local * lay.rows, nx_local * lay.columns
    t = comms.tile(nbatch, ny, nx, name="L")
    g = _global_restricted(nbatch, ny, nx, nf, seed=mx + 4 * my + 16 * nf + 64 * nb_local)
    pad = ((0, 0), (my, my), (mx, mx), (0, 0))
    if mirror:
        g_ext = np.pad(g, pad, mode="symmetric")
    else:
        g_ext = np.pad(g, pad, mode="constant", constant_values=PAD_VALUE)
    expected = g_ext[t.batch_slice, t.ky0:t.ky0 + ny_local + 2 * my,
                     t.kx0:t.kx0 + nx_local + 2 * mx]
    # The caller's A: restricted data fresh, interior halo stale (NaN), boundary
    # halo prefilled with padValue (mirror=False) or stale (mirror=True).
    a = np.full(t.extended_shape(nf, mx, my), np.nan, np.float32)
    if not mirror:
        gy0, gx0 = t.ky0 - my, t.kx0 - mx
        ys = np.arange(gy0, gy0 + a.shape[1])
        xs = np.arange(gx0, gx0 + a.shape[2])
        outside = ((ys < 0) | (ys >= ny))[:, None] | ((xs < 0) | (xs >= nx))[None, :]
        a[:, outside] = PAD_VALUE
    a[:, my:my + ny_local, mx:mx + nx_local] = g[t.batch_slice, t.y_slice, t.x_slice]
    halo = HaloExchange(comms, t, nf, mx, my, mirror, method=method)
    try:
        halo.exchange(a)
        first = a.copy()
        a[:, :my] = np.nan          # a second exchange on the same object works too
        a[:, :, -mx if mx else a.shape[2]:] = np.nan
        if not mirror:
            a[:, outside] = PAD_VALUE
        halo.start(a)
        halo.wait()
    finally:
        halo.free()
    return first, a, expected


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("method", ["subarray", "packed"])
@pytest.mark.parametrize("mirror", [True, False])
@pytest.mark.parametrize("nb_local", [1, 2])
@pytest.mark.parametrize("nf", [1, 3])
@pytest.mark.parametrize("my", [0, 1, 2, 3])
@pytest.mark.parametrize("mx", [0, 1, 2, 3])
def test_halo_equals_global_window(comms_for, world_layouts, mx, my, nf, nb_local, mirror,
                                   method):
    ny_local = 3 + mx % 2            # includes margin == tile size (3)
    nx_local = 3 + (my + nf) % 3
    failures = []
    for lay in world_layouts:
        first, second, expected = _run_layout(comms_for(lay), nb_local, ny_local, nx_local,
                                              nf, mx, my, mirror, method)
        for label, got in (("first", first), ("second", second)):
            if not np.array_equal(got, expected):
                failures.append(f"{lay}: {label} exchange differs at "
                                f"{np.argwhere(got != expected)[:3].tolist()}")
    assert not failures, failures


@pytest.mark.mpi(min_size=1)
def test_margin_wider_than_tile_is_refused(comms_for, world_layouts):
    from pvmpi.parallel.halo import HaloExchange

    for lay in world_layouts:
        comms = comms_for(lay)
        t = comms.tile(lay.batch_width, 2 * lay.rows, 3 * lay.columns, name="V1")
        if lay.columns > 1:
            with pytest.raises(PvmpiError, match="margin 4 in x") as err:
                HaloExchange(comms, t, 1, 4, 0, mirror=False)
            assert err.value.group == "V1" and "fewer NumColumns" in err.value.hint
        if lay.rows > 1:
            with pytest.raises(PvmpiError, match="margin 3 in y") as err:
                HaloExchange(comms, t, 1, 0, 3, mirror=False)
            assert err.value.group == "V1" and "fewer NumRows" in err.value.hint
        if lay.rows == 1:
            with pytest.raises(PvmpiError, match="margin 3 in y"):
                HaloExchange(comms, t, 1, 0, 3, mirror=True)
            # without mirroring a single row of tiles has nothing to fill in y
            HaloExchange(comms, t, 1, 0, 3, mirror=False).free()


@pytest.mark.mpi(min_size=1)
def test_single_tile_sends_nothing(comms_for, world_layouts):
    from pvmpi.parallel.halo import HaloExchange

    for lay in world_layouts:
        comms = comms_for(lay)
        t = comms.tile(lay.batch_width, 4 * lay.rows, 4 * lay.columns)
        halo = HaloExchange(comms, t, 2, 1, 2, mirror=True)
        expected_peers = sum(1 for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                             if (dy, dx) != (0, 0)
                             and 0 <= comms.row + dy < lay.rows
                             and 0 <= comms.column + dx < lay.columns)
        assert len(halo._peers) == expected_peers
        halo.free()


@pytest.mark.mpi(min_size=1)
def test_wrong_buffer_is_rejected(comms_for, world_layouts):
    from pvmpi.parallel.halo import HaloExchange

    lay = world_layouts[0]
    comms = comms_for(lay)
    t = comms.tile(lay.batch_width, 2 * lay.rows, 2 * lay.columns)
    halo = HaloExchange(comms, t, 1, 1, 1, mirror=True)
    with pytest.raises(ValueError):
        halo.exchange(np.zeros(t.extended_shape(1, 1, 1), np.float64))
    with pytest.raises(ValueError):
        halo.exchange(np.zeros(t.extended_shape(1, 1, 1), np.float32)[:, ::-1])
    with pytest.raises(RuntimeError):
        halo.wait()
    halo.free()

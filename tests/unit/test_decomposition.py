"""Decomposition arithmetic for 1..4096 ranks, without MPI."""
import random
import subprocess
import sys

import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.parallel.decomposition import Layout, check_world, choose_layout, coords, layouts, rank_of, tile


@pytest.mark.parametrize("world, given, expected", [
    (1, {}, (1, 1, 1)),
    (2, {}, (1, 1, 2)),
    (3, {}, (1, 1, 3)),
    (4, {}, (1, 2, 2)),
    (6, {}, (1, 2, 3)),
    (8, {}, (1, 2, 4)),
    (9, {}, (1, 3, 3)),
    (12, {}, (1, 3, 4)),
    (16, {}, (1, 4, 4)),
    (4096, {}, (1, 64, 64)),
    (5, {}, (1, 2, 2)),            # OpenPV: integer division leaves a rank out
    (8, {"batch_width": 2}, (2, 2, 2)),
    (8, {"batch_width": 8}, (8, 1, 1)),
    (12, {"batch_width": 3}, (3, 2, 2)),
    (8, {"rows": 4}, (1, 4, 2)),
    (8, {"columns": 8}, (1, 1, 8)),
    (8, {"batch_width": 2, "rows": 1}, (2, 1, 4)),
    (8, {"batch_width": 2, "columns": 1}, (2, 4, 1)),
    (8, {"rows": 2, "columns": 2}, (1, 2, 2)),
    (6, {"rows": 4}, (1, 4, 1)),
])
def test_choose_layout_defaults(world, given, expected):
    lay = choose_layout(world, **given)
    assert (lay.batch_width, lay.rows, lay.columns) == expected
    assert lay.size == expected[0] * expected[1] * expected[2]


@pytest.mark.parametrize("given, param", [
    ({"batch_width": 8}, "BatchWidth"),
    ({"rows": 5}, "NumRows"),
    ({"columns": 5}, "NumColumns"),
    ({"rows": 0}, "NumRows"),
    ({"batch_width": -1}, "BatchWidth"),
    ({"columns": 1.5}, "NumColumns"),
])
def test_choose_layout_errors(given, param):
    with pytest.raises(PvmpiError) as err:
        choose_layout(4, **given)
    assert err.value.param == param
    assert param in str(err.value)


def test_layouts_enumerates_exact_factorizations():
    assert [(l.batch_width, l.rows, l.columns) for l in layouts(4)] == [
        (1, 1, 4), (1, 2, 2), (1, 4, 1), (2, 1, 2), (2, 2, 1), (4, 1, 1)]
    for n in (1, 7, 12, 64, 4096):
        got = layouts(n)
        assert all(l.size == n for l in got)
        assert len(set(got)) == len(got)
    assert len(layouts(4096)) == 91  # C(12 + 2, 2)


def test_check_world():
    check_world(Layout(2, 2, 1), 4)
    with pytest.raises(PvmpiError, match="needs 8 MPI processes, have only 4") as err:
        check_world(Layout(2, 2, 2), 4)
    assert "mpiexec -n 8" in err.value.hint
    with pytest.raises(PvmpiError, match="uses 4 MPI processes, but 5 were started") as err:
        check_world(choose_layout(5), 5)
    assert "NumColumns=5" in err.value.hint


def test_rank_coords_round_trip_up_to_4096():
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 30, 64, 96, 128, 1000, 4096):
        for lay in layouts(n):
            seen = set()
            for r in range(n):
                b, row, col = coords(r, lay)
                assert 0 <= b < lay.batch_width and 0 <= row < lay.rows and 0 <= col < lay.columns
                assert rank_of(b, row, col, lay) == r
                seen.add((b, row, col))
            assert len(seen) == n


def test_rank_order_is_openpv():
    lay = Layout(2, 3, 4)
    assert coords(0, lay) == (0, 0, 0)
    assert coords(1, lay) == (0, 0, 1)      # column fastest
    assert coords(4, lay) == (0, 1, 0)
    assert coords(12, lay) == (1, 0, 0)     # batch slowest
    assert rank_of(1, 2, 3, lay) == 3 + 4 * (2 + 3 * 1)
    with pytest.raises(ValueError):
        coords(24, lay)
    with pytest.raises(ValueError):
        rank_of(0, 3, 0, lay)


def test_tiles_cover_layer_exactly_once():
    rng = random.Random(1234)
    sizes = list(range(1, 4097))
    for _ in range(300):
        n = rng.choice(sizes[:64] + [96, 128, 256, 1024, 4096])
        lay = rng.choice(layouts(n))
        nbatch = lay.batch_width * rng.randint(1, 3)
        ny = lay.rows * rng.randint(1, 4)
        nx = lay.columns * rng.randint(1, 4)
        count = np.zeros((nbatch, ny, nx), np.int32)
        ranks = range(n) if n <= 256 else rng.sample(range(n), 256)
        for r in ranks:
            t = tile(nbatch, ny, nx, lay, r, name="L")
            b, row, col = coords(r, lay)
            assert (t.nb, t.ny, t.nx) == (nbatch // lay.batch_width, ny // lay.rows,
                                          nx // lay.columns)
            assert (t.kb0, t.ky0, t.kx0) == (t.nb * b, t.ny * row, t.nx * col)
            assert (t.nbatch_global, t.ny_global, t.nx_global) == (nbatch, ny, nx)
            count[t.batch_slice, t.y_slice, t.x_slice] += 1
        if n <= 256:
            assert (count == 1).all()
        else:
            assert count.max() == 1 and count.sum() == 256 * count.size // n


def test_tile_shapes():
    t = tile(4, 8, 12, Layout(2, 2, 3), 7, name="V1")
    assert t.name == "V1"
    assert t.restricted_shape(3) == (2, 4, 4, 3)
    assert t.extended_shape(3, margin_x=2, margin_y=1) == (2, 6, 8, 3)


@pytest.mark.parametrize("sizes, quantity, pname", [
    ((3, 8, 8), "nbatch=3", "BatchWidth=2"),
    ((4, 7, 8), "ny=7", "NumRows=2"),
    ((4, 8, 9), "nx=9", "NumColumns=2"),
])
def test_tile_divisibility_errors(sizes, quantity, pname):
    with pytest.raises(PvmpiError) as err:
        tile(*sizes, Layout(2, 2, 2), 0, name="Input")
    e = err.value
    assert e.group == "Input"
    assert quantity in e.what and pname in e.what
    assert str(e).startswith("Input: ")
    assert "these fit Input" in e.hint or "no layout" in e.hint


def test_tile_error_hint_lists_working_layouts():
    with pytest.raises(PvmpiError) as err:
        tile(1, 6, 9, Layout(1, 2, 2), 0, name="Image")
    # nbatch 1, ny 6, nx 9 with 4 ranks: only 1x4x1 fails (6 % 4), 1x2x2 fails, none fit
    assert "no layout of 4 processes" in err.value.hint
    with pytest.raises(PvmpiError) as err:
        tile(2, 6, 8, Layout(1, 4, 1), 0, name="Image")
    assert "BatchWidth=1 NumRows=1 NumColumns=4" in err.value.hint
    assert "BatchWidth=1 NumRows=2 NumColumns=2" in err.value.hint


def test_tile_rejects_nonpositive_sizes():
    with pytest.raises(PvmpiError, match="ny must be a positive integer"):
        tile(1, 0, 4, Layout(1, 1, 1), 0, name="L")


def test_import_does_not_load_mpi4py():
    code = ("import sys, pvmpi.parallel.decomposition, pvmpi.parallel; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    subprocess.run([sys.executable, "-c", code], check=True)

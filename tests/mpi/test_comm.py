"""Communicators and collectives, for every layout of the world's ranks."""
import gc
import weakref

import numpy as np
import pytest

from pvmpi.errors import PvmpiError


def _world():
    from mpi4py import MPI
    return MPI.COMM_WORLD


@pytest.mark.mpi(min_size=1)
def test_communicators_follow_layout(comms_for, world_layouts):
    from mpi4py import MPI

    from pvmpi.parallel.decomposition import coords, rank_of

    world = _world()
    for lay in world_layouts:
        c = comms_for(lay)
        assert c.world != world and c.world.Get_size() == world.Get_size()
        assert c.rank == world.Get_rank()
        assert (c.batch_index, c.row, c.column) == coords(c.rank, lay)
        assert c.is_root == (c.rank == 0)
        assert c.spatial.Get_topology() == MPI.CART
        dims, periods, mine = c.spatial.Get_topo()
        assert list(dims) == [lay.rows, lay.columns]
        assert list(periods) == [False, False]
        assert list(mine) == [c.row, c.column]
        # members of spatial: same batch index, in (row, column) order
        members = c.spatial.allgather(c.rank)
        assert members == [rank_of(c.batch_index, r, col, lay)
                           for r in range(lay.rows) for col in range(lay.columns)]
        members = c.batch.allgather(c.rank)
        assert members == [rank_of(b, c.row, c.column, lay) for b in range(lay.batch_width)]


@pytest.mark.mpi(min_size=1)
def test_allreduce_sum_identical_everywhere(comms_for, world_layouts):
    world = _world()
    for lay in world_layouts:
        c = comms_for(lay)
        contributions = [np.random.default_rng(r).standard_normal((5, 7)).astype(np.float32)
                         for r in range(c.size)]
        arr = contributions[c.rank].copy()
        total = c.allreduce_sum(arr)
        assert total is not arr
        np.testing.assert_allclose(total, np.sum(contributions, axis=0, dtype=np.float64),
                                   rtol=1e-5, atol=1e-5)
        everyone = world.allgather(total.tobytes())
        assert all(b == everyone[0] for b in everyone)

        out = np.empty_like(arr)
        req = c.iallreduce_sum(arr, out)
        req.wait()
        assert out.tobytes() == total.tobytes()

        counts = c.allreduce_sum(np.full(3, c.rank + 1, np.float32))
        assert (counts == c.size * (c.size + 1) / 2).all()


@pytest.mark.mpi(min_size=1)
def test_spatial_sum_min_max_per_batch_slice(comms_for, world_layouts):
    from pvmpi.parallel.decomposition import rank_of

    for lay in world_layouts:
        c = comms_for(lay)
        nb, k = 2, 4
        arr = np.full((nb, k), float(c.rank), np.float64)
        arr[:, 0] = 1.0
        total = c.spatial_sum(arr)
        members = [rank_of(c.batch_index, r, col, lay)
                   for r in range(lay.rows) for col in range(lay.columns)]
        assert (total[:, 1:] == sum(members)).all()
        assert (total[:, 0] == lay.rows * lay.columns).all()
        assert (c.spatial_min(arr[:, 1].copy()) == min(members)).all()
        assert (c.spatial_max(arr[:, 1].copy()) == max(members)).all()
        # the non-blocking forms (a probe's sums, read a step later) give the same
        np.testing.assert_array_equal(_reduce(c, "ispatial_sum", arr), total)
        assert (_reduce(c, "ispatial_max", arr[:, 1].copy()) == max(members)).all()


REDUCTIONS = ["allreduce_sum", "allreduce_max", "batch_sum", "spatial_sum", "spatial_min",
              "spatial_max"]
NON_BLOCKING = ["iallreduce_sum", "iallreduce_max", "ibatch_sum", "ispatial_sum", "ispatial_max"]


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("name", REDUCTIONS + NON_BLOCKING)
def test_no_reduction_changes_its_input(comms_for, world_layouts, name):
    """The bug class of one batch element per rank: a reduction that wrote its result into
    the array it was given turned a layer's cached statistics into global sums, which the
    layer's next probe summed again. Every reduction leaves its input as it was."""
    for lay in world_layouts:
        c = comms_for(lay)
        arr = np.random.default_rng(c.rank).standard_normal((3, 4))
        before = arr.copy()
        arr.flags.writeable = False  # as a layer's cached statistics are
        out = _reduce(c, name, arr)
        assert not np.shares_memory(out, arr)
        np.testing.assert_array_equal(arr, before)
        given = np.empty_like(arr)
        assert _reduce(c, name, arr, given) is given
        np.testing.assert_array_equal(given, out)
        with pytest.raises(ValueError, match="in place"):
            _reduce(c, name, before, before)


def _reduce(c, name, arr, out=None):
    """Comms.<name> of arr (into out if given), completed."""
    if name.startswith("i"):  # non-blocking: the output buffer is required
        out = np.empty_like(arr) if out is None else out
        getattr(c, name)(arr, out).wait()
        return out
    return getattr(c, name)(arr, out=out)


@pytest.mark.mpi(min_size=1)
def test_spatial_sum_at_root_leaves_its_input(comms_for, world_layouts):
    """The checkpoint's sum of tiles, on the slice's first rank only: spatial_sum's values there,
    the input unchanged everywhere."""
    for lay in world_layouts:
        c = comms_for(lay)
        arr = np.random.default_rng(c.rank).standard_normal((3, 4))
        before = arr.copy()
        arr.flags.writeable = False
        total = c.spatial_sum_at_root(arr)
        np.testing.assert_array_equal(arr, before)
        if c.is_spatial_root:
            assert not np.shares_memory(total, arr)
            np.testing.assert_allclose(total, c.spatial_sum(arr), rtol=1e-12)
        else:
            assert total is None
            c.spatial_sum(arr)  # the same collectives on every rank


def test_every_reduction_is_checked():
    """A reduction added to Comms joins the lists above, or this fails."""
    from pvmpi.parallel.comm import Comms

    found = {n for n in vars(Comms) if not n.startswith("_")
             and any(w in n for w in ("sum", "_min", "_max"))}
    assert found == set(REDUCTIONS) | set(NON_BLOCKING) | {"spatial_sum_at_root"}


@pytest.mark.mpi(min_size=1)
def test_the_guards_non_blocking_maximum_is_the_blocking_one(comms_for, world_layouts):
    """iallreduce_max (the guard's verdict, read steps later) gives allreduce_max's values."""
    for lay in world_layouts:
        c = comms_for(lay)
        arr = np.array([-c.rank, 3 * c.rank % 5, 7], np.int64)
        np.testing.assert_array_equal(_reduce(c, "iallreduce_max", arr), c.allreduce_max(arr))


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("name", NON_BLOCKING)
def test_a_started_reduction_keeps_its_arrays_alive(comms_for, world_layouts, name):
    """The caller may drop its references while the reduction is in flight (the guard's pending
    verdicts at an error did): MPI must never write into memory freed meanwhile."""
    for lay in world_layouts:
        c = comms_for(lay)
        src, out = np.full(7, c.rank, np.int64), np.empty(7, np.int64)
        alive = [weakref.ref(src), weakref.ref(out)]
        pending = getattr(c, name)(src, out)
        del src, out
        gc.collect()
        assert all(ref() is not None for ref in alive)
        pending.wait()
        del pending
        gc.collect()
        assert all(ref() is None for ref in alive)  # and not kept after it completed


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("nf", [1, 3])
@pytest.mark.parametrize("nb_local", [1, 2])
def test_gather_layer_reassembles(comms_for, world_layouts, nf, nb_local):
    for lay in world_layouts:
        c = comms_for(lay)
        nbatch, ny, nx = nb_local * lay.batch_width, 3 * lay.rows, 2 * lay.columns
        g = np.random.default_rng(nf + nb_local).standard_normal(
            (nbatch, ny, nx, nf)).astype(np.float32)
        t = c.tile(nbatch, ny, nx, name="Recon")
        # a restricted view of an extended buffer (not contiguous) is accepted
        ext = np.zeros(t.extended_shape(nf, 1, 2), np.float32)
        ext[:, 2:-2, 1:-1] = g[t.batch_slice, t.y_slice, t.x_slice]
        out = c.gather_layer(ext[:, 2:-2, 1:-1], t)
        if c.is_root:
            assert out.dtype == np.float32 and out.flags.c_contiguous
            np.testing.assert_array_equal(out, g)
        else:
            assert out is None
        with pytest.raises(ValueError):
            c.gather_layer(np.zeros((t.nb, t.ny + 1, t.nx, nf), np.float32), t)


@pytest.mark.mpi(min_size=1)
def test_gather_batch_values_in_global_order(comms_for, world_layouts):
    for lay in world_layouts:
        c = comms_for(lay)
        nb = 3
        kb0 = nb * c.batch_index
        local = np.stack([np.arange(kb0, kb0 + nb, dtype=np.float64),
                          np.full(nb, c.row * 10 + c.column, np.float64)], axis=1)
        out = c.gather_batch_values(local)
        if c.is_root:
            assert out.shape == (nb * lay.batch_width, 2)
            assert (out[:, 0] == np.arange(nb * lay.batch_width)).all()
            assert (out[:, 1] == 0).all()        # from each slice's spatial root
        else:
            assert out is None


@pytest.mark.mpi(min_size=1)
def test_bcast_barrier_any_error(comms_for, world_layouts):
    for lay in world_layouts:
        c = comms_for(lay)
        obj = {"layout": str(lay)} if c.is_root else None
        assert c.bcast(obj) == {"layout": str(lay)}
        c.barrier()
        assert c.any_error(False) is False
        assert c.any_error(c.rank == c.size - 1) is True
        assert c.any_error(True) is True


@pytest.mark.mpi(min_size=1)
def test_wrong_world_size_refused_on_every_rank():
    from pvmpi.parallel.comm import Comms
    from pvmpi.parallel.decomposition import Layout

    world = _world()
    with pytest.raises(PvmpiError, match="needs") as err:
        Comms(Layout(1, 1, world.Get_size() + 1))
    assert f"mpiexec -n {world.Get_size() + 1}" in err.value.hint
    if world.Get_size() > 1:
        with pytest.raises(PvmpiError, match="were started"):
            Comms(Layout(1, 1, 1))


@pytest.mark.mpi(min_size=1)
def test_given_communicator_is_used_and_freed():
    from mpi4py import MPI

    from pvmpi.parallel.comm import Comms
    from pvmpi.parallel.decomposition import Layout

    with Comms(Layout(1, 1, 1), comm=MPI.COMM_SELF) as c:
        assert c.size == 1 and c.is_root
        arr = np.ones(4, np.float32)
        assert (c.allreduce_sum(arr) == 1).all()
    assert c.world is None and c.spatial is None and c.batch is None
    c.free()  # idempotent

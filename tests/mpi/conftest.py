"""Fixtures for tests that run under any number of MPI ranks.

Tests size their data from the communicator and loop over every layout
that uses exactly the world's ranks, so one suite passes at -n 1, 2, 3, 4...
"""
import pytest


@pytest.fixture(scope="session")
def comms_for():
    """``comms_for(layout)`` -> a cached :class:`pvmpi.parallel.comm.Comms`
    (created collectively on first use, freed at the end of the session)."""
    from pvmpi.parallel.comm import Comms

    cache = {}

    def get(layout):
        if layout not in cache:
            cache[layout] = Comms(layout)
        return cache[layout]

    yield get
    for comms in cache.values():
        comms.free()


@pytest.fixture(scope="session")
def world_layouts():
    """Every layout of exactly COMM_WORLD's size."""
    from mpi4py import MPI

    from pvmpi.parallel.decomposition import layouts

    return layouts(MPI.COMM_WORLD.Get_size())

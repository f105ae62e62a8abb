"""Run under mpiexec with NUMBA_ENABLE_CUDASIM=1 (see test_device_halo.py): the device halo exchange
equals the host one for a row split, a column split (2 ranks) or a 2x2 split (4 ranks), mirror or not."""
import sys

import numpy as np
from mpi4py import MPI

from pvmpi.kernels import get_backend
from pvmpi.parallel.comm import Comms
from pvmpi.parallel.decomposition import Layout
from pvmpi.parallel.device_halo import DeviceHaloExchange
from pvmpi.parallel.halo import HaloExchange


def check(rows, columns):
    cu = get_backend("cuda")
    with Comms(Layout(1, rows, columns)) as comms:
        for mirror in (True, False):
            for mx, my, nf in ((2, 1, 3), (1, 3, 1)):
                t = comms.tile(2, 6 * rows, 5 * columns, name="L")
                rng = np.random.default_rng(comms.rank + 10 * mx + 100 * my)
                A = rng.standard_normal(t.extended_shape(nf, mx, my)).astype(np.float32)
                host = HaloExchange(comms, t, nf, mx, my, mirror)
                dev = DeviceHaloExchange(comms, t, nf, mx, my, mirror, cu)
                want = host.exchange(A.copy())
                got = dev.exchange(cu.to_device(A)).copy_to_host()
                host.free()
                dev.free()
                if not np.array_equal(got, want):
                    print(f"rank {comms.rank}: {rows}x{columns} mirror={mirror} mx={mx} my={my}: differs "
                          f"at {np.argwhere(got != want)[:3].tolist()}", flush=True)
                    return 1
    return 0


if __name__ == "__main__":
    size = MPI.COMM_WORLD.Get_size()
    layouts = [(2, 1), (1, 2)] if size == 2 else [(2, 2)]
    bad = max(check(r, c) for r, c in layouts)
    bad = MPI.COMM_WORLD.allreduce(bad, op=MPI.MAX)
    if MPI.COMM_WORLD.Get_rank() == 0:
        print("device halo", "DIFFERS" if bad else "equal", flush=True)
    sys.exit(bad)

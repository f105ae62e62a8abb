"""Connection test cases shared by the kernel tests of every backend (numpy, numba, cuda)."""
from dataclasses import dataclass

import numpy as np

from pvmpi.geometry import axis_map


def close(actual, desired):
    scale = max(float(np.abs(desired).max()), 1.0)
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6 * scale)


@dataclass
class Case:
    """One connection on small random data: pre activity, weights, post buffers."""
    xm: object
    ym: object
    A: np.ndarray       # extended pre activity
    W: np.ndarray       # [kernel, nyp, nxp, nfp]
    G0: np.ndarray      # nonzero starting GSyn (kernels add)
    A_post: np.ndarray  # extended post activity (halo holds junk the kernels must ignore)
    lt: int
    up: int
    lt_post: int = 1
    up_post: int = 2

    @property
    def geo(self):
        x, y = self.xm, self.ym
        return (x.mul, x.off, x.div, x.n_kernels, y.mul, y.off, y.div, y.n_kernels)

    @property
    def nf(self):
        return self.A.shape[3]


def make_case(xargs, yargs, nf, nfp, nb, extra, density, seed=0):
    rng = np.random.default_rng(seed)
    xm, ym = axis_map(*xargs), axis_map(*yargs)
    lt, up = xm.margin + extra, ym.margin + extra
    shape = (nb, ym.n_pre + 2 * up, xm.n_pre + 2 * lt, nf)
    A = rng.standard_normal(shape).astype(np.float32) * (rng.random(shape) < density)
    W = rng.standard_normal((nf * xm.n_kernels * ym.n_kernels, ym.patch, xm.patch, nfp)).astype(np.float32)
    G0 = rng.standard_normal((nb, ym.n_post, xm.n_post, nfp)).astype(np.float32)
    A_post = np.full((nb, ym.n_post + 4, xm.n_post + 2, nfp), 1e6, np.float32)
    A_post[:, 2:-2, 1:-1] = rng.standard_normal((nb, ym.n_post, xm.n_post, nfp))
    return Case(xm, ym, A, W, G0, A_post, lt, up)

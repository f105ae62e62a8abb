"""GEMM form of a dense delivery: when every post neuron reads the same pattern.

A connection whose post neurons all see their pre neurons through the same
patch positions and kernels (stride 1, or many-to-one such as a TransposeConn
into a strided layer) computes, per post position, one row of pre values
times one matrix. The numba backend then delivers through im2col + BLAS
(``kernels.deliver_im2col``), 3–5× faster than any loop over patches here.
"""
import numpy as np


class Im2colPlan:
    """Per-axis first pre index of each post index, the pattern size, and (patch, kernel) per slot."""

    def __init__(self, x0, y0, xslots, yslots):
        self.x0, self.y0 = x0, y0
        self.xslots, self.yslots = xslots, yslots  # [s, 2]: patch index and kernel index of each slot
        self._rows, self._rows_for = None, None  # matrix()'s gather index and the weight shape it is for

    @property
    def sx(self):
        return len(self.xslots)

    @property
    def sy(self):
        return len(self.yslots)

    @classmethod
    def from_tables(cls, xtab, ytab):
        """The plan of two :func:`~pvmpi.geometry.post_table` tables, or None if not uniform."""
        axes = []
        for tab in (xtab, ytab):
            first = tab[:, :1, 0].astype(np.int64)
            consecutive = np.array_equal(tab[..., 0], first + np.arange(tab.shape[1]))
            same = np.array_equal(tab[..., 1:], np.broadcast_to(tab[:1, :, 1:], tab[..., 1:].shape))
            if not (consecutive and same):
                return None
            axes.append((np.ascontiguousarray(first[:, 0]), tab[0, :, 1:].astype(np.int64)))
        (x0, xslots), (y0, yslots) = axes
        return cls(x0, y0, xslots, yslots)

    def matrix(self, W, nf, nkx):
        """M[(jy, jx, f), o] = W[f + nf*(kx + nkx*ky), py, px, o] for one arbor's weights.

        A gather of whole weight rows through an index made once per weight
        shape (every step asks).
        """
        key = (W.shape, nf, nkx)
        if self._rows_for != key:
            px, kx = self.xslots[:, 0], self.xslots[:, 1]
            py, ky = self.yslots[:, 0], self.yslots[:, 1]
            _, nyp, nxp, _ = W.shape
            f = np.arange(nf)
            k = f[None, None, :] + nf * (kx[None, :, None] + nkx * ky[:, None, None])
            self._rows = ((k * nyp + py[:, None, None]) * nxp + px[None, :, None]).reshape(-1)  # [sy*sx*nf]
            self._rows_for = key
        return np.take(W.reshape(-1, W.shape[3]), self._rows, axis=0).astype(np.float32, copy=False)


def worth_gemm(plan, nf, nfp):
    """GEMM pays when rows and columns are both long enough to fill vector registers."""
    return plan is not None and nfp >= 8 and plan.sx * plan.sy * nf >= 8

"""Kernels: numpy reference against brute force, numba against numpy, perspectives against each other."""
import inspect
import subprocess
import sys

import numpy as np
import pytest
from kernel_cases import Case, close, make_case

from pvmpi.errors import PvmpiError
from pvmpi.geometry import post_table
from pvmpi.kernels import KERNELS, get_backend, host
from pvmpi.kernels import numpy_ref as ref

nb_ = pytest.importorskip("numba")
cpu = get_backend("numba")

FLT_MAX = 3.4028234663852886e38


# (x axis, y axis, nf_pre, nfp, nbatch, extra margin, density)
CASES = {
    "1to1-odd": ((6, 6, 3), (5, 5, 5), 2, 3, 1, 0, 1.0),
    "1to1-p1-sparse": ((6, 6, 1), (6, 6, 3), 3, 2, 3, 1, 0.1),
    "1to2-p8-lca": ((4, 8, 8), (4, 8, 8), 8, 1, 3, 1, 0.1),
    # one post feature, a strip wider than 8 columns with a remainder, patch rows != 8 (sparse's transposed add)
    "1to2-p6x4-gray": ((10, 20, 6), (6, 12, 4), 3, 1, 2, 1, 0.3),
    "1to2-p2-dense": ((4, 8, 2), (3, 6, 6), 2, 2, 1, 0, 1.0),
    "1to4-p4": ((2, 8, 4), (2, 8, 8), 3, 2, 3, 2, 0.3),
    "2to1-p4-lcaT": ((8, 4, 4), (8, 4, 4), 1, 8, 3, 0, 1.0),
    "2to1-p3-sparse": ((8, 4, 3), (8, 4, 1), 4, 3, 1, 1, 0.15),
    "4to1-p3": ((16, 4, 3), (8, 4, 2), 2, 2, 3, 1, 0.5),
    "4to1-even-mixed": ((16, 4, 2), (4, 8, 4), 2, 3, 1, 0, 0.6),
    "1to4-vs-1to1-mixed": ((2, 8, 8), (5, 5, 3), 2, 4, 3, 3, 0.2),
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request):
    return make_case(*CASES[request.param])


def deliver(backend, c, how, A=None, W=None, G=None, overwrite=False):
    """GSyn after delivering c.A through c.W by pre, sparse or post perspective (into a copy of G or c.G0)."""
    A = c.A if A is None else A
    W = c.W if W is None else W
    G = (c.G0 if G is None else G).copy()
    if how == "pre":
        backend.deliver_pre(A, W, G, *c.geo, c.lt, c.up, overwrite)
    elif how == "sparse":
        offsets, idx, val = backend.active_list(A, c.lt, c.up)
        backend.deliver_sparse(offsets, idx, val, c.nf, A.shape[2], W, G, *c.geo, c.lt, c.up, overwrite)
    else:
        backend.deliver_post(A, W, G, post_table(c.xm, c.lt), post_table(c.ym, c.up), c.xm.n_kernels, overwrite)
    return G


def brute_deliver(c):
    """Plain loops over neurons, float64: the check on the reference itself."""
    G = c.G0.astype(np.float64)
    xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky = c.geo
    nb, nye, nxe, nf = c.A.shape
    _, nyp, nxp, _ = c.W.shape
    for b in range(nb):
        for ye in range(nye):
            for xe in range(nxe):
                for f in range(nf):
                    a = float(c.A[b, ye, xe, f])
                    if a == 0:
                        continue
                    i, j = ye - c.up, xe - c.lt
                    k = f + nf * (j % nkx + nkx * (i % nky))
                    for py in range(nyp):
                        for px in range(nxp):
                            y = (ymul * i + yoff) // ydiv + py
                            x = (xmul * j + xoff) // xdiv + px
                            if 0 <= y < G.shape[1] and 0 <= x < G.shape[2]:
                                G[b, y, x] += a * c.W[k, py, px]
    return G


def brute_hebbian(c, dw_max):
    xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky = c.geo
    nb, nye, nxe, nf = c.A.shape
    nk, nyp, nxp, nfp = c.W.shape
    ny, nx = c.G0.shape[1:3]
    dW = np.zeros((nk, nyp, nxp, nfp))
    cnt = np.zeros((nk, nyp, nxp, nfp))
    for b in range(nb):
        for ye in range(nye):
            for xe in range(nxe):
                for f in range(nf):
                    a = float(c.A[b, ye, xe, f])
                    if a == 0:
                        continue
                    i, j = ye - c.up, xe - c.lt
                    k = f + nf * (j % nkx + nkx * (i % nky))
                    for py in range(nyp):
                        for px in range(nxp):
                            y = (ymul * i + yoff) // ydiv + py
                            x = (xmul * j + xoff) // xdiv + px
                            if 0 <= y < ny and 0 <= x < nx:
                                dW[k, py, px] += dw_max * a * c.A_post[b, y + c.up_post, x + c.lt_post]
                                cnt[k, py, px] += 1
    return dW, cnt


# --------------------------------------------------------------------- backends

def test_get_backend():
    assert get_backend("numpy") is ref
    assert get_backend("numba") is cpu
    with pytest.raises(PvmpiError, match="numba, numpy"):
        get_backend("cuda-typo")


def test_importing_kernels_does_not_import_numba():
    code = ("import sys, pvmpi.kernels, pvmpi.kernels.numpy_ref, pvmpi.geometry; "
            "sys.exit('numba' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_backend_keeps_the_contract(backend):
    """Every kernel the contract asks of a backend with its capabilities, with the contract's
    arguments in order (kernels/contract.py); the host backends share their signatures."""
    from pvmpi.kernels.contract import required

    be = get_backend(backend)
    for kernel in required(be.CAPABILITIES):
        assert hasattr(be, kernel.name), f"{backend} lacks {kernel.name}"
        assert tuple(inspect.signature(getattr(be, kernel.name)).parameters) == kernel.args, kernel.name
    for name in KERNELS:
        assert inspect.signature(getattr(ref, name)) == inspect.signature(getattr(cpu, name))


# --------------------------------------------------------------------- delivery

@pytest.mark.parametrize("name", ["1to1-odd", "1to2-p8-lca", "2to1-p3-sparse", "4to1-even-mixed"])
def test_reference_deliver_equals_brute_force(name):
    c = make_case(*CASES[name], seed=3)
    close(deliver(ref, c, "pre"), brute_deliver(c))


def test_active_list(case):
    offsets, idx, val = ref.active_list(case.A, case.lt, case.up)
    nb = case.A.shape[0]
    assert offsets.dtype == np.int64 and idx.dtype == np.int32 and val.dtype == np.float32
    for b in range(nb):
        flat = case.A[b].reshape(-1)
        sel = slice(offsets[b], offsets[b + 1])
        np.testing.assert_array_equal(idx[sel], np.flatnonzero(flat))
        np.testing.assert_array_equal(val[sel], flat[flat != 0])
    for got, want in zip(cpu.active_list(case.A, case.lt, case.up), (offsets, idx, val)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["1to2-p8-lca", "2to1-p3-sparse", "4to1-even-mixed"])
def test_active_list_is_the_same_on_one_thread_and_on_more(name):
    """Each thread lists a run of rows into buffers of A's size (an earlier list's, given as ``reuse``),
    then the runs slide together: the same offsets, entries and stats on one thread and on two, and
    a reused list's buffers really are written (its old entries are gone)."""
    c = make_case(*CASES[name], seed=6)
    want = ref.active_list(c.A, c.lt, c.up)
    ny, nx = c.A.shape[1] - 2 * c.up, c.A.shape[2] - 2 * c.lt
    want_stats = ref.layer_stats(c.A, c.lt, c.up, ny, nx, 0.0)
    old = nb_.get_num_threads()
    try:
        for n in sorted({1, min(2, nb_.config.NUMBA_NUM_THREADS)}):
            nb_.set_num_threads(n)
            earlier = cpu.active_list(np.ascontiguousarray(c.A[::-1]), c.lt, c.up)
            stats = np.empty((c.A.shape[0], 6))
            got = cpu.active_list(c.A, c.lt, c.up, stats, reuse=earlier)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)
            np.testing.assert_allclose(stats, want_stats, rtol=1e-12)
            assert got[1].base is earlier[1].base and got[2].base is earlier[2].base
            assert got[1].base.size == c.A.size
    finally:
        nb_.set_num_threads(old)


def test_active_list_empty():
    A = np.zeros((2, 4, 5, 3), np.float32)
    A[1, 2, 3, 1] = 2.0
    for be in (ref, cpu):
        offsets, idx, val = be.active_list(A, 1, 1)
        assert list(offsets) == [0, 0, 1] and list(idx) == [1 + 3 * (3 + 5 * 2)] and list(val) == [2.0]


@pytest.mark.parametrize("how", ["pre", "sparse", "post"])
def test_deliver_numba_equals_numpy(case, how):
    close(deliver(cpu, case, how), deliver(ref, case, how))


@pytest.mark.parametrize("how", ["sparse", "post"])
def test_perspectives_give_the_same_sums(case, how):
    want = deliver(ref, case, "pre")
    close(deliver(ref, case, how), want)
    close(deliver(cpu, case, how), want)


@pytest.mark.parametrize("how", ["pre", "sparse", "post"])
def test_an_overwriting_delivery_gives_the_bits_of_one_into_zeros(case, how):
    garbage = np.full_like(case.G0, np.nan)
    for be in (ref, cpu):
        want = deliver(be, case, how, G=np.zeros_like(case.G0))
        np.testing.assert_array_equal(deliver(be, case, how, G=garbage, overwrite=True).view(np.uint32),
                                      want.view(np.uint32))


def test_deliver_zero_activity_adds_nothing(case):
    A = np.zeros_like(case.A)
    for be in (ref, cpu):
        for how in ("pre", "sparse", "post"):
            np.testing.assert_array_equal(deliver(be, case, how, A=A), case.G0)


def test_deliver_wrong_output_dtype_is_refused():
    c = make_case(*CASES["1to1-odd"])
    with pytest.raises(ValueError):
        cpu.deliver_pre(c.A, c.W, c.G0.astype(np.float64), *c.geo, c.lt, c.up)


def test_accumulate_input():
    rng = np.random.default_rng(1)
    GSyn = rng.standard_normal((3, 2, 3, 4, 5)).astype(np.float32)
    c = [0.5, -2.0, 1.0]
    want = np.float32(0.5) * GSyn[0] + np.float32(-2.0) * GSyn[1] + GSyn[2]
    for be in (ref, cpu):
        G = np.full(GSyn.shape[1:], 7.0, np.float32)
        be.accumulate_input(GSyn, c, G)
        np.testing.assert_array_equal(G, want)
        be.accumulate_input(GSyn[:2], [1, -1], G)
        np.testing.assert_array_equal(G, GSyn[0] - GSyn[1])


# ------------------------------------------------------------------- transfer / LCA

V_SAMPLES = np.array([-1.0, 0.0, 0.4, 0.5, 0.6, 0.75, 0.99, 1.0, 1.2, 3.0], np.float32)
f32 = np.float32


def _firm(v, th, amin, ashift, width):
    th, amin, ashift, width, v = f32(th), f32(amin), f32(ashift), f32(width), f32(v)
    top = th + width
    if v < th:
        return amin
    if v < top:
        return amin + (((top - ashift) - amin) * (v - th)) / width
    return v - ashift


TRANSFER_CASES = {
    # name: (VThresh, AMin, AMax, AShift, VWidth, expected as a function of v)
    "hard": ((0.5, 0.0, FLT_MAX, 0.0, 0.0), lambda v: v if v >= f32(0.5) else f32(0)),
    "soft-lca": ((0.5, 0.0, FLT_MAX, 0.5, 0.0), lambda v: v - f32(0.5) if v >= f32(0.5) else f32(0)),
    "hard-negative-AMin": ((0.5, -1.0, FLT_MAX, 0.0, 0.0), lambda v: v if v >= f32(0.5) else f32(-1)),
    "firm": ((0.5, 0.0, FLT_MAX, 0.0, 0.5), lambda v: _firm(v, 0.5, 0.0, 0.0, 0.5)),
    "firm-shift": ((0.5, 0.0, FLT_MAX, 0.25, 0.5), lambda v: _firm(v, 0.5, 0.0, 0.25, 0.5)),
    "clip": ((0.5, 0.0, 1.0, 0.0, 0.0), lambda v: min(v, f32(1)) if v >= f32(0.5) else f32(0)),
    "passthrough": ((-FLT_MAX, -FLT_MAX, FLT_MAX, 0.0, 0.0), lambda v: v),
    "passthrough-clip": ((-FLT_MAX, 0.0, 0.75, 0.3, 0.0), lambda v: min(v, f32(0.75))),
}


@pytest.mark.parametrize("name", list(TRANSFER_CASES))
def test_apply_transfer_hand_values(name):
    params, fn = TRANSFER_CASES[name]
    V = np.broadcast_to(V_SAMPLES, (2, 3, 10)).reshape(2, 3, 5, 2).copy()
    want = np.array([fn(v) for v in V.reshape(-1)], np.float32).reshape(V.shape)
    for be in (ref, cpu):
        A = np.full((2, 3 + 4, 5 + 2, 2), 9.0, np.float32)
        be.apply_transfer(V, A, 1, 2, *params)
        np.testing.assert_array_equal(A[:, 2:-2, 1:-1], want)
        A[:, 2:-2, 1:-1] = 9.0
        assert np.all(A == 9.0), "halo must not be written"


def test_firm_threshold_hand_numbers():
    params = TRANSFER_CASES["firm"][0]
    V = np.array([0.5, 0.75, 1.2], np.float32).reshape(1, 1, 3, 1)
    A = np.zeros((1, 1, 3, 1), np.float32)
    ref.apply_transfer(V, A, 0, 0, *params)
    np.testing.assert_allclose(A.reshape(-1), [0.0, 0.5, 1.2], rtol=1e-7)


@pytest.mark.parametrize("self_interact", [True, 0.0])
def test_update_lca(self_interact):
    rng = np.random.default_rng(5)
    nb, ny, nx, nf, lt, up = 3, 4, 5, 6, 2, 1
    params = (0.3, 0.0, FLT_MAX, 0.3, 0.0)
    V = rng.standard_normal((nb, ny, nx, nf)).astype(np.float32)
    G = rng.standard_normal((nb, ny, nx, nf)).astype(np.float32)
    A = rng.standard_normal((nb, ny + 2 * up, nx + 2 * lt, nf)).astype(np.float32)
    e = np.exp(-np.array([0.01, 0.05, 0.2]) / 1.0).astype(np.float32)
    results = []
    for be in (ref, cpu):
        Vb, Ab = V.copy(), A.copy()
        be.update_lca(Vb, Ab, G, e, self_interact, lt, up, *params)
        results.append((Vb, Ab))
    (Vr, Ar), (Vc, Ac) = results
    np.testing.assert_array_equal(Vc, Vr)
    np.testing.assert_array_equal(Ac, Ar)
    # hand check of one neuron, float32 op by op
    b, y, x, f = 2, 3, 1, 4
    s = f32(1.0 if self_interact else 0.0)
    v = e[b] * V[b, y, x, f] + (f32(1) - e[b]) * (G[b, y, x, f] + s * A[b, y + up, x + lt, f])
    assert Vr[b, y, x, f] == v
    assert Ar[b, y + up, x + lt, f] == (v - f32(0.3) if v >= f32(0.3) else 0)
    np.testing.assert_array_equal(Ar[:, :up], A[:, :up])  # halo untouched
    np.testing.assert_array_equal(Ar[:, :, :lt], A[:, :, :lt])


# --------------------------------------------------------------------- learning

def hebbian(backend, c, sparse, dw_max=0.5):
    dW = np.zeros_like(c.W)
    cnt = np.zeros_like(c.W)
    args = (*c.geo, c.lt, c.up, c.lt_post, c.up_post)
    if sparse:
        offsets, idx, val = backend.active_list(c.A, c.lt, c.up)
        backend.hebbian_shared_sparse(offsets, idx, val, c.nf, c.A.shape[2], c.A_post, dW, cnt, dw_max, *args)
    else:
        backend.hebbian_shared(c.A, c.A_post, dW, cnt, dw_max, *args)
    return dW, cnt


@pytest.mark.parametrize("name", ["1to2-p8-lca", "4to1-p3", "1to4-vs-1to1-mixed"])
def test_reference_hebbian_equals_brute_force(name):
    c = make_case(*CASES[name], seed=4)
    want_dW, want_cnt = brute_hebbian(c, 0.5)
    for sparse in (False, True):
        dW, cnt = hebbian(ref, c, sparse)
        close(dW, want_dW)
        np.testing.assert_array_equal(cnt, want_cnt)


def test_hebbian_numba_equals_numpy_dense_and_sparse(case):
    want_dW, want_cnt = hebbian(ref, case, False)
    for be, sparse in ((ref, True), (cpu, False), (cpu, True)):
        dW, cnt = hebbian(be, case, sparse)
        close(dW, want_dW)
        np.testing.assert_array_equal(cnt, want_cnt)


def test_hebbian_accumulates_into_caller_arrays():
    c = make_case(*CASES["2to1-p3-sparse"])
    once, cnt1 = hebbian(ref, c, False)
    for be in (ref, cpu):
        dW, cnt = np.zeros_like(c.W), np.zeros_like(c.W)
        args = (*c.geo, c.lt, c.up, c.lt_post, c.up_post)
        be.hebbian_shared(c.A, c.A_post, dW, cnt, 0.5, *args)
        be.hebbian_shared(c.A, c.A_post, dW, cnt, 0.5, *args)
        close(dW, 2 * once)
        np.testing.assert_array_equal(cnt, 2 * cnt1)


@pytest.mark.skipif(nb_.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_numba_results_do_not_depend_on_thread_count():
    """Each parallel loop owns its outputs, so sums are bitwise the same for any thread count."""
    c = make_case(*CASES["1to2-p8-lca"], seed=9)
    old = nb_.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            nb_.set_num_threads(n)
            runs.append([deliver(cpu, c, how) for how in ("pre", "sparse", "post")]
                        + list(hebbian(cpu, c, False)) + list(hebbian(cpu, c, True)))
    finally:
        nb_.set_num_threads(old)
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("nb, margin, thr", [(1, 0, 0.0), (3, 2, 0.25)])
def test_layer_stats_numba_equals_numpy(nb, margin, thr):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((nb, 5 + 2 * margin, 6 + 2 * margin, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.5] = 0
    want = ref.layer_stats(X, margin, margin, 5, 6, thr)
    np.testing.assert_allclose(cpu.layer_stats(X, margin, margin, 5, 6, thr), want, rtol=1e-12)
    R = X[:, margin:margin + 5, margin:margin + 6, :].reshape(nb, -1).astype(np.float64)
    np.testing.assert_allclose(want[:, 2], (R * R).sum(axis=1))
    np.testing.assert_array_equal(want[:, 3], (np.abs(R) > thr).sum(axis=1))


# ------------------------------------------------------------------ im2col (GEMM) delivery

def im2col_deliver(backend, c, overwrite=False):
    """GSyn after the GEMM form of the delivery, or None where the pattern is not uniform."""
    from pvmpi.network.im2col import Im2colPlan

    plan = Im2colPlan.from_tables(post_table(c.xm, c.lt), post_table(c.ym, c.up))
    if plan is None:
        return None
    G = c.G0.copy()
    M = plan.matrix(c.W, c.nf, c.xm.n_kernels)
    backend.deliver_im2col(c.A, M, G, plan.x0, plan.y0, plan.sy, plan.sx, overwrite)
    return G


UNIFORM = ["1to1-odd", "1to1-p1-sparse", "2to1-p4-lcaT", "2to1-p3-sparse", "4to1-p3"]


@pytest.fixture(params=["numpy", "numba", "numba-matmul"])
def gemm_backend(request, monkeypatch):
    """The reference; numba with its blocks calling BLAS on Numba's threads; numba on NumPy's matmul
    (what a BLAS without a usable cblas_sgemm gets)."""
    if request.param == "numba-matmul":
        from pvmpi.kernels import blas

        monkeypatch.setattr(blas, "sgemm", lambda: None)
    return ref if request.param == "numpy" else cpu


@pytest.mark.parametrize("name", UNIFORM)
def test_im2col_delivery_equals_pre_perspective(name, gemm_backend):
    """Stride-1 and many-to-one connections (e.g. an LCA's transpose) have one pattern for all post neurons."""
    backend = gemm_backend
    c = make_case(*CASES[name], seed=3)
    close(im2col_deliver(backend, c), deliver(ref, c, "pre"))
    c0 = Case(c.xm, c.ym, c.A, c.W, np.zeros_like(c.G0), c.A_post, c.lt, c.up)
    close(im2col_deliver(backend, c, overwrite=True), deliver(ref, c0, "pre"))  # old G must not matter


@pytest.mark.parametrize("name", ["1to2-p8-lca", "1to2-p2-dense", "1to4-p4", "1to4-vs-1to1-mixed", "4to1-even-mixed"])
def test_im2col_plan_refuses_one_to_many(name):
    """Post neurons of a one-to-many connection see different kernels by position: no single matrix."""
    assert im2col_deliver(ref, make_case(*CASES[name])) is None


def test_im2col_uses_blocks_larger_than_one_gemm(gemm_backend, monkeypatch):
    """More post positions than one im2col block (the block loop and its last partial block), adding
    into G and overwriting it, on one thread and on all of them."""
    import pvmpi.kernels.cpu as cpu_mod

    c = make_case((40, 20, 4), (50, 25, 4), 1, 8, 2, 0, 1.0, seed=5)
    c0 = Case(c.xm, c.ym, c.A, c.W, np.zeros_like(c.G0), c.A_post, c.lt, c.up)
    monkeypatch.setattr(cpu_mod, "_GEMM_ROWS", 60)  # 3 rows of 20 post columns per block; 25 rows -> 9 blocks
    old = nb_.get_num_threads()
    try:
        for n in sorted({1, nb_.config.NUMBA_NUM_THREADS}):
            nb_.set_num_threads(n)
            close(im2col_deliver(gemm_backend, c), deliver(ref, c, "pre"))
            close(im2col_deliver(gemm_backend, c, overwrite=True), deliver(ref, c0, "pre"))
    finally:
        nb_.set_num_threads(old)


def test_blas_binding_is_numpys_sgemm_or_none(monkeypatch):
    """The cblas_sgemm found next to NumPy computes alpha A B + beta C with leading dimensions; a BLAS
    that does not load gives None (deliver_im2col then keeps NumPy's matmul)."""
    from threadpoolctl import threadpool_info

    from pvmpi.kernels import blas

    if not any(i.get("internal_api") == "openblas" for i in threadpool_info()):
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    fn = blas.sgemm()
    assert fn is not None and blas._works(fn)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((3, 2), np.float32)
    c = np.full((2, 2), 10, np.float32)
    fn(blas.ROW_MAJOR, blas.NO_TRANS, blas.NO_TRANS, 2, 2, 3, 1.0, a.ctypes.data, 3, b.ctypes.data, 2, 0.5,
       c.ctypes.data, 2)
    np.testing.assert_array_equal(c, [[8, 8], [17, 17]])
    import threadpoolctl

    monkeypatch.setattr(blas, "_FOUND", [])
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [
        {"user_api": "blas", "internal_api": "openblas", "filepath": "/nonexistent/libscipy_openblas64_.so"}])
    assert blas.sgemm() is None


@pytest.mark.parametrize("name", ["1to2-p8-lca", "1to2-p6x4-gray"])
def test_sparse_delivery_bands_and_thread_counts_give_identical_sums(name):
    """Tasks are (batch, band of post rows); every post neuron sums its terms in list order regardless."""
    c = make_case(*CASES[name], seed=11)
    offsets, idx, val = cpu.active_list(c.A, c.lt, c.up)
    outs = []
    old = nb_.get_num_threads()
    try:
        for n in sorted({1, nb_.config.NUMBA_NUM_THREADS}):
            nb_.set_num_threads(n)
            G = c.G0.copy()
            cpu.deliver_sparse(offsets, idx, val, c.nf, c.A.shape[2], c.W, G, *c.geo, c.lt, c.up)
            outs.append(G)
    finally:
        nb_.set_num_threads(old)
    for G in outs[1:]:
        np.testing.assert_array_equal(G, outs[0])
    close(outs[0], deliver(ref, c, "pre"))


def test_firm_threshold_cost_hand_numbers():
    """c(a) = |a|(1 - |a|/(2w)) below w = VThresh + VWidth, w/2 above (facts §5.2), margins excluded."""
    X = np.full((2, 3, 4, 1), 9.0, np.float32)  # the margin holds 9s: never counted
    X[0, 1, 1:3, 0] = [0.5, -1.5]
    X[1, 1, 1:3, 0] = [-0.25, 0.0]
    w = 1.0
    want = [0.5 * (1 - 0.5 / 2) + w / 2, 0.25 * (1 - 0.25 / 2)]
    for k in (ref, get_backend("numba")):
        np.testing.assert_allclose(k.firm_threshold_cost(X, 1, 1, 1, 2, w), want, rtol=1e-15)
        np.testing.assert_array_equal(k.firm_threshold_cost(X, 1, 1, 1, 2, 0.0), [0.0, 0.0])


@pytest.mark.parametrize("nb, margin, w", [(1, 0, 0.3), (3, 2, 0.05), (2, 1, 0.0)])
def test_firm_threshold_cost_numba_equals_numpy(nb, margin, w):
    rng = np.random.default_rng(11)
    X = (rng.standard_normal((nb, 6 + 2 * margin, 7 + 2 * margin, 4)) * 0.2).astype(np.float32)
    X[rng.random(X.shape) < 0.6] = 0
    np.testing.assert_allclose(get_backend("numba").firm_threshold_cost(X, margin, margin, 6, 7, w),
                               ref.firm_threshold_cost(X, margin, margin, 6, 7, w), rtol=1e-12)


def test_layer_stats_min_max_signs_and_non_finite():
    """Min/max over integer keys of the float bits: negative, -0.0 and NaN handled like numpy."""
    X = np.array([[[[-0.0, 2.5, -3.25, 0.0]]]], np.float32)
    s = cpu.layer_stats(X, 0, 0, 1, 1, 0.0)[0]
    assert (s[4], s[5]) == (-3.25, 2.5)
    assert s[3] == 2
    Z = np.array([[[[-0.0, -0.0]]]], np.float32)
    assert cpu.layer_stats(Z, 0, 0, 1, 1, 0.0)[0, 4] == 0.0
    for bad in (np.nan, np.inf, -np.inf):
        Y = np.zeros((2, 3, 3, 2), np.float32)
        Y[1, 1, 2, 0] = bad
        sums = cpu.layer_stats(Y, 0, 0, 3, 3, 0.0)[:, 0]
        assert np.isfinite(sums[0]) and not np.isfinite(sums[1])


@pytest.mark.parametrize("name", ["1to2-p8-lca", "2to1-p3-sparse", "1to1-odd"])
@pytest.mark.parametrize("backend", [ref, cpu], ids=["numpy", "numba"])
def test_active_list_stats_are_the_restricted_layer_stats(name, backend):
    """The list's pass also gives the restricted A's stats (zeros count for min and max; the halo does not)."""
    c = make_case(*CASES[name], seed=4)
    A = c.A.copy()
    A[:, :c.up] = 7.0  # halo values must not enter the stats
    stats = np.empty((A.shape[0], 6))
    lists = backend.active_list(A, c.lt, c.up, stats)
    ny, nx = A.shape[1] - 2 * c.up, A.shape[2] - 2 * c.lt
    np.testing.assert_allclose(stats, ref.layer_stats(A, c.lt, c.up, ny, nx, 0.0), rtol=1e-12)
    for got, want in zip(lists, ref.active_list(A, c.lt, c.up)):
        np.testing.assert_array_equal(got, want)


def test_update_momentum_lca_numba_gives_the_references_bits():
    """The numba kernel computes numpy_ref's expression term by term: V and the kept drive are the
    same bits, per batch element's e, with and without selfInteract."""
    rng = np.random.default_rng(11)
    V0 = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    G = rng.standard_normal(V0.shape).astype(np.float32)
    A = rng.standard_normal((3, 4 + 2, 5 + 4, 6)).astype(np.float32)
    D0 = rng.standard_normal(V0.shape).astype(np.float32)
    e = np.float32([0.9, 0.95, 0.5])
    for s in (0.0, 1.0):
        got, want = (V0.copy(), D0.copy()), (V0.copy(), D0.copy())
        ref.update_momentum_lca(want[0], G, A, want[1], e, s, 0.3, 2, 1)
        cpu.update_momentum_lca(got[0], G, A, got[1], e, s, 0.3, 2, 1)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_update_lca_v_sums():
    rng = np.random.default_rng(5)
    V = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    A = np.zeros((2, 6, 7, 3), np.float32)
    G = rng.standard_normal(V.shape).astype(np.float32)
    for be in (ref, cpu):
        Vb, Ab, sums = V.copy(), A.copy(), np.empty(2)
        be.update_lca(Vb, Ab, G, np.full(2, 0.9, np.float32), 1.0, 1, 1, 0.1, 0.0, FLT_MAX, 0.0, 0.0,
                      v_sums=sums)
        np.testing.assert_allclose(sums, Vb.reshape(2, -1).sum(axis=1, dtype=np.float64), rtol=1e-12)


@pytest.mark.parametrize("margins", [(0, 0, 0, 0), (2, 1, 0, 0), (0, 0, 1, 3), (3, 2, 1, 1)])
def test_scale_into_sums_are_the_written_windows(margins):
    """scale_into with ``sums``: dst exactly as without, sums the float64 sums of dst's window
    afterwards (the guard's check of A = V), a NaN anywhere in the window making its sum NaN."""
    dl, du, sl, su = margins
    rng = np.random.default_rng(3)
    D = rng.standard_normal((3, 4 + 2 * du, 5 + 2 * dl, 2)).astype(np.float32)
    S = rng.standard_normal((3, 4 + 2 * su, 5 + 2 * sl, 2)).astype(np.float32)
    S[1, su + 2, sl + 3, 1] = np.nan
    for add in (False, True):
        for scale in (1.0, -0.5):
            want = D.copy()
            ref.scale_into(want, S, scale, add, dl, du, sl, su)
            window = want[:, du:du + 4, dl:dl + 5].reshape(3, -1).astype(np.float64).sum(axis=1)
            for be in (ref, cpu):
                got, sums = D.copy(), np.empty(3)
                be.scale_into(got, S, scale, add, dl, du, sl, su, sums=sums)
                np.testing.assert_array_equal(got, want)
                np.testing.assert_allclose(sums, window, rtol=1e-12)
                assert np.isnan(sums[1]) and np.isfinite(sums[[0, 2]]).all()


@pytest.mark.parametrize("name", ["soft-lca", "passthrough", "firm-shift", "clip"])
@pytest.mark.parametrize("coefficients", [(1.0,), (1.0, -1.0), (0.5, -2.0, 3.0)])
def test_update_ann_is_accumulate_then_transfer(name, coefficients):
    """update_ann's one pass gives the bits of accumulate_input into V then apply_transfer into A
    (margins left alone), with the same sums, on both host backends; a NaN stays in its element's sum."""
    params = TRANSFER_CASES[name][0]
    rng = np.random.default_rng(len(coefficients))
    GSyn = rng.standard_normal((len(coefficients), 2, 3, 5, 4)).astype(np.float32)
    GSyn[0, 1, 2, 3, 1] = np.nan
    lt, up = 2, 1
    A0 = rng.standard_normal((2, 3 + 2 * up, 5 + 2 * lt, 4)).astype(np.float32)
    V_want, A_want, s_want = np.empty(GSyn.shape[1:], np.float32), A0.copy(), np.empty(2)
    ref.accumulate_input(GSyn, np.float32(coefficients), V_want)
    ref.apply_transfer(V_want, A_want, lt, up, *params, sums=s_want)
    for be in (ref, cpu):
        V, A, sums = np.zeros_like(V_want), A0.copy(), np.empty(2)
        be.update_ann(GSyn, coefficients, V, A, lt, up, *params, sums)
        np.testing.assert_array_equal(V, V_want)
        np.testing.assert_array_equal(A, A_want)
        np.testing.assert_array_equal(sums, s_want)
        assert np.isnan(sums[1]) == np.isnan(A_want[1]).any()


@pytest.mark.parametrize("name", ["soft-lca", "passthrough-clip", "firm"])
def test_apply_transfer_sums_are_the_written_window(name):
    """apply_transfer with ``sums``: A exactly as without, sums the restricted A's sums."""
    params = TRANSFER_CASES[name][0]
    rng = np.random.default_rng(4)
    V = rng.standard_normal((2, 3, 5, 2)).astype(np.float32)
    V[0, 1, 1, 0] = np.inf
    want = np.full((2, 3 + 4, 5 + 2, 2), 9.0, np.float32)
    ref.apply_transfer(V, want, 1, 2, *params)
    window = want[:, 2:-2, 1:-1].reshape(2, -1).astype(np.float64).sum(axis=1)
    for be in (ref, cpu):
        A, sums = np.full_like(want, 9.0), np.empty(2)
        be.apply_transfer(V, A, 1, 2, *params, sums=sums)
        np.testing.assert_array_equal(A, want)
        np.testing.assert_allclose(sums, window, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 36, 36, 64)])
def test_host_state_buffers_are_zeroed_float32_and_large_ones_huge_page_aligned(shape):
    """zeros(): C-contiguous writeable float32 zeros; a buffer of 2 MiB or more starts on a huge page
    (the layer buffers a step streams: fewer TLB misses), and two buffers never share memory."""
    a, b = ref.zeros(shape), ref.zeros(shape)
    for x in (a, b):
        assert x.shape == shape and x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable
        assert not x.any()
        if x.nbytes >= host.HUGE_PAGE:
            assert x.ctypes.data % host.HUGE_PAGE == 0
    a += 1
    assert not b.any() and not np.shares_memory(a, b)
    assert get_backend("numba").zeros is ref.zeros


def test_array_accounting_counts_arrays_not_huge_page_padding():
    """The bench's footprint and the dry run's estimate count a layer buffer's own bytes: a 2 MiB-aligned
    buffer's mapping is up to 2 MiB larger, and an in-place layer's A and data-store level are one buffer."""
    from types import SimpleNamespace

    from pvmpi.bench.memory import footprint
    from pvmpi.dry_run import array_bytes

    big = ref.zeros((4, 68, 68, 64))  # 4.7 MB in a mapping 2 MiB larger
    layer = SimpleNamespace(A=big, store=[big], V=ref.zeros((4, 32, 32, 64)),
                            tile=SimpleNamespace(nb=4, ny=32, nx=32), nf=64)
    want = big.nbytes + layer.V.nbytes
    assert array_bytes(layer) == want
    column = SimpleNamespace(layers={"L": layer}, connections={})
    assert footprint(column)["layer_bytes"] == want


# --------------------------------------------------------------------- RescaleLayer, DropoutLayer

def _rescale_source(seed=3):
    """An extended source [2, 4+2, 5+4, 3] with a constant position, a zero position and negatives."""
    src = np.random.default_rng(seed).normal(size=(2, 4, 5, 3)).astype(np.float32)
    src[0, 1, 1] = 0.7
    src[1, 2, 2] = 0.0
    return np.pad(src, ((0, 0), (1, 1), (2, 2), (0, 0)), constant_values=5.0)


@pytest.mark.parametrize("method", range(5))
def test_rescale_features_reference_equals_formulas(method):
    """Each per-position method against its formula written out per position, margins skipped."""
    src = _rescale_source()
    got = np.full((2, 4 + 2, 5 + 2, 3), 9.0, np.float32)
    ref.rescale_features(got, src, method, 0.5, 2.0, 1, 1, 2, 1)
    assert (got[:, 0] == 9).all() and (got[:, :, 0] == 9).all()  # margins untouched
    for b, y, x in np.ndindex(2, 4, 5):
        s = src[b, 1 + y, 2 + x].astype(np.float64)
        if method == ref.POINTMEANSTD:
            want = s if s.std() == 0 else (s - s.mean()) * (2.0 / s.std()) + 0.5
        elif method == ref.POINTRESPONSENORMALIZATION:
            n = np.sqrt((s * s).sum())
            want = s if n == 0 else s / n
        elif method == ref.SOFTMAX:
            e = np.exp(s - max(s.max(), 0.0))
            want = e / e.sum()
        elif method == ref.LOGREG:
            want = 1 / (1 + np.exp(s))
        else:
            want = np.where(s == 0, -1.0, s)
        np.testing.assert_allclose(got[b, 1 + y, 1 + x], want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("method", range(5))
def test_rescale_features_numba_equals_numpy(method):
    src = _rescale_source(4)
    want = np.zeros((2, 4, 5, 3), np.float32)
    got = want.copy()
    ref.rescale_features(want, src, method, -1.0, 0.5, 0, 0, 2, 1)
    cpu.rescale_features(got, src, method, -1.0, 0.5, 0, 0, 2, 1)
    close(got, want)


def test_rescale_batch_per_element():
    src = _rescale_source(5)
    coeffs = np.array([[0.25, 2.0, 3.0, -1.0], [0.0, 1.0, 0.5, 0.0]], np.float32)
    got = np.zeros((2, 6, 7, 3), np.float32)
    cpu.rescale_batch(got, src, coeffs, 1, 1, 2, 1)
    inner = src[:, 1:5, 2:7]
    close(got[0, 1:5, 1:6], ((inner[0] - np.float32(0.25)) / np.float32(2)) * np.float32(3) - np.float32(1))
    close(got[1, 1:5, 1:6], inner[1] * np.float32(0.5))


def test_dropout_follows_each_neurons_taus88_stream():
    """A neuron is dropped exactly when its generator's next output % 100 < probability, the
    generators stepping once per call (OpenPV's draw); numba equals numpy bit for bit."""
    from pvmpi.network.random import TausBank

    shape = (2, 3, 4, 2)
    bank = TausBank(np.arange(np.prod(shape)) + 31_000_000)
    truth = bank.copy()
    state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape((4,) + shape)
    fast = state.copy()
    for _ in range(4):
        A = np.ones((2, 3 + 2, 4 + 2, 2), np.float32)
        B = A.copy()
        ref.dropout(A, state, 30, 1, 1)
        cpu.dropout(B, fast, 30, 1, 1)
        drops = (truth.uint().reshape(shape) % 100) < 30
        np.testing.assert_array_equal(A[:, 1:4, 1:5] == 0, drops)
        np.testing.assert_array_equal(A, B)
        assert (A[:, 0] == 1).all()  # the halo is left alone
    np.testing.assert_array_equal(state, fast)


def test_firm_threshold_transfer_is_the_cost_function():
    """A = |v|(1 - |v|/(2w)) up to and including w = VThresh + VWidth, w/2 beyond; margins untouched."""
    V = np.array([-2.0, -0.8, -0.3, 0.0, 0.2, 0.75, 0.8, 1.5] * 3, np.float32).reshape(1, 3, 4, 2)
    A = np.full((1, 5, 8, 2), 9.0, np.float32)
    ref.firm_threshold_transfer(V, A, 2, 1, 0.5, 0.3)
    x = np.abs(V.astype(np.float64))
    want = np.where(x <= 0.8, x * (1 - x / 1.6), 0.4)
    np.testing.assert_allclose(A[:, 1:4, 2:6], want, rtol=1e-6)
    assert (A[:, 0] == 9).all() and (A[:, :, :2] == 9).all()


def test_combine_channels():
    GSyn = np.array([[6.0, -1.0, 0.0], [2.0, 4.0, 5.0]], np.float32).reshape(2, 1, 1, 1, 3)
    G = np.zeros((1, 1, 1, 3), np.float32)
    for op, want in ((ref.QUOTIENT, [3.0, -0.25, 0.0]), (ref.PRODUCT, [12.0, -4.0, 0.0]), (ref.SQUARE, [36.0, 1.0, 0.0])):
        ref.combine_channels(GSyn, G, op)
        np.testing.assert_array_equal(G.ravel(), want)


def test_deliver_feature_max():
    A = np.random.default_rng(8).normal(size=(2, 5, 6, 3)).astype(np.float32)
    G = np.ones((2, 3, 4, 1), np.float32)
    ref.deliver_feature_max(A, G, 1, 1, True)
    np.testing.assert_array_equal(G[..., 0], 1 + A[:, 1:4, 1:5].max(axis=-1))
    ref.deliver_feature_max(A, G, 1, 1, False)
    np.testing.assert_array_equal(G[..., 0], A[:, 1:4, 1:5].max(axis=-1))


@pytest.mark.parametrize("sigmoid,inverse", [(True, False), (False, False), (True, True), (False, True)])
def test_sigmoid_transfer(sigmoid, inverse):
    V = np.linspace(-3, 3, 24, dtype=np.float32).reshape(1, 3, 4, 2)
    A = np.full((1, 5, 6, 2), 9.0, np.float32)
    ref.sigmoid_transfer(V, A, 1, 1, 0.5, 1.5, sigmoid, inverse)
    v = V.astype(np.float64)
    want = 1 / (1 + np.exp(2 * (v - 0.5) * 1.5)) if sigmoid else np.clip(0.5 - (v - 0.5) * 0.75, 0, 1)
    np.testing.assert_allclose(A[:, 1:4, 1:5], 1 - want if inverse else want, rtol=1e-6, atol=1e-7)
    assert (A[:, 0] == 9).all()


def test_retina_spikes_follow_the_rule_and_the_streams():
    """Within the absolute refractory period no spike and no draw; past it one taus88 step per neuron and
    a spike when s0/2^32 < p = (base + stim (exc - inh) burst) r; numba equals numpy bit for bit."""
    from pvmpi.kernels.numpy_ref import taus88_step
    from pvmpi.network.random import TausBank

    rng = np.random.default_rng(5)
    G = rng.uniform(0, 1, (2, 2, 3, 4, 2)).astype(np.float32)
    bank = TausBank(np.arange(48) + 20_000_000)
    before = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape(4, 2, 3, 4, 2)
    state, fast = before.copy(), before.copy()
    asleep = rng.uniform(size=(2, 3, 4, 2)) < 0.3
    since = np.where(asleep, 0.0, 5.0).astype(np.float32)  # t = since + 1: 1 < 1.5 asleep, 6 awake
    since2 = since.copy()
    A, B = np.zeros((2, 5, 6, 2), np.float32), np.zeros((2, 5, 6, 2), np.float32)
    ref.retina_spikes(G, A, since, state, 1, 1, 1.0, 0.2, 0.9, 0.5, 1.5, 2.0)
    cpu.retina_spikes(G, B, since2, fast, 1, 1, 1.0, 0.2, 0.9, 0.5, 1.5, 2.0)
    for x, y in ((A, B), (since, since2), (state, fast)):
        np.testing.assert_array_equal(x, y)
    spikes = A[:, 1:4, 1:5] == 1
    np.testing.assert_array_equal(state[:, asleep], before[:, asleep])
    assert not spikes[asleep].any() and (since[asleep] == 1).all()
    s1, s2, s3 = taus88_step(before[1], before[2], before[3])
    np.testing.assert_array_equal(state[0][~asleep], (s1 ^ s2 ^ s3)[~asleep])
    r = np.float32(1) - np.exp(-(np.float32(6) - np.float32(1.5)) / np.float32(2))
    p = np.float32(0.2) * r + (np.float32(0.9) * (G[0] - G[1])) * r * np.float32(0.5)
    u = state[0].astype(np.float32) / np.float32(2**32)
    np.testing.assert_array_equal(spikes[~asleep], (u < p)[~asleep])
    assert 0 < spikes[~asleep].sum() < (~asleep).sum()
    np.testing.assert_array_equal(since[~asleep], np.where(spikes, 0, 6)[~asleep])


def test_retina_rate():
    G = np.random.default_rng(6).normal(size=(2, 1, 2, 3, 1)).astype(np.float32)
    A = np.zeros((1, 4, 5, 1), np.float32)
    ref.retina_rate(G, A, 1, 1, 0.5, 0.25)
    np.testing.assert_array_equal(A[:, 1:3, 1:4], np.float32(0.5) * (G[0] - G[1]) + np.float32(0.25))


def _pool_tables(n_pre, n_post, patch, margin):
    from pvmpi.geometry import axis_map

    amap = axis_map(n_pre, n_post, patch)
    return post_table(amap, margin)


@pytest.mark.parametrize("active_only", [False, True])
def test_max_pool_is_the_largest_input_of_each_feature(active_only):
    """2x2 blocks (many-to-one, patch 1): each post neuron is the max of its block, per feature; with
    active_only zeros are skipped (-inf where a block holds only zeros)."""
    A = np.random.default_rng(11).normal(size=(2, 4, 6, 3)).astype(np.float32)
    A[0, :2, :2] = 0  # one block of zeros
    tx, ty = _pool_tables(6, 3, 1, 0), _pool_tables(4, 2, 1, 0)
    G = np.zeros((2, 2, 3, 3), np.float32)
    ref.deliver_max_pool(A, G, tx, ty, True, active_only)
    blocks = A.reshape(2, 2, 2, 3, 2, 3)
    want = np.where(blocks != 0, blocks, -np.inf).max(axis=(2, 4)) if active_only else blocks.max(axis=(2, 4))
    np.testing.assert_array_equal(G, want)
    got = np.zeros_like(G)
    cpu.deliver_max_pool(A, got, tx, ty, True, active_only)
    np.testing.assert_array_equal(got, G)



@pytest.mark.parametrize("with_gap", [False, True])
def test_lif_arma_numba_equals_numpy(with_gap):
    """Ten steps of driven, noisy LIF neurons: spikes, state and generators bit for bit."""
    from pvmpi.network.random import TausBank

    rng = np.random.default_rng(15)
    shape = (2, 3, 4, 2)
    bank = TausBank(np.arange(48) + 40_000_000)
    state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape((4,) + shape)
    a = [np.full(shape, v, np.float32) for v in (-70, -55, 0, 0, 0)]
    b, fast = [x.copy() for x in a], state.copy()
    gap = rng.uniform(0, 0.5, shape).astype(np.float32)
    consts = np.array([5, -70, 0, -75, -90, -55, 5, 1, 0.5, 0.5, 0.2, 0.3, 0.3, 0.3, np.exp(-1.0),
                       np.exp(-0.2), np.exp(-0.1), np.exp(-0.1), 1.0], np.float32)
    spikes = 0
    for _ in range(10):
        G = rng.uniform(0, 8, (4,) + shape).astype(np.float32)
        G[1:3] *= 0.1
        A, B = np.zeros((2, 5, 6, 2), np.float32), np.zeros((2, 5, 6, 2), np.float32)
        ref.lif_arma(G, A, *a, gap, state, 1, 1, consts, with_gap)
        cpu.lif_arma(G, B, *b, gap, fast, 1, 1, consts, with_gap)
        np.testing.assert_array_equal(A, B)
        spikes += A.sum()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(state, fast)
    assert spikes > 0


@pytest.mark.parametrize("invert", [False, True])
def test_mask_activity(invert):
    """Zero where the mask is 0 (or, inverted, where it is not); a one-feature mask covers every feature,
    a [1, 1, 1, nf] mask chooses features; numba equals numpy."""
    rng = np.random.default_rng(17)
    A = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    M = np.pad((rng.uniform(size=(2, 3, 4, 1)) < 0.5).astype(np.float32), ((0, 0), (2, 2), (1, 1), (0, 0)))
    for mask, m_lt, m_up in ((M, 1, 2), (np.array([1, 0, 1], np.float32).reshape(1, 1, 1, 3), 0, 0)):
        want, got = A.copy(), A.copy()
        ref.mask_activity(want, 1, 1, mask, m_lt, m_up, invert)
        cpu.mask_activity(got, 1, 1, mask, m_lt, m_up, invert)
        np.testing.assert_array_equal(got, want)
        m = mask[:, m_up:m_up + 3, m_lt:m_lt + 4] if mask.shape[1] > 1 else mask
        dropped = np.broadcast_to((m != 0) if invert else (m == 0), (2, 3, 4, 3))
        np.testing.assert_array_equal(want[:, 1:4, 1:5][dropped], 0)
        np.testing.assert_array_equal(want[:, 1:4, 1:5][~dropped], A[:, 1:4, 1:5][~dropped])
        assert (want[:, 0] == A[:, 0]).all()


def test_background():
    """rep copies of 'nothing active here', then each feature rep times; numba equals numpy."""
    src = np.zeros((1, 3, 4, 2), np.float32)
    src[0, 1, 1, 1] = 0.5
    src = np.pad(src, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros((1, 3, 4, 6), np.float32)
    got = want.copy()
    ref.background(want, 0, 0, src, 1, 1, 2)
    cpu.background(got, 0, 0, src, 1, 1, 2)
    np.testing.assert_array_equal(got, want)
    assert (want[0, 1, 1] == [0, 0, 0, 0, 0.5, 0.5]).all()
    assert (want[0, 0, 0] == [1, 1, 0, 0, 0, 0]).all()


def test_spikelet():
    """A = V, plus amp where the source is positive; numba equals numpy."""
    rng = np.random.default_rng(20)
    V = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    src = np.pad(rng.normal(size=(2, 3, 4, 2)).astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want, got = np.zeros((2, 3, 4, 2), np.float32), np.zeros((2, 3, 4, 2), np.float32)
    ref.spikelet(want, 0, 0, V, src, 1, 1, 50.0)
    cpu.spikelet(got, 0, 0, V, src, 1, 1, 50.0)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, np.where(src[:, 1:4, 1:5] > 0, V + np.float32(50), V))


def test_max_pool_gate_and_unpool():
    """2x2 max pooling records each pool's winner (the last of equal values) as a global extended index;
    unpooling sends each pooled value back to it; numba equals numpy."""
    rng = np.random.default_rng(22)
    A = np.round(rng.uniform(-2, 2, size=(2, 4, 6, 2))).astype(np.float32)  # ties on purpose
    tx, ty = _pool_tables(6, 3, 1, 0), _pool_tables(4, 2, 1, 0)
    G, gate = np.zeros((2, 2, 3, 2), np.float32), np.zeros((2, 2, 3, 2), np.float32)
    ref.deliver_max_pool(A, G, tx, ty, True, False, gate, 0, 0, 6)
    G2, gate2 = np.zeros_like(G), np.zeros_like(gate)
    cpu.deliver_max_pool(A, G2, tx, ty, True, False, gate2, 0, 0, 6)
    np.testing.assert_array_equal(G2, G)
    np.testing.assert_array_equal(gate2, gate)
    for b, y, x, f in np.ndindex(G.shape):
        block = A[b, 2 * y:2 * y + 2, 2 * x:2 * x + 2, f]
        last = max(i for i, v in enumerate(block.ravel()) if v == block.max())
        yy, xx = 2 * y + last // 2, 2 * x + last % 2
        assert gate[b, y, x, f] == (yy * 6 + xx) * 2 + f
    back, back2 = np.zeros_like(A), np.zeros_like(A)
    ref.unpool_max(G, back, gate, 0, 0, 0, 0, (0, 0, 3, 2), 0, 0, 6, 0, 0)
    cpu.unpool_max(G, back2, gate, 0, 0, 0, 0, (0, 0, 3, 2), 0, 0, 6, 0, 0)
    np.testing.assert_array_equal(back2, back)
    assert (back.reshape(2, 2, 2, 3, 2, 2).max(axis=(2, 4)) >= np.where(G > 0, G, 0)).all()

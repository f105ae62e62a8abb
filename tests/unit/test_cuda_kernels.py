"""CUDA kernels against the numpy reference: in Numba's CUDA simulator (CI) or on a real GPU.

Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when it is first imported, and
other test modules import numba first; so a plain ``pytest`` run tests the
kernels in a child process started with the simulator on
(``test_cuda_kernels_in_simulator`` runs this very file there with
``PVMPI_CUDA_TESTS=sim``). Setting the variable in this module, or in a
conftest, would depend on collection order and would put every other test
module's numba into simulator mode too; a child process does neither.

On a GPU machine ``PVMPI_CUDA_TESTS=gpu pytest tests/unit/test_cuda_kernels.py``
runs the same tests on the device (no simulator). Shapes are tiny: every
simulated CUDA thread is a Python thread.
"""
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kernel_cases import close, make_case

from pvmpi.errors import PvmpiError
from pvmpi.geometry import post_table
from pvmpi.kernels import KERNELS, get_backend
from pvmpi.kernels import numpy_ref as ref
from pvmpi.parallel.devices import (
    binding_warning,
    choose_device,
    cuda_aware_mpi,
    parse_device_ids,
    select_device,
)

MODE = os.environ.get("PVMPI_CUDA_TESTS")  # "sim" (the child process) or "gpu"
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
REPO = Path(__file__).resolve().parents[2]
FLT_MAX = 3.4028234663852886e38

inner = pytest.mark.skipif(MODE not in ("sim", "gpu"),
                           reason="runs inside test_cuda_kernels_in_simulator (or PVMPI_CUDA_TESTS=gpu)")

if MODE == "sim":
    # The simulator's block manager polls its threads; the default 5 ms GIL
    # switch interval makes every syncthreads() cost milliseconds.
    sys.setswitchinterval(1e-4)


@pytest.fixture(scope="module")
def cu():
    be = get_backend("cuda")
    assert be.SIMULATOR == (MODE == "sim")
    return be


# --------------------------------------------------------------------- the two entry points for CI

@pytest.mark.skipif(MODE is not None, reason="already inside a CUDA test process")
@pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason="numba-cuda not installed (pip install -e '.[test]')")
def test_cuda_kernels_in_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PVMPI_CUDA_TESTS="sim")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                           str(Path(__file__))], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail


@pytest.mark.skipif(MODE == "sim", reason="the simulator is always available")
@pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason="numba-cuda not installed")
def test_missing_gpu_is_a_clear_error():
    """--backend cuda with no usable GPU: one PvmpiError naming the device, never a CPU run."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_CUDA_DRIVER"] = "/nonexistent/libcuda.so"  # no driver (older numba-cuda) ...
    env["CUDA_VISIBLE_DEVICES"] = ""  # ... and no visible device: the same answer on GPU machines
    code = ("from pvmpi.kernels import get_backend\n"
            "from pvmpi.errors import PvmpiError\n"
            "try:\n    get_backend('cuda')\n"
            "except PvmpiError as e:\n    print('ERR', e); raise SystemExit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("ERR --backend cuda needs an NVIDIA GPU: none found (") and "\n" not in line
    assert "numba" in line  # the hint names the CPU backend


# --------------------------------------------------------------------- cases (kernel_cases.py; smaller for the simulator)

# (x axis (n_pre, n_post, patch), y axis, nf_pre, nfp, nbatch, extra margin, density):
# strides 1, 2 and 4 both ways, odd and even patches, nf 1-3 (8 for the LCA-like case), batch 1-3.
CASES = {
    "1to1-odd": ((6, 6, 3), (5, 5, 5), 2, 3, 1, 0, 1.0),
    "1to1-p1-sparse": ((6, 6, 1), (6, 6, 3), 3, 2, 2, 1, 0.2),
    "1to2-p8-lca": ((4, 8, 8), (4, 8, 8), 8, 1, 2, 1, 0.1),
    "1to2-p2-dense": ((4, 8, 2), (3, 6, 6), 2, 2, 1, 0, 1.0),
    "1to4-p4": ((2, 8, 4), (2, 8, 8), 3, 2, 2, 2, 0.3),
    "2to1-p4-lcaT": ((8, 4, 4), (8, 4, 4), 1, 8, 2, 0, 1.0),
    "2to1-p3-sparse": ((8, 4, 3), (8, 4, 1), 3, 3, 1, 1, 0.15),
    "4to1-even-mixed": ((16, 4, 2), (4, 8, 4), 2, 3, 1, 0, 0.6),
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request):
    return make_case(*CASES[request.param])


def deliver(be, c, how, A=None, lst=None, G=None, overwrite=False):
    A = c.A if A is None else A
    G = (c.G0 if G is None else G).copy()
    if how == "pre":
        be.deliver_pre(A, c.W, G, *c.geo, c.lt, c.up, overwrite)
    elif how == "sparse":
        offsets, idx, val = ref.active_list(A, c.lt, c.up) if lst is None else lst
        be.deliver_sparse(offsets, idx, val, c.nf, A.shape[2], c.W, G, *c.geo, c.lt, c.up, overwrite)
    else:
        be.deliver_post(A, c.W, G, post_table(c.xm, c.lt), post_table(c.ym, c.up), c.xm.n_kernels, overwrite)
    return G


def hebbian(be, c, sparse, dw_max=0.5):
    dW = np.zeros_like(c.W)
    cnt = np.zeros_like(c.W)
    args = (*c.geo, c.lt, c.up, c.lt_post, c.up_post)
    if sparse:
        offsets, idx, val = ref.active_list(c.A, c.lt, c.up)
        be.hebbian_shared_sparse(offsets, idx, val, c.nf, c.A.shape[2], c.A_post, dW, cnt, dw_max, *args)
    else:
        be.hebbian_shared(c.A, c.A_post, dW, cnt, dw_max, *args)
    return dW, cnt


# --------------------------------------------------------------------- interface

@inner
@pytest.mark.parametrize("name", KERNELS)
def test_same_signatures_as_the_reference(cu, name):
    assert inspect.signature(getattr(cu, name)) == inspect.signature(getattr(ref, name))


@inner
def test_cuda_keeps_the_contract(cu):
    """The kernels of a device-resident backend (halo strips included), with the contract's arguments."""
    from pvmpi.kernels.contract import required

    assert cu.CAPABILITIES.device_resident
    for kernel in required(cu.CAPABILITIES):
        assert tuple(inspect.signature(getattr(cu, kernel.name)).parameters) == kernel.args, kernel.name


@inner
def test_get_backend_cuda(cu):
    assert get_backend("cuda") is cu


# --------------------------------------------------------------------- delivery

@inner
def test_active_list(cu, case):
    got = cu.active_list(case.A, case.lt, case.up)
    for g, w in zip(got, ref.active_list(case.A, case.lt, case.up)):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@inner
def test_active_list_empty_and_one(cu):
    A = np.zeros((2, 4, 5, 3), np.float32)
    offsets, idx, val = cu.active_list(A, 1, 1)
    assert list(offsets) == [0, 0, 0] and idx.size == 0 and val.size == 0
    A[1, 2, 3, 1] = 2.0
    offsets, idx, val = cu.active_list(A, 1, 1)
    assert list(offsets) == [0, 0, 1] and list(idx) == [1 + 3 * (3 + 5 * 2)] and list(val) == [2.0]


@inner
def test_active_list_several_chunks(cu, monkeypatch):
    """Chunks of SCAN*ACTIVE_K elements: shrink them so one batch element spans many."""
    monkeypatch.setattr(cu, "ACTIVE_K", 1)
    rng = np.random.default_rng(2)
    A = (rng.standard_normal((2, 5, 9, 3)) * (rng.random((2, 5, 9, 3)) < 0.4)).astype(np.float32)
    for g, w in zip(cu.active_list(A, 0, 0), ref.active_list(A, 0, 0)):
        np.testing.assert_array_equal(g, w)


@inner
def test_active_list_reuses_an_earlier_lists_buffers(cu):
    """A device A's list goes into the buffers of the list it replaces while they hold it: the same
    entries as a fresh list, and no allocation until the list outgrows them."""
    rng = np.random.default_rng(5)
    shape = (2, 6, 7, 4)

    def sparse(p):
        return (rng.standard_normal(shape) * (rng.random(shape) < p)).astype(np.float32)

    cu.active_list(cu.to_device(sparse(0.1)), 1, 1)  # the scratch of this shape, made once
    lists, before = [], cu.allocations()
    for p in (0.05, 0.08, 0.02, 0.6, 0.3):
        A = sparse(p)
        got = cu.active_list(cu.to_device(A), 1, 1, reuse=lists[-1] if lists else None)
        for g, w in zip(got, ref.active_list(A, 1, 1)):
            np.testing.assert_array_equal(cu.to_host(g), w)
        lists.append(got)
    made = cu.allocations() - before - len(lists)  # to_device made one per A
    # the first list: offsets, idx and val; p = 0.6 outgrows an eighth of the buffer: idx and val again
    assert made == 5, made
    def same(a, b):
        return all(x is y for x, y in zip(a.buffers, b.buffers))

    assert same(lists[1], lists[0]) and same(lists[2], lists[0]) and same(lists[4], lists[3])
    assert lists[3].buffers[0] is lists[0].buffers[0] and lists[3].buffers[1] is not lists[0].buffers[1]


@pytest.mark.skipif(MODE != "sim", reason="the simulator's shared-array allocation")
def test_block_scans_survive_the_simulators_shared_array_race(cu, monkeypatch):
    """The simulator allocates a static shared array at each thread's first call, unlocked: under load two
    threads of a block can get different arrays (a CI run once built an unsorted active list that way).
    With every static allocation private to its thread (the race at its worst) the block scans and
    reductions must still be right: the kernels use dynamic shared memory, made once per launch."""
    from numba.cuda.simulator import kernelapi

    real = kernelapi.FakeCUDAShared.array

    def private(self, shape, dtype, alignment=None):
        if shape == 0:
            return real(self, shape, dtype, alignment)
        return np.full(shape, -7, dtype=kernelapi.numpy_support.as_dtype(dtype)
                       if isinstance(dtype, kernelapi.types.Type) else dtype)

    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", private)
    rng = np.random.default_rng(5)
    A = (rng.standard_normal((2, 7, 9, 4)) * (rng.random((2, 7, 9, 4)) < 0.3)).astype(np.float32)
    monkeypatch.setattr(cu, "ACTIVE_K", 1)  # many chunks, so the scan of the chunk counts matters
    for g, w in zip(cu.active_list(A, 1, 1), ref.active_list(A, 1, 1)):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(cu.layer_stats(A, 1, 1, 5, 7, 0.1), ref.layer_stats(A, 1, 1, 5, 7, 0.1),
                               rtol=1e-12)


@inner
@pytest.mark.parametrize("how", ["pre", "sparse", "post"])
def test_deliver_equals_numpy(cu, case, how):
    close(deliver(cu, case, how), deliver(ref, case, how))


@inner
@pytest.mark.parametrize("how", ["pre", "sparse", "post"])
def test_an_overwriting_delivery_gives_the_bits_of_one_into_zeros(cu, how):
    """The channel's first delivery writes its sums (no launch to clear G): 0 + sum, bit for bit."""
    c = make_case(*CASES["1to2-p2-dense"])
    want = deliver(cu, c, how, G=np.zeros_like(c.G0))
    got = deliver(cu, c, how, G=np.full_like(c.G0, np.nan), overwrite=True)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    empty = (np.zeros(c.A.shape[0] + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))
    np.testing.assert_array_equal(deliver(cu, c, "sparse", lst=empty, G=np.full_like(c.G0, np.nan),
                                          overwrite=True), 0)


@inner
def test_deliver_zero_activity_adds_nothing(cu):
    c = make_case(*CASES["1to2-p2-dense"])
    A = np.zeros_like(c.A)
    for how in ("pre", "post"):
        np.testing.assert_array_equal(deliver(cu, c, how, A=A), c.G0)
    G = c.G0.copy()
    cu.deliver_sparse(np.zeros(2, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32),
                      c.nf, A.shape[2], c.W, G, *c.geo, c.lt, c.up)
    np.testing.assert_array_equal(G, c.G0)


@inner
@pytest.mark.parametrize("how", ["pre", "sparse", "post"])
def test_deliver_many_post_features(cu, how):
    """nfp > 32: several feature chunks per post neuron (blocks of OC features)."""
    c = make_case((2, 4, 2), (3, 3, 3), 2, 40, 1, 0, 0.5, seed=5)
    close(deliver(cu, c, how), deliver(ref, c, how))


@inner
@pytest.mark.parametrize("how", ["pre", "sparse", "post"])
def test_deliver_chunked_weight_tiles(cu, monkeypatch, how):
    """A tiny shared-memory budget forces the jy, f and feature chunking of the weight tile."""
    c = make_case(*CASES["1to2-p8-lca"], seed=6)
    want = deliver(ref, c, how)
    for floats in (64, 8):
        monkeypatch.setattr(cu, "TILE_FLOATS", floats)
        close(deliver(cu, c, how), want)


@inner
def test_results_are_reproducible(cu):
    """Every kernel owns its outputs (no float atomics): two runs agree bit for bit."""
    c = make_case(*CASES["1to2-p8-lca"], seed=9)
    runs = [[deliver(cu, c, how) for how in ("pre", "sparse", "post")]
            + list(hebbian(cu, c, False)) + list(hebbian(cu, c, True)) for _ in range(2)]
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)


@inner
def test_wrong_output_dtype_is_refused(cu):
    c = make_case(*CASES["1to1-odd"])
    with pytest.raises(ValueError):
        cu.deliver_pre(c.A, c.W, c.G0.astype(np.float64), *c.geo, c.lt, c.up)


@inner
def test_accumulate_input(cu):
    rng = np.random.default_rng(1)
    GSyn = rng.standard_normal((3, 2, 3, 4, 5)).astype(np.float32)
    G = np.full(GSyn.shape[1:], 7.0, np.float32)
    cu.accumulate_input(GSyn, [0.5, -2.0, 1.0], G)
    close(G, np.float32(0.5) * GSyn[0] + np.float32(-2.0) * GSyn[1] + GSyn[2])
    cu.accumulate_input(GSyn[:2], [1, -1], G)
    close(G, GSyn[0] - GSyn[1])


@inner
def test_update_ann(cu):
    rng = np.random.default_rng(2)
    GSyn = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    V_want, A_want = np.empty(GSyn.shape[1:], np.float32), np.full((2, 5, 6, 5), 9.0, np.float32)
    ref.update_ann(GSyn, [1.0, -1.0], V_want, A_want, 1, 1, 0.5, 0.0, FLT_MAX, 0.5, 0.0)
    V, A, sums = np.zeros_like(V_want), np.full_like(A_want, 9.0), np.empty(2)
    cu.update_ann(GSyn, [1.0, -1.0], V, A, 1, 1, 0.5, 0.0, FLT_MAX, 0.5, 0.0, sums)
    close(V, V_want)
    close(A, A_want)
    np.testing.assert_allclose(sums, A_want[:, 1:-1, 1:-1].astype(np.float64).sum(axis=(1, 2, 3)), rtol=1e-12)


# ------------------------------------------------------------------- transfer / LCA

TRANSFER = {
    "hard": (0.5, 0.0, FLT_MAX, 0.0, 0.0),
    "soft-lca": (0.5, 0.0, FLT_MAX, 0.5, 0.0),
    "firm-shift": (0.5, 0.0, FLT_MAX, 0.25, 0.5),
    "clip-negative-AMin": (0.5, -1.0, 1.0, 0.0, 0.0),
    "passthrough": (-FLT_MAX, -FLT_MAX, FLT_MAX, 0.0, 0.0),
    "passthrough-clip": (-FLT_MAX, 0.0, 0.75, 0.3, 0.0),
}


@inner
@pytest.mark.parametrize("name", list(TRANSFER))
def test_apply_transfer(cu, name):
    V = np.array([-1.0, 0.0, 0.4, 0.5, 0.6, 0.75, 0.99, 1.0, 1.2, 3.0] * 6, np.float32).reshape(2, 3, 5, 2)
    want = np.full((2, 3 + 4, 5 + 2, 2), 9.0, np.float32)
    got = want.copy()
    ref.apply_transfer(V, want, 1, 2, *TRANSFER[name])
    sums = np.empty(2)
    cu.apply_transfer(V, got, 1, 2, *TRANSFER[name], sums=sums)
    close(got, want)
    np.testing.assert_allclose(sums, got[:, 2:-2, 1:-1].astype(np.float64).sum(axis=(1, 2, 3)), rtol=1e-12)
    got[:, 2:-2, 1:-1] = 9.0
    assert np.all(got == 9.0), "halo must not be written"


@inner
@pytest.mark.parametrize("self_interact", [True, 0.0])
def test_update_lca(cu, self_interact):
    rng = np.random.default_rng(5)
    nb, ny, nx, nf, lt, up = 2, 4, 5, 3, 2, 1
    params = (0.3, 0.0, FLT_MAX, 0.3, 0.0)
    V = rng.standard_normal((nb, ny, nx, nf)).astype(np.float32)
    G = rng.standard_normal((nb, ny, nx, nf)).astype(np.float32)
    A = rng.standard_normal((nb, ny + 2 * up, nx + 2 * lt, nf)).astype(np.float32)
    e = np.exp(-np.array([0.01, 0.2])).astype(np.float32)
    out = []
    for be in (ref, cu):
        Vb, Ab = V.copy(), A.copy()
        be.update_lca(Vb, Ab, G, e, self_interact, lt, up, *params)
        out.append((Vb, Ab))
    (Vr, Ar), (Vc, Ac) = out
    close(Vc, Vr)
    close(Ac, Ar)
    np.testing.assert_array_equal(Ac[:, :up], A[:, :up])  # halo untouched
    np.testing.assert_array_equal(Ac[:, :, :lt], A[:, :, :lt])


# --------------------------------------------------------------------- learning

@inner
@pytest.mark.parametrize("sparse", [False, True])
def test_hebbian_equals_numpy(cu, case, sparse):
    want_dW, want_cnt = hebbian(ref, case, False)
    dW, cnt = hebbian(cu, case, sparse)
    close(dW, want_dW)
    np.testing.assert_array_equal(cnt, want_cnt)


@inner
def test_hebbian_accumulates_into_caller_arrays(cu):
    c = make_case(*CASES["2to1-p3-sparse"])
    once, cnt1 = hebbian(ref, c, False)
    dW, cnt = np.zeros_like(c.W), np.zeros_like(c.W)
    args = (*c.geo, c.lt, c.up, c.lt_post, c.up_post)
    cu.hebbian_shared(c.A, c.A_post, dW, cnt, 0.5, *args)
    offsets, idx, val = ref.active_list(c.A, c.lt, c.up)
    cu.hebbian_shared_sparse(offsets, idx, val, c.nf, c.A.shape[2], c.A_post, dW, cnt, 0.5, *args)
    close(dW, 2 * once)
    np.testing.assert_array_equal(cnt, 2 * cnt1)


# --------------------------------------------------------------------- probes

@inner
@pytest.mark.parametrize("nb, margin, thr", [(1, 0, 0.0), (3, 2, 0.25)])
def test_layer_stats(cu, nb, margin, thr):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((nb, 5 + 2 * margin, 6 + 2 * margin, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.5] = 0
    np.testing.assert_allclose(cu.layer_stats(X, margin, margin, 5, 6, thr),
                               ref.layer_stats(X, margin, margin, 5, 6, thr), rtol=1e-12)


@inner
def test_stats_read_later_share_one_wait_and_keep_their_own_state(cu):
    """Stats started on device arrays are read later: after one wait (a read of the device, or the
    first result()) every earlier one is known; a later start on the same array, after the array
    changed, leaves the earlier result as it was."""
    rng = np.random.default_rng(9)
    X, Y = (rng.standard_normal((2, 6, 7, 3)).astype(np.float32) for _ in range(2))
    dx, dy = cu.to_device(X), cu.to_device(Y)
    waits = cu.host_waits()
    first, other = cu.layer_stats_later(dx, 1, 1, 4, 5, 0.0), cu.layer_stats_later(dy, 1, 1, 4, 5, 0.0)
    assert cu.host_waits() == waits  # started, not waited for
    cu.to_host(dy)  # a read of the device: everything queued before it is done
    np.testing.assert_allclose(first.result(), ref.layer_stats(X, 1, 1, 4, 5, 0.0), rtol=1e-12)
    np.testing.assert_allclose(other.result(), ref.layer_stats(Y, 1, 1, 4, 5, 0.0), rtol=1e-12)
    assert cu.host_waits() == waits + 1
    third = cu.layer_stats_later(dy, 1, 1, 4, 5, 0.0)
    cu.scale_into(dy, dx, 2.0, False)  # Y changes after its stats started; then its buffers are reused
    fourth = cu.layer_stats_later(dy, 1, 1, 4, 5, 0.0)
    np.testing.assert_allclose(fourth.result(), ref.layer_stats(2 * X, 1, 1, 4, 5, 0.0), rtol=1e-6)
    np.testing.assert_allclose(third.result(), ref.layer_stats(Y, 1, 1, 4, 5, 0.0), rtol=1e-12)


@inner
@pytest.mark.parametrize("nb, margin, w", [(1, 0, 0.3), (3, 2, 0.05)])
def test_firm_threshold_cost(cu, nb, margin, w):
    rng = np.random.default_rng(8)
    X = (rng.standard_normal((nb, 5 + 2 * margin, 6 + 2 * margin, 3)) * 0.2).astype(np.float32)
    X[rng.random(X.shape) < 0.5] = 0
    want = ref.firm_threshold_cost(X, margin, margin, 5, 6, w)
    np.testing.assert_allclose(cu.firm_threshold_cost(X, margin, margin, 5, 6, w), want, rtol=1e-12)
    np.testing.assert_allclose(cu.firm_threshold_cost(cu.to_device(X), margin, margin, 5, 6, w), want,
                               rtol=1e-12)


# --------------------------------------------------------------------- device-resident use

@inner
def test_device_arrays_stay_on_the_device(cu):
    """Device arguments are used in place; active_list of a device A returns device arrays."""
    c = make_case(*CASES["1to2-p8-lca"], seed=11)
    dA, dG = cu.to_device(c.A), cu.to_device(c.G0)
    lst = cu.active_list(dA, c.lt, c.up)
    assert not any(isinstance(a, np.ndarray) for a in lst)
    for g, w in zip(lst, ref.active_list(c.A, c.lt, c.up)):
        np.testing.assert_array_equal(cu.to_host(g), w)
    cu.deliver_sparse(*lst, c.nf, c.A.shape[2], cu.to_device(c.W), dG, *c.geo, c.lt, c.up)
    close(cu.to_host(dG), deliver(ref, c, "sparse"))
    dW, dcnt = cu.to_device(np.zeros_like(c.W)), cu.to_device(np.zeros_like(c.W))
    cu.hebbian_shared_sparse(*lst, c.nf, c.A.shape[2], cu.to_device(c.A_post), dW, dcnt, 0.5,
                             *c.geo, c.lt, c.up, c.lt_post, c.up_post)
    want_dW, want_cnt = hebbian(ref, c, False)
    close(cu.to_host(dW), want_dW)
    np.testing.assert_array_equal(cu.to_host(dcnt), want_cnt)


# --------------------------------------------------------------------- device binding (no GPU, no MPI job)



@pytest.mark.parametrize("local_rank, n_gpus, want", [(0, 4, 0), (3, 4, 3), (5, 4, 1), (7, 2, 1), (2, 1, 0)])
def test_device_is_local_rank_mod_gpus(local_rank, n_gpus, want):
    assert choose_device(local_rank, n_gpus, None, world_rank=10 + local_rank, world_size=64) == want


def test_device_ids_follow_openpv():
    # one id: every rank; at least one per rank: rank r takes the r-th (local rank ignored)
    assert [choose_device(r % 2, 8, [5], r, 4) for r in range(4)] == [5] * 4
    assert [choose_device(r % 2, 8, [3, 2, 1, 0], r, 4) for r in range(4)] == [3, 2, 1, 0]
    assert choose_device(0, 8, [0, 1, 2, 3, 4], 2, 3) == 2
    with pytest.raises(PvmpiError, match="-d lists 2 GPU ids for 4 MPI ranks"):
        choose_device(0, 8, [0, 1], 1, 4)


def test_device_rule_errors_are_clear():
    with pytest.raises(PvmpiError, match="needs an NVIDIA GPU: none found on this node"):
        choose_device(0, 0, None, 0, 1)
    with pytest.raises(PvmpiError, match="GPU id 4 does not exist: this node has 2 GPU"):
        choose_device(0, 2, [4], 0, 1)
    assert choose_device(3, None, [7], 3, 4) == 7  # unknown GPU count: ids not checked


def test_cuda_aware_mpi_can_be_decided_by_the_user(monkeypatch):
    """PVMPI_CUDA_AWARE_MPI overrides the detection both ways (MPIs that are CUDA-aware but do not say
    so); a wrong value is an error naming the variable; unset, pip's MPICH (this CI) is not CUDA-aware."""
    from mpi4py import MPI

    monkeypatch.delenv("PVMPI_CUDA_AWARE_MPI", raising=False)
    assert cuda_aware_mpi(MPI.COMM_SELF) is False
    for value, want in (("1", True), ("yes", True), ("0", False), ("False", False)):
        monkeypatch.setenv("PVMPI_CUDA_AWARE_MPI", value)
        assert cuda_aware_mpi(MPI.COMM_SELF) is want
    monkeypatch.setenv("PVMPI_CUDA_AWARE_MPI", "maybe")
    with pytest.raises(PvmpiError, match="PVMPI_CUDA_AWARE_MPI='maybe': expected 1 or 0"):
        cuda_aware_mpi(MPI.COMM_SELF)


def test_parse_device_ids():
    assert parse_device_ids(None) is None
    assert parse_device_ids("0") == [0]
    assert parse_device_ids("0, 1,3") == [0, 1, 3]
    for bad in ("", "a", "0,,1", "-1"):
        with pytest.raises(PvmpiError, match="comma-separated GPU ids"):
            parse_device_ids(bad)


def test_binding_warning():
    assert binding_warning(4, 4) is None
    assert binding_warning(8, 4) == "8 MPI ranks share 4 GPU(s) on this node"
    assert "use 2 of the 4" in binding_warning(2, 4)
    assert binding_warning(8, 4, ids=[0]) is None


def test_select_device_on_one_rank():
    from mpi4py import MPI

    assert select_device(MPI.COMM_SELF, None, n_gpus=3, activate=False) == 0
    assert select_device(MPI.COMM_SELF, "2", n_gpus=3, activate=False) == 2
    with pytest.raises(PvmpiError):
        select_device(MPI.COMM_SELF, None, n_gpus=0, activate=False)


# --------------------------------------------------------------------- halo strips on the device

@inner
@pytest.mark.parametrize("mx, my", [(2, 1), (3, 0), (0, 2)])
def test_pack_unpack_halo_strips(cu, mx, my):
    """A strip packed on the device equals numpy's slice; unpacking writes exactly that window."""
    rng = np.random.default_rng(11)
    A = rng.standard_normal((2, 7 + 2 * my, 9 + 2 * mx, 3)).astype(np.float32)
    dA = cu.to_device(A)
    for y0, x0, h, w in ((0, 0, max(my, 1), 4), (my, mx, 3, 5), (A.shape[1] - 2, A.shape[2] - 3, 2, 3)):
        buf = cu.cuda.device_array((2, h, w, 3), np.float32)
        cu.pack_halo(dA, buf, y0, x0)
        np.testing.assert_array_equal(buf.copy_to_host(), A[:, y0:y0 + h, x0:x0 + w])
        new = rng.standard_normal((2, h, w, 3)).astype(np.float32)
        cu.unpack_halo(dA, cu.to_device(new), y0, x0)
        A[:, y0:y0 + h, x0:x0 + w] = new
        np.testing.assert_array_equal(dA.copy_to_host(), A)


@inner
@pytest.mark.parametrize("edges", [(True, True, True, True), (True, False, False, True), (False, True, True, False)])
def test_mirror_halo_equals_the_host_exchange(cu, edges):
    """The device mirror (x over all rows, then y over all columns) equals HaloExchange's numpy mirror."""
    from pvmpi.parallel.halo import HaloExchange

    mx, my, ny, nx, nf = 2, 3, 5, 6, 2
    A = np.random.default_rng(3).standard_normal((2, ny + 2 * my, nx + 2 * mx, nf)).astype(np.float32)
    want = A.copy()
    halo = HaloExchange.__new__(HaloExchange)  # only its mirror step: edges and sizes, no communicator
    halo.mx, halo.my, halo._edges = mx, my, edges
    halo.tile = type("T", (), {"nx": nx, "ny": ny})()
    halo._mirror(want)
    dA = cu.to_device(A)
    cu.mirror_halo(dA, mx, my, nx, ny, edges)
    np.testing.assert_array_equal(dA.copy_to_host(), want)


@inner
@pytest.mark.parametrize("mirror", [True, False])
def test_device_halo_exchange_on_one_rank(cu, mirror):
    """One rank: no messages, the boundary rule only; the device result equals the host exchange."""
    from mpi4py import MPI

    from pvmpi.parallel.comm import Comms
    from pvmpi.parallel.decomposition import Layout
    from pvmpi.parallel.device_halo import DeviceHaloExchange
    from pvmpi.parallel.halo import HaloExchange

    with Comms(Layout(1, 1, 1), MPI.COMM_SELF) as comms:
        t = comms.tile(2, 6, 7, name="L")
        A = np.random.default_rng(5).standard_normal(t.extended_shape(3, 2, 1)).astype(np.float32)
        host = HaloExchange(comms, t, 3, 2, 1, mirror)
        dev = DeviceHaloExchange(comms, t, 3, 2, 1, mirror, cu, cuda_aware=False)
        want = host.exchange(A.copy())
        got = dev.exchange(cu.to_device(A)).copy_to_host()
        np.testing.assert_array_equal(got, want)
        with pytest.raises(ValueError, match="device halo exchange needs"):
            dev.exchange(A)  # a host array is refused, not silently exchanged
        host.free()
        dev.free()


# --------------------------------------------------------------------- the engine's state operations

@inner
@pytest.mark.parametrize("margins", [(0, 0, 0, 0), (1, 2, 0, 0), (0, 0, 2, 1)])
def test_scale_into_equals_the_reference(cu, margins):
    """IdentConn, V = G, A = V and resets: dst (+)= scale*src on windows, device and staged arguments."""
    dl, du, sl, su = margins
    rng = np.random.default_rng(7)
    D = rng.standard_normal((2, 4 + 2 * du, 5 + 2 * dl, 3)).astype(np.float32)
    S = rng.standard_normal((2, 4 + 2 * su, 5 + 2 * sl, 3)).astype(np.float32)
    for add in (False, True):
        for scale in (1.0, 0.5):
            want = D.copy()
            ref.scale_into(want, S, scale, add, dl, du, sl, su)
            d = cu.to_device(D)
            cu.scale_into(d, cu.to_device(S), scale, add, dl, du, sl, su)
            np.testing.assert_array_equal(d.copy_to_host(), want)
            h = D.copy()
            cu.scale_into(h, S, scale, add, dl, du, sl, su)
            np.testing.assert_array_equal(h, want)
            d, sums = cu.to_device(D), np.empty(2)
            cu.scale_into(d, cu.to_device(S), scale, add, dl, du, sl, su, sums=sums)
            np.testing.assert_allclose(sums, want[:, du:du + 4, dl:dl + 5].astype(np.float64).sum(axis=(1, 2, 3)),
                                       rtol=1e-12)


@inner
def test_buffers_zero_fill_copy_upload(cu):
    G = cu.zeros((3, 2, 4, 5, 2))
    assert np.dtype(G.dtype) == np.float32 and not G.copy_to_host().any()
    cu.upload(G, np.float32(2))
    cu.fill_zero(G[1])  # a channel: a view of the buffer
    h = G.copy_to_host()
    assert not h[1].any() and (h[0] == 2).all() and (h[2] == 2).all()
    C = cu.zeros((3, 2, 4, 5, 2))
    cu.copy(C, G)
    np.testing.assert_array_equal(C.copy_to_host(), h)
    assert cu.host_buffer(C).shape == (3, 2, 4, 5, 2) and isinstance(cu.to_host(C), np.ndarray)


@inner
def test_learning_and_layer_ops_equal_the_reference(cu):
    rng = np.random.default_rng(8)
    W = rng.standard_normal((2, 3, 2, 2, 4)).astype(np.float32)
    dw, P = (rng.standard_normal(W.shape).astype(np.float32) for _ in range(2))
    w1, p1 = W.copy(), P.copy()
    ref.momentum_weights(w1, dw, p1, 0.3, 0.7, 0.01)
    wd, pd = cu.to_device(W), cu.to_device(P)
    cu.momentum_weights(wd, dw, pd, 0.3, 0.7, 0.01)  # dw from the host, as after the all-reduce
    close(wd.copy_to_host(), w1)
    close(pd.copy_to_host(), p1)
    index = rng.permutation(W.size)
    want = np.zeros(W.size, np.float32)
    ref.gather_flat(want, W, index)
    got = cu.zeros(W.size)
    cu.gather_flat(got, cu.to_device(W), cu.to_device(index))
    np.testing.assert_array_equal(got.copy_to_host(), want)
    V = (2 * rng.standard_normal((2, 4, 5, 3))).astype(np.float32)
    G, drive = (rng.standard_normal(V.shape).astype(np.float32) for _ in range(2))
    A = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    e = np.array([0.9, 0.8], np.float32)
    v1, d1 = V.copy(), drive.copy()
    ref.update_momentum_lca(v1, G, A, d1, e, 1.0, 0.5, 1, 1)
    vd, dd = cu.to_device(V), cu.to_device(drive)
    cu.update_momentum_lca(vd, cu.to_device(G), cu.to_device(A), dd, e, 1.0, 0.5, 1, 1)
    close(vd.copy_to_host(), v1)
    close(dd.copy_to_host(), d1)
    vv, va = np.array([-1, 0, 0, 1], np.float32), np.array([0, 0, 1, 2], np.float32)  # a jump at 0
    a1 = A.copy()
    ref.apply_vertex_transfer(V, a1, 1, 1, vv, va, 0.1, 2.0)
    ad = cu.to_device(A)
    cu.apply_vertex_transfer(cu.to_device(V), ad, 1, 1, vv, va, 0.1, 2.0)
    close(ad.copy_to_host(), a1)


# ------------------------------------------------------------------- RescaleLayer, DropoutLayer

@inner
@pytest.mark.parametrize("method", range(5))
def test_rescale_features(cu, method):
    src = np.random.default_rng(method).normal(size=(2, 3, 4, 3)).astype(np.float32)
    src[0, 1, 1] = 0.0
    src = np.pad(src, ((0, 0), (1, 1), (2, 2), (0, 0)))
    want = np.full((2, 5, 6, 3), 9.0, np.float32)
    got = want.copy()
    ref.rescale_features(want, src, method, 0.5, 2.0, 1, 1, 2, 1)
    cu.rescale_features(got, src, method, 0.5, 2.0, 1, 1, 2, 1)
    close(got, want)


@inner
def test_rescale_batch(cu):
    src = np.random.default_rng(7).normal(size=(2, 5, 6, 2)).astype(np.float32)
    coeffs = np.array([[0.25, 2.0, 3.0, -1.0], [0.0, 1.0, 0.5, 0.0]], np.float32)
    want = np.zeros((2, 3, 4, 2), np.float32)
    got = want.copy()
    ref.rescale_batch(want, src, coeffs, 0, 0, 1, 1)
    cu.rescale_batch(got, src, coeffs, 0, 0, 1, 1)
    close(got, want)


@inner
def test_dropout_bit_for_bit(cu):
    from pvmpi.network.random import TausBank

    shape = (2, 2, 3, 2)
    bank = TausBank(np.arange(np.prod(shape)) + 12_345_678)
    state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape((4,) + shape)
    mine = state.copy()
    for _ in range(3):
        A = np.ones((2, 4, 5, 2), np.float32)
        B = A.copy()
        ref.dropout(A, state, 45, 1, 1)
        cu.dropout(B, mine, 45, 1, 1)
        np.testing.assert_array_equal(A, B)
    np.testing.assert_array_equal(state, mine)


@inner
def test_firm_threshold_transfer(cu):
    V = np.random.default_rng(2).normal(size=(2, 3, 4, 2)).astype(np.float32)
    want = np.full((2, 5, 6, 2), 9.0, np.float32)
    got = want.copy()
    ref.firm_threshold_transfer(V, want, 1, 1, 0.5, 0.25)
    cu.firm_threshold_transfer(V, got, 1, 1, 0.5, 0.25)
    close(got, want)


@inner
@pytest.mark.parametrize("op", [0, 1, 2])
def test_combine_channels(cu, op):
    GSyn = np.random.default_rng(3).normal(size=(2, 2, 3, 4, 2)).astype(np.float32)
    want = np.zeros((2, 3, 4, 2), np.float32)
    got = want.copy()
    ref.combine_channels(GSyn, want, op)
    cu.combine_channels(GSyn, got, op)
    close(got, want)


@inner
@pytest.mark.parametrize("add", [False, True])
def test_deliver_feature_max(cu, add):
    A = np.random.default_rng(9).normal(size=(2, 5, 6, 3)).astype(np.float32)
    want = np.ones((2, 3, 4, 1), np.float32)
    got = want.copy()
    ref.deliver_feature_max(A, want, 1, 1, add)
    cu.deliver_feature_max(A, got, 1, 1, add)
    close(got, want)


@inner
@pytest.mark.parametrize("sigmoid,inverse", [(True, False), (False, True)])
def test_sigmoid_transfer(cu, sigmoid, inverse):
    V = np.random.default_rng(4).normal(size=(2, 3, 4, 2)).astype(np.float32)
    want = np.full((2, 5, 6, 2), 9.0, np.float32)
    got = want.copy()
    ref.sigmoid_transfer(V, want, 1, 1, 0.25, 2.0, sigmoid, inverse)
    cu.sigmoid_transfer(V, got, 1, 1, 0.25, 2.0, sigmoid, inverse)
    close(got, want)


@inner
def test_retina(cu):
    from pvmpi.network.random import TausBank

    rng = np.random.default_rng(10)
    G = rng.uniform(0, 1, (2, 2, 2, 3, 2)).astype(np.float32)
    bank = TausBank(np.arange(24) + 30_000_000)
    state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape(4, 2, 2, 3, 2)
    mine = state.copy()
    since = np.where(rng.uniform(size=(2, 2, 3, 2)) < 0.3, 0.0, 5.0).astype(np.float32)
    since2 = since.copy()
    for _ in range(3):
        A, B = np.zeros((2, 4, 5, 2), np.float32), np.zeros((2, 4, 5, 2), np.float32)
        ref.retina_spikes(G, A, since, state, 1, 1, 1.0, 0.2, 0.9, 0.5, 1.5, 2.0)
        cu.retina_spikes(G, B, since2, mine, 1, 1, 1.0, 0.2, 0.9, 0.5, 1.5, 2.0)
        np.testing.assert_array_equal(A, B)
    np.testing.assert_array_equal(state, mine)
    np.testing.assert_array_equal(since, since2)
    want, got = np.zeros((2, 4, 5, 2), np.float32), np.zeros((2, 4, 5, 2), np.float32)
    ref.retina_rate(G, want, 1, 1, 0.5, 0.25)
    cu.retina_rate(G, got, 1, 1, 0.5, 0.25)
    close(got, want)


@inner
@pytest.mark.parametrize("active_only", [False, True])
def test_deliver_max_pool(cu, active_only):
    from pvmpi.geometry import axis_map

    A = np.random.default_rng(13).normal(size=(2, 6, 8, 2)).astype(np.float32)
    A[1, 2:4] = 0
    tx, ty = post_table(axis_map(6, 6, 3), 1), post_table(axis_map(4, 4, 3), 1)
    want = np.zeros((2, 4, 6, 2), np.float32)
    got = want.copy()
    ref.deliver_max_pool(A, want, tx, ty, True, active_only)
    cu.deliver_max_pool(A, got, tx, ty, True, active_only)
    np.testing.assert_array_equal(got, want)


@inner
@pytest.mark.parametrize("with_gap", [False, True])
def test_lif_arma(cu, with_gap):
    from pvmpi.network.random import TausBank

    rng = np.random.default_rng(16)
    shape = (2, 2, 3, 2)
    bank = TausBank(np.arange(24) + 50_000_000)
    state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape((4,) + shape)
    a = [np.full(shape, v, np.float32) for v in (-70, -55, 0, 0, 0)]
    b, mine = [x.copy() for x in a], state.copy()
    gap = rng.uniform(0, 0.5, shape).astype(np.float32)
    consts = np.array([5, -70, 0, -75, -90, -55, 5, 1, 0.5, 0.5, 0.2, 0.3, 0.3, 0.3, np.exp(-1.0),
                       np.exp(-0.2), np.exp(-0.1), np.exp(-0.1), 1.0], np.float32)
    for _ in range(4):
        G = rng.uniform(0, 8, (4,) + shape).astype(np.float32)
        A, B = np.zeros((2, 4, 5, 2), np.float32), np.zeros((2, 4, 5, 2), np.float32)
        ref.lif_arma(G, A, *a, gap, state, 1, 1, consts, with_gap)
        cu.lif_arma(G, B, *b, gap, mine, 1, 1, consts, with_gap)
        np.testing.assert_array_equal(A, B)
    for x, y in zip(a, b):
        close(y, x)
    np.testing.assert_array_equal(state, mine)


@inner
@pytest.mark.parametrize("invert", [False, True])
def test_mask_activity(cu, invert):
    rng = np.random.default_rng(18)
    A = rng.normal(size=(2, 4, 5, 2)).astype(np.float32)
    M = np.pad((rng.uniform(size=(2, 2, 3, 2)) < 0.5).astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    for mask in (M, np.array([0, 1], np.float32).reshape(1, 1, 1, 2)):
        want, got = A.copy(), A.copy()
        off = 1 if mask.shape[1] > 1 else 0
        ref.mask_activity(want, 1, 1, mask, off, off, invert)
        cu.mask_activity(got, 1, 1, mask, off, off, invert)
        np.testing.assert_array_equal(got, want)


@inner
def test_background(cu):
    src = np.pad((np.random.default_rng(19).uniform(size=(2, 3, 4, 2)) < 0.3).astype(np.float32),
                 ((0, 0), (1, 1), (1, 1), (0, 0)))
    want, got = np.zeros((2, 3, 4, 9), np.float32), np.zeros((2, 3, 4, 9), np.float32)
    ref.background(want, 0, 0, src, 1, 1, 3)
    cu.background(got, 0, 0, src, 1, 1, 3)
    np.testing.assert_array_equal(got, want)


@inner
def test_spikelet(cu):
    rng = np.random.default_rng(21)
    V = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    src = np.pad(rng.normal(size=(2, 3, 4, 2)).astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want, got = np.zeros((2, 5, 6, 2), np.float32), np.zeros((2, 5, 6, 2), np.float32)
    ref.spikelet(want, 1, 1, V, src, 1, 1, 50.0)
    cu.spikelet(got, 1, 1, V, src, 1, 1, 50.0)
    np.testing.assert_array_equal(got, want)


@inner
def test_max_pool_gate_and_unpool(cu):
    from pvmpi.geometry import axis_map

    A = np.round(np.random.default_rng(23).uniform(-2, 2, size=(2, 4, 6, 2))).astype(np.float32)
    tx, ty = post_table(axis_map(6, 3, 1), 0), post_table(axis_map(4, 2, 1), 0)
    want, got = np.zeros((2, 2, 3, 2), np.float32), np.zeros((2, 2, 3, 2), np.float32)
    gw, gg = np.zeros_like(want), np.zeros_like(want)
    ref.deliver_max_pool(A, want, tx, ty, True, False, gw, 0, 0, 6)
    cu.deliver_max_pool(A, got, tx, ty, True, False, gg, 0, 0, 6)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(gg, gw)
    bw, bg = np.zeros_like(A), np.zeros_like(A)
    ref.unpool_max(want, bw, gw, 0, 0, 0, 0, (0, 0, 3, 2), 0, 0, 6, 0, 0)
    cu.unpool_max(want, bg, gw, 0, 0, 0, 0, (0, 0, 3, 2), 0, 0, 6, 0, 0)
    np.testing.assert_array_equal(bg, bw)

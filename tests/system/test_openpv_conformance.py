"""OpenPV's own system tests, run unmodified from a copy of their folders (shared/openpv-tests).

Each test passes as its README says: a Comparison layer (the network's result
minus OpenPV's certified one) stays zero, or the continued run's numbers
follow from the first run's checkpoint.
"""
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from running import mpi_command

from pvmpi.io import pvp

LAYOUTS = {"1 rank": (1, []), "2x2": (4, ["-rows", "2", "-columns", "2"])}


def pvmpi_command(ranks):
    """`python -m pvmpi` on one rank, or under the venv's mpiexec."""
    if ranks == 1:
        return [sys.executable, "-m", "pvmpi"]
    return mpi_command(ranks, "-m", "pvmpi")


def run_openpv_test(openpv_tests, tmp_path, test, params, *extra, ranks=1):
    work = tmp_path / test
    if not work.exists():
        shutil.copytree(openpv_tests / test, work)
    proc = subprocess.run([*pvmpi_command(ranks), f"input/{params}", "-q", *extra], cwd=work,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_NUM_THREADS": "1"} if ranks > 1 else None)
    assert proc.returncode == 0, proc.stderr
    return work


def simulate_params(path, output_path, *sets):
    """Run a params file in this process on one rank; returns the finished Column (layers, weights, GSyn)."""
    from mpi4py import MPI
    from running import run_network

    from pvmpi import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test params' unused parameters
        model = load(str(path), list(sets))
    return run_network(model, MPI.COMM_SELF, output_path=str(output_path))


def max_abs(path):
    data = pvp.read(path)
    return np.abs(data.values).max(), len(data.times)


@pytest.mark.parametrize("params, out", [("momentumTest.params", "momentumTest"),
                                         ("viscosityTest.params", "viscosityTest")])
def test_momentum_test(openpv_tests, tmp_path, params, out):
    """MomentumConn 'simple' and 'viscosity': weights after each update equal OpenPV's."""
    work = run_openpv_test(openpv_tests, tmp_path, "MomentumTest", params)
    worst, frames = max_abs(work / "output" / out / "Comparison.pvp")
    assert frames == 11 and worst == 0.0
    post = pvp.read(work / "output" / out / "Post.pvp").values
    assert post.max() > 0.7  # the weights really moved (0, 0.5, 0.75, ...)


def test_momentum_lca_test(openpv_tests, tmp_path):
    """MomentumLCALayer with adaptive time scales: reconstruction equals OpenPV's within 1e-4."""
    work = run_openpv_test(openpv_tests, tmp_path, "MomentumLCATest", "MomentumLCATest.params")
    worst, frames = max_abs(work / "output" / "Comparison.pvp")
    assert frames == 10 and worst < 1e-6  # OpenPV's own threshold is 1e-4
    assert max_abs(work / "output" / "Reconstruction.pvp")[0] > 0.1


def test_initialize_from_checkpoint_dir_test(openpv_tests, tmp_path):
    """The second run's integrators start from the first run's final state (value n+1 for batch n)."""
    run_openpv_test(openpv_tests, tmp_path, "InitializeFromCheckpointDirTest", "BaseRun.params")
    work = run_openpv_test(openpv_tests, tmp_path, "InitializeFromCheckpointDirTest",
                           "InitializeFromCheckpointDirTest.params")
    base = pvp.read(work / "output-BaseRun" / "Output.pvp")
    cont = pvp.read(work / "output-InitializeFromCheckpointDir" / "Output.pvp")
    rate = np.arange(1, 5, dtype=np.float32)  # input frame n holds n + 1 everywhere
    np.testing.assert_array_equal(base.values[-1, :, 0, 0, 0], 10 * rate)
    np.testing.assert_array_equal(cont.times, np.arange(11))
    for k, t in enumerate(cont.times):
        np.testing.assert_array_equal(cont.values[k], np.broadcast_to(((10 + t) * rate)[:, None, None, None],
                                                                      cont.values[k].shape))


@pytest.mark.parametrize("params", ["ImageLayerSystemTest.params", "PvpLayerSystemTest.params"])
def test_input_system_test(openpv_tests, tmp_path, params):
    """Image and pvp inputs reach the layer and its border correctly (non-shared 3x3 weights)."""
    work = tmp_path / "InputSystemTest"
    shutil.copytree(openpv_tests / "InputSystemTest", work)
    proc = subprocess.run([sys.executable, "-m", "pvmpi", f"input/{params}", "-q"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr  # the RequireAllZeroActivityProbe exits non-zero on failure
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("comparison")]
    assert len(lines) == 321 and all("nnz==0" in ln for ln in lines)


@pytest.mark.parametrize("ranks, layout", [(1, []), (4, ["--batchwidth", "2", "--rows", "2"])])
def test_reduce_across_batch_test(openpv_tests, tmp_path, ranks, layout):
    """Non-shared dW is summed over the batch, across batch processes too: W = the sum of the inputs
    (read from the final checkpoint's InputToOutput_W.pvp, PVP type 3: one 1x1 patch per pre neuron)."""
    work = tmp_path / "ReduceAcrossBatchTest"
    shutil.copytree(openpv_tests / "ReduceAcrossBatchTest", work)
    proc = subprocess.run([*mpi_command(ranks), "-m", "pvmpi", "input/ReduceAcrossBatchTest.params", "-q", *layout],
                          cwd=work, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    _, W, header = pvp.read_weights(work / "output" / "Last" / "InputToOutput_W.pvp", 0)
    want = pvp.read(work / "input" / "suminputs.pvp").values[0, 0, :, :, 0]
    assert want.max() > 0 and header["filetype"] == 3
    np.testing.assert_array_equal(W[0, :, 0, 0, 0].reshape(header["ny"], header["nx"], -1)[:, :, 0], want)


PROBE_TESTS = {"L1NormProbeTest": ["InputL1Norm", "OutputL1Norm"],
               "L2NormProbeTest": ["InputL2Norm", "OutputL2Norm"],
               "StatsProbeTest": ["InputStats", "OutputAStats", "OutputVStats"]}
CONFIGS = {"1": 1, "4": 4, "4batch": 4, "8MtoN": 8}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("test", PROBE_TESTS)
def test_probe_tests_under_every_layout(openpv_tests, tmp_path, test, config):
    """OpenPV's config files (1 process, 2x2, BatchWidth 4, 2x2x2): probe files equal the references."""
    work = tmp_path / test
    shutil.copytree(openpv_tests / test, work)
    ranks = CONFIGS[config]
    proc = subprocess.run([*mpi_command(ranks), "-m", "pvmpi", f"input/config_{config}.txt", "-q"], cwd=work,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    outputs = [p for p in work.rglob("*_batchElement_*.txt") if p.parent.name != "input"
               and "_filepos_" not in p.name]  # not the checkpoints' position entries
    assert len(outputs) == 4 * len(PROBE_TESTS[test])
    for out in outputs:
        reference = work / "input" / out.name
        assert out.read_text() == reference.read_text(), out


def test_gpulcatest_both_columns(openpv_tests, tmp_path):
    """GPULCATest.params unmodified: the updateGpu/receiveGpu column equals the CPU column exactly.

    Both columns run on the CPU backend here, so the flags must not change a
    single number; the CPU column's reconstruction also equals OpenPV's
    certified LCATest reconstruction (same network, same initial state).
    """
    work = run_openpv_test(openpv_tests, tmp_path, "GPULCATest", "GPULCATest.params")
    out = work / "output"
    comparison = pvp.read(out / "Comparison.pvp")
    np.testing.assert_array_equal(comparison.times, np.arange(1, 41))
    assert np.abs(comparison.values).max() <= 2e-7  # the RequireAllZeroActivityProbe's nnzThreshold
    lines = (out / "ComparisonTest_batchElement_0.txt").read_text().splitlines()
    assert len(lines) == 41 and all(ln.endswith("nnz==0") for ln in lines)
    cpu = pvp.read(out / "ReconstructionCPU.pvp").values
    certified = pvp.read(openpv_tests / "LCATest" / "input" / "correct.pvp").values
    assert np.abs(cpu).max() > 0.1
    assert np.abs(cpu - certified).max() < 1e-6
    assert (out / "AdaptiveTimeScalesGPU_batchElement_0.txt").read_text() == \
        (out / "AdaptiveTimeScalesCPU_batchElement_0.txt").read_text()


def probe_numbers(path, column):
    """One column of a probe file's comma-separated lines (header lines skipped)."""
    rows = [ln.split(",") for ln in path.read_text().splitlines()]
    return np.array([float(r[column]) for r in rows if re.match(r"\s*-?[0-9.]", r[column])])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_total_energy_test(openpv_tests, tmp_path, layout):
    """TotalEnergyTest: LCA timed by a QuotientProbe of two energies; Comparison zero, energies consistent."""
    ranks, args = LAYOUTS[layout]
    work = run_openpv_test(openpv_tests, tmp_path, "TotalEnergyTest", "TotalEnergyTest.params", *args,
                           ranks=ranks)
    out = work / "output"
    comparison = pvp.read(out / "comparison.pvp")
    np.testing.assert_array_equal(comparison.times, np.arange(1, 11))
    assert np.abs(comparison.values).max() < 1e-6  # nnzThreshold of the RequireAllZeroActivityProbe
    assert np.abs(pvp.read(out / "reconstruction.pvp").values).max() > 0.1

    def probe(name, column=-1):
        return probe_numbers(out / f"{name}_batchElement_0.txt", column)

    total, recon, cost = probe("total_energy"), probe("recon_error_l2norm"), probe("cost_function")
    inputs, quotient = probe("input_energy"), probe("timescale")
    assert len(total) == len(inputs) == len(quotient) == 10 and len(recon) == len(cost) == 11  # t = 0 too
    # coefficients: 0.5 for the residual, V1's VThresh 0.025 for the firm-threshold cost (LCA probe)
    np.testing.assert_allclose(total, 0.5 * recon[1:] + 0.025 * cost[1:], rtol=1e-6)
    np.testing.assert_allclose(inputs, 0.5 * probe("input_l2norm")[1:], rtol=1e-6)
    np.testing.assert_allclose(quotient, inputs / total, rtol=1e-5)  # printed with 6 digits
    text = (out / "timescale_batchElement_0.txt").read_text().splitlines()
    assert text[0] == "Probe_name,time,index,TimeScale" and text[1].startswith('"TimeScale",1,0,0.99')
    # Without triggerLayerName the adaptive time scale never adapts: OpenPV's trigger reports an
    # update every step, so the time scale stays at baseMin and timeScaleTrue at -1 (as OpenPV
    # writes it, checked against OpenPV itself by the conformance harness).
    scales = (out / "AdaptiveTimeScales_batchElement_0.txt").read_text()
    assert scales.count("timeScale = 0.12500000, timeScaleTrue = -1.00000000, timeScaleMax = 5.00000000") == 10


def hebbian_start(i, n_pre, n_post, p):
    """First post index of pre index i (facts §4.1)."""
    if n_pre == n_post:
        return i - (p - 1) // 2
    if n_post > n_pre:
        t = n_post // n_pre
        return i * t - (p - t) // 2
    s = n_pre // n_post
    return math.floor((i - (s / 2) * (p - 1)) / s)


def hebbian_margin(n_pre, n_post, p):
    if n_pre == n_post:
        return (p - 1) // 2
    if n_post > n_pre:
        return (p // (n_post // n_pre)) // 2
    return (p - 1) * (n_pre // n_post) // 2


def hebbian_mean(pre, post, nxp, nyp, mirror, count_inactive=False):
    """OpenPV's shared-weight dW with normalizeDw, written out loop by loop (facts §4.5).

    pre [ny, nx, nf] restricted (its halo is mirrored or 0), post [ny', nx', nf'];
    dW = mean of pre*post over the (pre, patch item) pairs with active pre.
    """
    ny, nx, nfpre = pre.shape
    nyq, nxq, nfp = post.shape
    nkx, nky = max(nx // nxq, 1), max(ny // nyq, 1)
    mx, my = hebbian_margin(nx, nxq, nxp), hebbian_margin(ny, nyq, nyp)
    ext = np.pad(pre, ((my, my), (mx, mx), (0, 0)), mode="symmetric" if mirror else "constant")
    dw = np.zeros((nky, nkx, nfpre, nyp, nxp, nfp))
    count = np.zeros_like(dw)
    for yi in range(-my, ny + my):
        y0 = hebbian_start(yi, ny, nyq, nyp)
        ya, yb = max(y0, 0), min(y0 + nyp, nyq)
        for xi in range(-mx, nx + mx):
            x0 = hebbian_start(xi, nx, nxq, nxp)
            xa, xb = max(x0, 0), min(x0 + nxp, nxq)
            if ya >= yb or xa >= xb:
                continue
            for f in range(nfpre):
                a = ext[yi + my, xi + mx, f]
                if a == 0 and not count_inactive:
                    continue
                k = (yi % nky, xi % nkx, f)
                dw[k][ya - y0:yb - y0, xa - x0:xb - x0] += a * post[ya:yb, xa:xb]
                count[k][ya - y0:yb - y0, xa - x0:xb - x0] += 1
    mean = np.divide(dw, count, out=np.zeros_like(dw), where=count > 0)
    return mean.reshape(nky * nkx * nfpre, nyp, nxp, nfp)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("data", ["fullData", "maskData"])
def test_kernel_activation_test(openpv_tests, tmp_path, data, layout):
    """Shared-weight Hebbian learning with normalizeDw: dW is the mean over active pre neurons only.

    Where pre and post both carry the constant image value 127/255 (the 8x8 post layers of fullData)
    every weight is (127/255)^2, as the test's source says. The 16x16 and 32x32 sequences shipped
    with the test are masked images, so there the weights are the mean of pre*post over the pairs
    with active pre, which an explicit loop recomputes from the layers' outputs; counting inactive
    pre neurons too (the halo of the unmirrored masked layers) would give other weights.
    """
    from pvmpi import load as load_model

    ranks, args = LAYOUTS[layout]
    params = f"KernelActivationTest-{data}.params"
    work = run_openpv_test(openpv_tests, tmp_path, "KernelActivationTest", params, *args, ranks=ranks)
    out = work / f"output-{data}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(work / "input" / params)
    layer = {}

    def activity(name):
        if name not in layer:
            layer[name] = pvp.read(out / f"{name}.pvp").values[:, 0]
        return layer[name]

    plastic = [g for g in model.connections if g.is_a("HyPerConn") and g["plasticityFlag"]]
    assert len(plastic) == 12
    for g in plastic:
        W = pvp.read(out / f"{g.name}.pvp").values[-1, 0]
        pre_g = model.group(g["preLayerName"])
        pre, post = activity(pre_g.name), activity(g["postLayerName"])
        ref = sum(hebbian_mean(pre[t], post[t], g["nxp"], g["nyp"], pre_g["mirrorBCflag"])
                  for t in range(1, len(pre)) if pre[t].any() and post[t].any())
        assert np.abs(ref).max() > 0.01, g.name
        np.testing.assert_allclose(W, ref, atol=1e-6, err_msg=g.name)
        if data == "fullData" and "Post8x8" in g.name:
            np.testing.assert_allclose(W, (127 / 255) ** 2, atol=1e-5, err_msg=g.name)
        if data == "maskData":
            alt = sum(hebbian_mean(pre[t], post[t], g["nxp"], g["nyp"], False, count_inactive=True)
                      for t in range(1, len(pre)) if post[t].any())
            assert np.abs(alt - ref).max() > 1e-3, g.name
    if data == "fullData":  # Gauss2DWeight 1x1 patches: weight 1 for every post feature
        for multi, single in (("Pre16x16Multiband", "Pre16x16Singleband"),
                              ("Post8x8Multiband", "Post8x8Singleband"),
                              ("Post32x32Multiband", "Post32x32Singleband")):
            np.testing.assert_array_equal(activity(multi), np.repeat(activity(single), activity(multi).shape[-1],
                                                                     axis=-1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_write_sparse_file_test(openpv_tests, tmp_path, layout):
    """Gauss2DWeight (aspect 3, 8 orientations, normalizeSum) into a sparse layer: output.pvp equals correct.pvp."""
    ranks, args = LAYOUTS[layout]
    work = run_openpv_test(openpv_tests, tmp_path, "WriteSparseFileTest", "WriteSparseFileTest.params", *args,
                           ranks=ranks)
    out = pvp.read(work / "output1" / "output.pvp")
    correct = pvp.read(work / "input" / "correct.pvp")
    assert out.header["filetype"] == correct.header["filetype"] == 6
    np.testing.assert_array_equal(out.times, correct.times)
    assert np.array_equal(out.values != 0, correct.values != 0)  # the same active entries
    assert np.abs(out.values - correct.values).max() < 1e-6  # the params' own nnzThreshold
    assert np.abs(pvp.read(work / "output1" / "comparison.pvp").values).max() < 1e-6


def test_transpose_conn_test(openpv_tests, tmp_path, monkeypatch):
    """A TransposeConn/FeedbackConn of a TransposeConn/FeedbackConn has exactly the original's weights."""
    work = tmp_path / "TransposeConnTest"
    shutil.copytree(openpv_tests / "TransposeConnTest", work)
    monkeypatch.chdir(work)  # OpenPV runs a test from its folder
    column = simulate_params(work / "input" / "TransposeConnTest.params", work / "output")
    conns = column.connections
    for kind, patch in (("OneToOne", 7), ("ManyToOne", 28), ("OneToMany", 7)):
        original = conns[f"OriginalMapFor{kind}Test"]
        for cls in ("TransposeConn", "FeedbackConn"):
            first = conns[f"TransposeFor{kind}TestOf{cls}"]
            second = conns[f"TransposeOfTransposeFor{kind}TestOf{cls}"]
            assert type(first).__name__ == type(second).__name__ == cls
            assert (first.pre.name, first.post.name) == (original.post.name, original.pre.name)
            assert (second.pre.name, second.post.name) == (original.pre.name, original.post.name)
            assert first.W.shape[0] == 2 and first.W.shape[2:4] == (patch, patch)
            assert np.abs(original.W).max() > 0
            np.testing.assert_array_equal(second.W, original.W)


def test_ident_conn_test(openpv_tests, tmp_path, monkeypatch):
    """IdentConns add their pre layers into the post layer's channels: exc = exc0 + exc1, inh = inh0 + inh1.

    pvmpi keeps GSyn in memory only; OpenPV's test reads it from the layer, and so does this one.
    """
    work = tmp_path / "IdentConnTest"
    shutil.copytree(openpv_tests / "IdentConnTest", work)
    monkeypatch.chdir(work)
    column = simulate_params(work / "input" / "IdentConnTest.params", work / "output")
    files = {n: pvp.read(work / "input" / f"{n}.pvp").values[0] for n in ("exc0", "exc1", "inh0", "inh1")}
    k = np.arange(8 * 8 * 3, dtype=np.float32).reshape(1, 8, 8, 3)  # the global neuron index
    np.testing.assert_array_equal(files["exc0"], k * k)
    np.testing.assert_array_equal(files["inh1"], (k + 1) // 2)
    for name, data in files.items():
        pre = column.layers["PreLayer" + name.capitalize()]
        np.testing.assert_array_equal(pre.restricted(pre.A), data)
    gsyn = column.layers["PostLayer"].gsyn
    assert gsyn.shape[0] == 2
    np.testing.assert_array_equal(gsyn[0], files["exc0"] + files["exc1"])
    np.testing.assert_array_equal(gsyn[1], files["inh0"] + files["inh1"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ident_conn_test_output(openpv_tests, tmp_path, layout):
    """The params file through the command line: PostLayer = (exc0 + exc1) - (inh0 + inh1) on any layout."""
    ranks, args = LAYOUTS[layout]
    work = run_openpv_test(openpv_tests, tmp_path, "IdentConnTest", "IdentConnTest.params", *args, ranks=ranks)
    files = {n: pvp.read(work / "input" / f"{n}.pvp").values[0] for n in ("exc0", "exc1", "inh0", "inh1")}
    post = pvp.read(work / "output" / "PostLayer.pvp")
    np.testing.assert_array_equal(post.times, [0, 1])
    np.testing.assert_array_equal(post.values[1], files["exc0"] + files["exc1"] - files["inh0"] - files["inh1"])


BATCH_METHOD_NETWORK = """
HyPerCol "column" = {
    nx = 32; ny = 32; dt = 1; stopTime = 10; nbatch = 4; randomSeed = 1234567890;
    outputPath = "output/"; checkpointWrite = false; lastCheckpointDir = "output/Last";
};
ImageLayer "InputByFile" = {
    nf = 1; phase = 0; writeStep = 1; initialWriteTime = 1; displayPeriod = 1;
    inputPath = "input/images/imagelist.txt"; batchMethod = "byFile"; start_frame_index = [0, 0, 0, 0];
};
ImageLayer "InputByList" = {
    nf = 1; phase = 0; writeStep = 1; initialWriteTime = 1; displayPeriod = 1;
    inputPath = "input/images/imagelist.txt"; batchMethod = "byList"; start_frame_index = [0, 0, 0, 0];
};
"""


@pytest.mark.parametrize("layout", {"1 rank": (1, []), "BatchWidth 2": (2, ["-batchwidth", "2"])})
def test_batch_method_test(openpv_tests, tmp_path, layout):
    """BatchMethodTest's property on its 10 digit images with nbatch 4 and displayPeriod 1.

    Its own params use test-only layer classes (images/test.params names files that do not exist), so
    this runs the two input layers of BatchMethodTest.params: byFile shows batch b the frames b, b+4,
    b+8, ... and byList starts the elements at 0, 2, 4, 6 and steps by 1, both wrapping at 10.
    """
    from PIL import Image

    ranks, args = {"1 rank": (1, []), "BatchWidth 2": (2, ["-batchwidth", "2"])}[layout]
    work = tmp_path / "BatchMethodTest"
    shutil.copytree(openpv_tests / "BatchMethodTest", work)
    (work / "input" / "batch_methods.params").write_text(textwrap.dedent(BATCH_METHOD_NETWORK))
    run_openpv_test(openpv_tests, tmp_path, "BatchMethodTest", "batch_methods.params", *args, ranks=ranks)
    images = np.stack([np.asarray(Image.open(work / "input" / "images" / f"{i}.png"), np.float32) / 255
                       for i in range(10)])[..., None]
    assert len({im.tobytes() for im in images}) == 10  # ten different digits
    for layer, frame in (("InputByFile", lambda b, n: (b + 4 * n) % 10),
                         ("InputByList", lambda b, n: (2 * b + n) % 10)):
        data = pvp.read(work / "output" / f"{layer}.pvp")
        np.testing.assert_array_equal(data.times, np.repeat(np.arange(1, 11), 4).reshape(10, 4)[:, 0])
        assert data.values.shape == (10, 4, 32, 32, 1)
        for n in range(10):  # the n-th frame shown, t = n + 1
            for b in range(4):
                np.testing.assert_allclose(data.values[n, b], images[frame(b, n)], atol=1e-7,
                                           err_msg=f"{layer} t={n + 1} b={b}")
        stamps = (work / "output" / "timestamps" / f"{layer}.txt").read_text().splitlines()
        assert stamps[:4] == [f"[{layer}] time: 1, batch element: {b}, index: {frame(b, 0)},"
                              f"input/images/{frame(b, 0)}.png" for b in range(4)]

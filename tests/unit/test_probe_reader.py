"""pvmpi.io.probes: every probe text format read back into numpy columns (facts §5)."""
import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.io import probes

RNG = np.random.default_rng(7)
TIMES = np.arange(0, 6, dtype=float)


def write(path, text):
    path.write_text(text)
    return path


def test_norm_lines_with_and_without_message(tmp_path):
    values = RNG.random(len(TIMES)) * 1000
    plain = "".join(f"{t:6.3f}, {3}, {64:8d}, {v:f}\n" for t, v in zip(TIMES, values))
    for text, message in ((plain, None),
                          ("".join(f"my probe:{line}" for line in plain.splitlines(True)), "my probe")):
        table = probes.read(write(tmp_path / "n.txt", text))
        assert table.kind == "norm" and table.message == message and table.rows == len(TIMES)
        assert list(table) == ["time", "batch", "neurons", "value"]
        np.testing.assert_array_equal(table["time"], TIMES)
        np.testing.assert_array_equal(table["batch"], 3)
        assert table["batch"].dtype == np.int64 and table["neurons"][0] == 64
        np.testing.assert_allclose(table["value"], values, atol=5e-7)


def test_energy_file_and_log_form(tmp_path):
    energy = RNG.random(len(TIMES)) * 300
    body = "".join(f"{t:10f}, {1}, {e:10.9f}\n" for t, e in zip(TIMES, energy))
    table = probes.read(write(tmp_path / "e.txt", "time,index,energy\n" + body))
    assert table.kind == "energy" and table.rows == len(TIMES)
    np.testing.assert_allclose(table["energy"], energy, atol=1e-9)
    assert table["value"] is table["energy"]
    log = "Probe_name,time,index,energy\n" + "".join(f'"EnergyProbe",{line}'
                                                     for line in body.splitlines(True))
    table = probes.read(write(tmp_path / "log.txt", log))
    assert table.kind == "energy" and table.message == "EnergyProbe"
    np.testing.assert_allclose(table["energy"], energy, atol=1e-9)


def test_stats_lines(tmp_path):
    line = ("{m}:t=={t:6.1f} b=={b} N=={n} Total=={tot:f} Min=={mn:f} Avg=={avg:f} Max=={mx:f} "
            "sigma=={sd:f} nnz=={nnz}\n")
    text = "".join(line.format(m="Stats  ", t=t, b=2, n=64, tot=t * 10, mn=-t, avg=t / 64, mx=t,
                               sd=0.5, nnz=int(t)) for t in TIMES)
    table = probes.read(write(tmp_path / "s.txt", text))
    assert table.kind == "stats" and table.message == "Stats"
    assert list(table) == ["time", "batch", "N", "Total", "Min", "Avg", "Max", "sigma", "nnz"]
    np.testing.assert_array_equal(table["Total"], TIMES * 10)
    np.testing.assert_array_equal(table["nnz"], TIMES.astype(int))
    assert table["nnz"].dtype == np.int64
    # without a message OpenPV writes no colon; files of older pvmpi versions have ":t=="
    for m in ("", ":"):
        table = probes.read(write(tmp_path / "s2.txt", m + line.format(m="", t=1, b=0, n=4, tot=1, mn=0,
                                                                       avg=0.25, mx=1, sd=0.4, nnz=1)[1:]))
        assert table.message is None and table["Avg"][0] == 0.25
    # a sparse layer's activity: the average as a rate (OpenPV multiplies it by 1000)
    hz = line.format(m="S", t=1, b=0, n=4, tot=1, mn=0, avg=250, mx=1, sd=0.4, nnz=1)
    table = probes.read(write(tmp_path / "s3.txt", hz.replace("Avg==250.000000", "Avg==250.000000 Hz (/dt ms)")))
    assert table["Avg"][0] == 250 and table["nnz"][0] == 1


def test_adaptive_time_scale_both_forms(tmp_path):
    ts = RNG.random((len(TIMES), 3))
    plain = "".join(f"{t:f}, {0}, {a:10.8f}, {b:10.8f}, {c:10.8f}\n" for t, (a, b, c) in zip(TIMES, ts))
    named = "".join(f"sim_time = {t:f}\n\tbatch = {0}, timeScale = {a:10.8f}, timeScaleTrue = {b:10.8f}, "
                    f"timeScaleMax = {c:10.8f}\n" for t, (a, b, c) in zip(TIMES, ts))
    for text in (plain, named):
        table = probes.read(write(tmp_path / "ts.txt", text))
        assert table.kind == "timescale" and table.rows == len(TIMES)
        np.testing.assert_array_equal(table["time"], TIMES)
        for k, name in enumerate(("timeScale", "timeScaleTrue", "timeScaleMax")):
            np.testing.assert_allclose(table[name], ts[:, k], atol=5e-9)


def test_several_batch_lines_per_sim_time(tmp_path):
    text = ("sim_time = 1.000000\n\tbatch = 0, timeScale = 1.0, timeScaleTrue = -1.0, timeScaleMax = 1.0\n"
            "\tbatch = 1, timeScale = 2.0, timeScaleTrue = 3.0, timeScaleMax = 4.0\n")
    table = probes.read(write(tmp_path / "ts.txt", text))
    np.testing.assert_array_equal(table["time"], [1, 1])
    np.testing.assert_array_equal(table["batch"], [0, 1])


def test_nan_and_inf_values(tmp_path):
    table = probes.read(write(tmp_path / "n.txt", " 1.000, 0,       4, nan\n 2.000, 0,       4, -inf\n"))
    assert np.isnan(table["value"][0]) and table["value"][1] == -np.inf


def test_openpv_probe_files(openpv_tests):
    l2 = probes.read(openpv_tests / "L2NormProbeTest/input/OutputL2Norm_batchElement_1.txt")
    assert l2.kind == "norm" and l2["time"][1] == 1.0 and l2["value"][1] == 3580.0
    assert np.all(l2["batch"] == 1) and np.all(l2["neurons"] == 64)
    stats = probes.read(openpv_tests / "StatsProbeTest/input/InputStats_batchElement_0.txt")
    assert stats.kind == "stats" and stats.message == "InputStats"
    assert stats["nnz"][0] == 63 and stats["Avg"][0] == 0.984375
    batch = probes.read_batch(openpv_tests / "StatsProbeTest/input", "OutputVStats.txt")
    assert batch["Total"].shape[0] == 4 and list(batch.batch_indices) == [0, 1, 2, 3]
    np.testing.assert_array_equal(batch["batch"][:, 0], [0, 1, 2, 3])


def test_read_batch_gathers_and_pads(tmp_path):
    for g, n in enumerate((5, 5, 3)):
        write(tmp_path / f"energy_batchElement_{g}.txt",
              "time,index,energy\n" + "".join(f"{t:10f}, {g}, {10.0 * g + t:10.9f}\n" for t in range(1, n + 1)))
    write(tmp_path / "energyX_batchElement_0.txt", "junk\n")  # another probe's name: ignored
    write(tmp_path / "energy_batchElement_0.csv", "junk\n")  # other extension: ignored
    table = probes.read_batch(tmp_path, "energy.txt")
    assert table.kind == "energy" and table["energy"].shape == (3, 5)
    np.testing.assert_array_equal(table["time"][0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(table["energy"][1], 10 + np.arange(1, 6))
    assert np.isnan(table["energy"][2, 3:]).all() and table["batch"][2, 4] == -1
    assert list(table.batch_indices) == [0, 1, 2]
    assert probes.batch_files(tmp_path, "energy.txt") == {g: str(tmp_path / f"energy_batchElement_{g}.txt")
                                                          for g in range(3)}
    assert set(probes.batch_files(tmp_path, "energy")) == {0, 1, 2}
    assert "energy.txt" in probes.probe_names(tmp_path)
    with pytest.raises(PvmpiError, match="no files"):
        probes.read_batch(tmp_path, "missing.txt")


def test_bad_lines_name_file_and_line(tmp_path):
    path = write(tmp_path / "n.txt", " 1.000, 0,       4, 1.0\nnot a probe line\n")
    with pytest.raises(PvmpiError) as err:
        probes.read(path)
    assert f"{path}:2" in str(err.value)
    with pytest.raises(PvmpiError, match="not a probe output line"):
        probes.read(write(tmp_path / "x.txt", "hello\n"))
    with pytest.raises(PvmpiError, match="not found"):
        probes.read(tmp_path / "missing.txt")
    assert probes.read(write(tmp_path / "empty.txt", "")).rows == 0

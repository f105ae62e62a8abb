"""Progress lines and bar, and the timers report, on a small LCA network (one rank)."""
import io
import re
from pathlib import Path

import numpy as np
import pytest

from pvmpi import load as load_model
from pvmpi.data.dead_leaves import make_image_set
from pvmpi.io.timers_report import format_table, format_timers, write_timers
from pvmpi.progress import Progress

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_set(tmp_path_factory.mktemp("images"), count=4, size=16, seed=3)


def small_column(images, tmp_path, stop=40, interval=10, extra=()):
    from mpi4py import MPI

    from pvmpi.kernels import get_backend
    from pvmpi.network.column import Column
    from pvmpi.parallel.comm import Comms
    from pvmpi.parallel.decomposition import choose_layout

    sets = ["column.nx=16", "column.ny=16", "column.nbatch=2", f"column.stopTime={stop}",
            f"column.progressInterval={interval}", f"Input.inputPath={images}",
            "Input.displayPeriod=20", "V1.nf=8", "V1ToInputError.writeStep=20", *extra]
    model = load_model(DEMO, sets)
    comms = Comms(choose_layout(1), MPI.COMM_SELF)
    return Column(model, comms, get_backend("numpy"), output_path=str(tmp_path / "out"))


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


LINE = re.compile(r"^   time==(\d+)  step (\d+)/(\d+) \(\d+%\)  [\d.]+ steps/s  ETA \S+( \S+)?  "
                  r"energy [\d.e+-]+  active [\d.e+-]+%$")


def test_lines_one_per_progress_interval(images, tmp_path):
    column = small_column(images, tmp_path, stop=40, interval=10)
    out = io.StringIO()
    column.progress = Progress(column, stream=out)
    assert column.progress.mode == "lines"  # not a terminal
    column.run()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert all(LINE.match(line) for line in lines), lines
    assert [int(LINE.match(line)[1]) for line in lines] == [10, 20, 30, 40]


def test_lines_interval_not_dividing_stop_time(images, tmp_path):
    column = small_column(images, tmp_path, stop=25, interval=10)
    out = io.StringIO()
    column.progress = Progress(column, stream=out)
    column.run()
    times = [int(LINE.match(line)[1]) for line in out.getvalue().splitlines()]
    assert times == [10, 20, 25]  # one per interval, and the last step


def test_lines_after_a_restart_keep_the_interval_grid(images, tmp_path):
    column = small_column(images, tmp_path, stop=2000, interval=400)
    out = io.StringIO()
    progress = Progress(column, stream=out)
    column.t, column.step = 1200.0, 1200  # as if continued from a checkpoint at t = 1200
    for _ in range(800):
        column.t += 1.0
        column.step += 1
        progress(column)
    times = [int(LINE.match(line)[1]) for line in out.getvalue().splitlines()]
    assert times == [1600, 2000]


def test_bar_on_a_terminal(images, tmp_path):
    pytest.importorskip("tqdm")
    column = small_column(images, tmp_path, stop=20, interval=10)
    out = FakeTerminal()
    column.progress = Progress(column, stream=out)
    assert column.progress.mode == "bar"
    column.run()
    text = out.getvalue()
    assert "20/20" in text and "step/s" in text and "energy=" in text and "active=" in text
    assert "time==" not in text  # no plain lines on a terminal
    assert column.progress.bar is None  # closed at the last step


def test_active_fraction_from_l0_probe_or_layer(images, tmp_path):
    column = small_column(images, tmp_path, stop=5, interval=5)
    progress = Progress(column, stream=io.StringIO())
    column.progress = progress
    column.run()
    assert progress.sparse_layer.name == "V1" and progress.l0_probe.name == "V1L0NormProbe"
    energy, from_probe = progress.reduce(column)
    progress.l0_probe = None  # fall back to the backend's layer_stats on V1
    energy2, from_layer = progress.reduce(column)
    layer = column.layers["V1"]
    expected = np.count_nonzero(layer.restricted(layer.A)) / layer.restricted(layer.A).size
    assert from_probe == pytest.approx(expected) and from_layer == pytest.approx(expected)
    assert energy == energy2 == pytest.approx(float(np.mean(column.energy_probes[0].values())))


def test_timers_report(images, tmp_path):
    column = small_column(images, tmp_path, stop=5, interval=5)
    column.run()
    text = format_timers(column, elapsed=100.0)
    assert text.startswith("pvmpi timers:") and "max and mean over 1 rank(s)" in text
    for section in ("per phase", "per layer", "per connection", "total timed", "run (wall clock)"):
        assert section in text
    for name in list(column.layers) + list(column.connections):
        assert re.search(rf"^  {name} +\w+ ", text, re.M), name
    assert re.search(r"^  deliver +[\d.]+ +[\d.]+ +[\d.]+ +\d+$", text, re.M)
    path = tmp_path / "out" / "timers.txt"
    assert write_timers(path, column) == path.read_text()


def test_timers_table_max_and_mean_over_ranks():
    ranks = [{"totals": {"update:V1": 2.0, "deliver:C": 1.0, "probes": 1.0},
              "counts": {"update:V1": 10, "deliver:C": 10, "probes": 20}, "elapsed": 5.0},
             {"totals": {"update:V1": 4.0, "deliver:C": 1.0, "halo:V1": 2.0},
              "counts": {"update:V1": 10, "deliver:C": 12, "halo:V1": 10}, "elapsed": 8.0}]
    text = format_table(ranks, layers=["V1"], connections=["C"])

    def row(label):
        m = re.search(rf"^  {label} +([\d.]+) +([\d.]+)(?: +([\d.]+))?(?: +(\d+))?$", text, re.M)
        assert m, label
        return m.groups()

    assert row("update")[:2] == ("4.000", "3.000")
    assert row("deliver")[:2] == ("1.000", "1.000") and row("deliver")[3] == "12"
    assert row("halo")[:2] == ("2.000", "1.000")
    assert row("total timed")[:2] == ("7.000", "5.500")  # per-rank sums 4 and 7
    assert row("V1 +total")[:2] == ("6.000", "4.000")  # per rank: 2 and 6
    assert row("not in a timer \\(loop, start-up\\)")[:2] == ("1.000", "1.000")
    assert row("run \\(wall clock\\)")[:2] == ("8.000", "6.500")

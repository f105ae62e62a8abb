"""pvmpi.launch: the launcher of mpi4py's MPI (never another MPI's), the layout, threads, the command."""
import os
import stat
import sys
from pathlib import Path

import pytest

from pvmpi import launch
from pvmpi import load as load_model
from pvmpi.errors import PvmpiError
from pvmpi.model import shape
from pvmpi.parallel import launcher
from pvmpi.parallel import layout as layout_rules
from pvmpi.parallel.decomposition import layouts, tile

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"
DEMO_SETS = ["column.nbatch=8", "V1.nf=16"]

MPICH_LIB = "MPICH Version:      5.0.2\nMPICH Release date: Fri Sep 25 2026\nMPICH ABI:          18:2:6\n"
OPENMPI_LIB = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022"
INTEL_LIB = "Intel(R) MPI Library 2021.10 for Linux* OS\n"
HYDRA = "HYDRA build details:\n    Version:                                 5.0.2\n    Release Date: ...\n"
ORTE = "mpiexec (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n"
INTEL_HYDRA = "Intel(R) MPI Library for Linux* OS, Version 2021.10 Build 20230619 (id: c2e19c2f3e)\n"


def demo_shape(*sets):
    return shape.network_shape(load_model(DEMO, DEMO_SETS + list(sets)))


def fake_launcher(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = " ".join("'" + line + "'" for line in text.splitlines())
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' {lines}\n")  # builtins only: PATH may hold nothing else
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# ---------------------------------------------------------------- which MPI

def test_vendors_of_libraries_and_launchers():
    assert launcher.library_vendor(MPICH_LIB) == "mpich"
    assert launcher.library_vendor(OPENMPI_LIB) == "openmpi"
    assert launcher.library_vendor(INTEL_LIB) == "intel"
    assert launcher.library_vendor("MVAPICH2 Version : 2.3.7\n") == "mvapich"
    assert launcher.library_vendor("something else") == "unknown"
    assert launcher.launcher_vendors(HYDRA) == {"mpich", "mvapich"}
    assert launcher.launcher_vendors(ORTE) == {"openmpi"}
    assert launcher.launcher_vendors(INTEL_HYDRA) == {"intel"}
    assert launcher.launcher_vendors("") == set()


def test_mpi4py_reports_its_mpi_without_starting_it():
    info = launcher.mpi_info(sys.executable)
    assert info.vendor in ("mpich", "openmpi", "intel", "mvapich", "cray")
    assert info.version and info.name.startswith(launcher.VENDOR_NAMES[info.vendor])


def test_a_launcher_of_another_mpi_is_refused(tmp_path):
    info = launcher.MPIInfo(python=str(tmp_path / "bin" / "python"), vendor="mpich", version="5.0.2",
                          library_version=MPICH_LIB)
    ompi = fake_launcher(tmp_path / "ompi" / "mpiexec", ORTE)
    with pytest.raises(PvmpiError, match="launcher of Open MPI.*uses MPICH 5.0.2"):
        launcher.check_launcher(ompi, info)
    with pytest.raises(PvmpiError, match="Open MPI"):
        launcher.find_mpiexec(info, given=str(ompi))
    hydra = fake_launcher(tmp_path / "mpich" / "mpiexec", HYDRA)
    assert launcher.check_launcher(hydra, info) is None
    older = fake_launcher(tmp_path / "old" / "mpiexec", HYDRA.replace("5.0.2", "4.0"))
    assert "other release" in launcher.check_launcher(older, info)


def test_the_launcher_beside_python_first_and_never_a_mismatched_one(tmp_path, monkeypatch):
    info = launcher.MPIInfo(python=str(tmp_path / "venv" / "bin" / "python"), vendor="mpich", version="5.0.2",
                          library_version=MPICH_LIB)
    fake_launcher(tmp_path / "usr" / "bin" / "mpiexec", ORTE)  # first on PATH: Open MPI (Debian's default)
    monkeypatch.setenv("PATH", str(tmp_path / "usr" / "bin"))
    with pytest.raises(PvmpiError, match="no mpiexec of MPICH 5.0.2.*refused.*Open MPI"):
        launcher.find_mpiexec(info)
    mine = fake_launcher(tmp_path / "venv" / "bin" / "mpiexec", HYDRA)  # the one beside the Python
    path, notes = launcher.find_mpiexec(info)
    assert path == str(mine) and notes == []


def test_the_mpiexec_of_the_test_python_is_accepted():
    info = launcher.mpi_info(sys.executable)
    path, _ = launcher.find_mpiexec(info)
    assert Path(path).parent == Path(sys.executable).parent  # the venv's own (launch/setup.sh)


# ---------------------------------------------------------------- layout

def test_demo_network_shape_has_the_columns_margins():
    shape = demo_shape()
    by_name = {lay.name: lay for lay in shape.layers}
    assert shape.nbatch == 8
    assert (by_name["V1"].nx, by_name["V1"].ny, by_name["V1"].nf) == (32, 32, 16)
    assert (by_name["InputError"].margin_x, by_name["V1"].margin_x, by_name["Input"].margin_x) == (3, 2, 0)


@pytest.mark.parametrize("ranks, expected", [(1, (1, 1, 1)), (2, (2, 1, 1)), (4, (4, 1, 1)), (8, (8, 1, 1)),
                                             (16, (8, 2, 1)), (32, (8, 4, 1))])
def test_batch_split_first_then_rows(ranks, expected):
    layout, reasons = layout_rules.plan_layout(demo_shape(), ranks)
    assert (layout.batch_width, layout.rows, layout.columns) == expected
    assert reasons[0].startswith(f"layout BatchWidth={expected[0]} NumRows={expected[1]} NumColumns={expected[2]}")
    text = "\n".join(reasons)
    assert ("one rank" if ranks == 1 else "batch split") in text
    if expected[1] > 1:
        assert "rows before columns" in text


def test_every_chosen_layout_fits_and_has_the_largest_batch_width():
    shape = demo_shape("column.nbatch=6")
    sizes = [(lay.name, lay.ny, lay.nx, lay.margin_y, lay.margin_x) for lay in shape.layers]
    for ranks in range(1, 65):
        fitting = [L for L in layouts(ranks) if not layout_rules.layout_problems(shape, L.batch_width, L.rows, L.columns)]
        if not fitting:
            with pytest.raises(PvmpiError, match="rank counts that fit"):
                layout_rules.plan_layout(shape, ranks)
            continue
        chosen, _ = layout_rules.plan_layout(shape, ranks)
        assert chosen.batch_width == max(L.batch_width for L in fitting)
        for rank in range(chosen.size):
            for name, ny, nx, my, mx in sizes:
                t = tile(6, ny, nx, chosen, rank, name)  # pvmpi's own check: raises if it does not divide
                assert chosen.rows == 1 or t.ny >= my
                assert chosen.columns == 1 or t.nx >= mx


def test_tiles_narrower_than_a_margin_are_not_chosen():
    shape = demo_shape("column.nbatch=1")
    layout, _ = layout_rules.plan_layout(shape, 32)  # 1x32x1 would give V1 (32 rows, margin 2) 1-row tiles
    assert layout.batch_width == 1 and 32 // layout.rows >= 2 and 32 // layout.columns >= 2
    assert layout_rules.layout_problems(shape, 1, 32, 1)


def test_given_values_are_kept_and_impossible_requests_explained():
    shape = demo_shape()
    layout, reasons = layout_rules.plan_layout(shape, 4, rows=2)
    assert (layout.batch_width, layout.rows, layout.columns) == (2, 2, 1)
    assert "as given" in "\n".join(reasons)
    with pytest.raises(PvmpiError, match=r"no layout of 6 rank\(s\).*rank counts that fit: .*\b4\b"):
        layout_rules.plan_layout(shape, 6)
    with pytest.raises(PvmpiError, match="BatchWidth=3"):
        layout_rules.plan_layout(shape, 4, batch_width=3)


def test_parse_layout():
    assert layout_rules.parse_layout("auto") is None
    assert layout_rules.parse_layout("2,1,4") == (2, 1, 4)
    assert layout_rules.parse_layout("2x2x1") == (2, 2, 1)
    for bad in ("2,1", "0,1,1", "a,b,c"):
        with pytest.raises(PvmpiError):
            layout_rules.parse_layout(bad)


# ---------------------------------------------------------------- ranks, nodes, threads

SLURM_ENV = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "64", "SLURM_JOB_NUM_NODES": "4", "SLURM_NTASKS_PER_NODE": "16",
             "SLURM_CPUS_PER_TASK": "2", "SLURM_CPUS_ON_NODE": "32", "SLURM_JOB_CPUS_PER_NODE": "32(x4)"}


def test_resources_come_from_the_allocation():
    r = launch.resources(env=SLURM_ENV)
    assert (r.ranks, r.nodes, r.ranks_per_node, r.threads, r.cores_per_node, r.allocated_cpus) == \
        (64, 4, 16, 2, 32, 128)
    assert not r.oversubscribed
    small = launch.resources(ranks=4, env=SLURM_ENV)  # a scaling task: packed onto one node
    assert (small.nodes, small.ranks_per_node, small.threads) == (1, 4, 2)
    assert launch.slurm_cpus("4(x2),2") == 10 and launch.slurm_cpus("") is None


def test_threads_are_cores_per_rank_outside_slurm():
    r = launch.resources(ranks=2, env={}, cores=8)
    assert (r.nodes, r.ranks_per_node, r.threads, r.oversubscribed) == (1, 2, 4, False)
    over = launch.resources(ranks=4, env={}, cores=2)
    assert over.threads == 1 and over.oversubscribed
    assert any("oversubscribed" in n for n in over.notes)


def test_launcher_words():
    mpich = launcher.MPIInfo("python", "mpich", "5.0.2", MPICH_LIB)
    ompi = launcher.MPIInfo("python", "openmpi", "4.1.4", OPENMPI_LIB)
    r = launch.resources(env=SLURM_ENV)
    assert launch.launcher_command("srun", r, mpich) == [
        "srun", "--mpi=pmi2", "--ntasks=64", "--cpus-per-task=2", "--nodes=4", "--ntasks-per-node=16",
        "--cpu-bind=cores", "--kill-on-bad-exit=1"]
    assert launch.launcher_command("srun", r, ompi)[1] == "--mpi=pmix"
    assert "--ntasks=64" not in launch.launcher_command("srun", r, mpich, count=False)
    local = launch.resources(ranks=2, env={}, cores=4)
    assert launch.launcher_command("mpiexec", local, mpich, "/v/bin/mpiexec") == \
        ["/v/bin/mpiexec", "-n", "2", "-bind-to", "core:2"]
    words = launch.launcher_command("mpiexec", local, ompi, "/o/bin/mpirun")
    assert words[:3] == ["/o/bin/mpirun", "-n", "2"] and "slot:PE=2" in words
    over = launch.resources(ranks=4, env={}, cores=2)
    assert "-bind-to" not in launch.launcher_command("mpiexec", over, mpich, "mpiexec")
    assert "--oversubscribe" in launch.launcher_command("mpiexec", over, ompi, "mpirun")
    inside = launch.resources(ranks=4, env=dict(SLURM_ENV, SLURM_NTASKS="2", SLURM_JOB_NUM_NODES="1",
                                                  SLURM_NTASKS_PER_NODE="2", SLURM_CPUS_PER_TASK="1",
                                                  SLURM_CPUS_ON_NODE="2", SLURM_JOB_CPUS_PER_NODE="2"))
    assert "--overcommit" in launch.launcher_command("srun", inside, mpich)


def test_the_signal_each_launcher_forwards():
    mpich = launcher.MPIInfo("python", "mpich", "5.0.2", MPICH_LIB)
    ompi = launcher.MPIInfo("python", "openmpi", "4.1.4", OPENMPI_LIB)
    assert launch.forward_signal("srun", mpich) == "USR2"
    assert launch.forward_signal("mpiexec", mpich) == "TERM"  # hydra dies of USR2, forwards TERM
    assert launch.forward_signal("mpiexec", ompi) == "USR2"


# ---------------------------------------------------------------- the command line

def run_main(capsys, *argv):
    code = launch.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dry_run_prints_the_reasons_and_the_command(capsys, monkeypatch):
    for k in list(os.environ):
        if k.startswith("SLURM_"):
            monkeypatch.delenv(k)
    code, out, err = run_main(capsys, "--dry-run", "-n", "4", DEMO, "--set", "V1.nf=16", "-q")
    assert code == 0, err
    assert "layout BatchWidth=4 NumRows=1 NumColumns=1" in out
    cmd = [line for line in out.splitlines() if line.startswith("+ ")]
    assert len(cmd) == 1
    assert f"{Path(sys.executable).parent / 'mpiexec'} -n 4" in cmd[0]
    assert f"-m mpi4py -m pvmpi {DEMO} --set V1.nf=16 -q --batchwidth 4 --rows 1 --columns 1 -t" in cmd[0]
    assert cmd[0].startswith("+ NUMBA_NUM_THREADS=")


def test_pvmpi_options_win(capsys, monkeypatch):
    for k in list(os.environ):
        if k.startswith("SLURM_"):
            monkeypatch.delenv(k)
    code, out, err = run_main(capsys, "--dry-run", "-n", "4", DEMO, "-rows", "2", "-t", "3")
    assert code == 0, err
    cmd = out.splitlines()[-1]
    assert "--batchwidth 2 --columns 1" in cmd and "--rows" not in cmd and cmd.count(" -t ") == 1
    assert "NUMBA_NUM_THREADS=3" in cmd


def test_print_layout_and_errors(capsys):
    code, out, err = run_main(capsys, "--print-layout", "-n", "16", DEMO)
    assert code == 0 and out.strip() == "8 2 1"
    assert "batch split first" in err
    code, out, err = run_main(capsys, "--print-layout", "-n", "5", DEMO)
    assert code == 1 and err.startswith("pvmpi-launch: error: -n: no layout of 5 rank(s)")
    code, out, err = run_main(capsys, "-n", "2")
    assert code == 1 and "no CONFIG" in err


def test_check_starts_one_world(capsys, monkeypatch):
    for k in list(os.environ):
        if k.startswith("SLURM_"):
            monkeypatch.delenv(k)
    code, out, err = run_main(capsys, "--check", "--launcher", "mpiexec")
    assert code == 0, err
    assert "2 ranks, one world of 2" in out


def test_finished_reads_the_newest_checkpoint(capsys, tmp_path):
    import h5py

    from pvmpi.io.checkpoint import FILE, FORMAT

    ck = tmp_path / "checkpoints"
    sets = ["--set", "column.stopTime=200", "--set", "column.checkpointWrite=true",
            "--set", f"column.checkpointWriteDir={ck}"]

    def make(step):
        d = ck / f"Checkpoint{step:03d}"
        d.mkdir(parents=True)
        with h5py.File(d / FILE, "w") as h:
            h.attrs.update(format=FORMAT, complete=True, step=step, time=float(step))

    code, out, _ = run_main(capsys, "--finished", DEMO, *sets)
    assert code == 3 and "no complete checkpoint yet" in out
    make(120)
    code, out, _ = run_main(capsys, "--finished", DEMO, *sets)
    assert code == 3 and "(step 120)" in out and "not finished" in out
    make(200)
    code, out, _ = run_main(capsys, "--finished", DEMO, *sets)
    assert code == 0 and "finished" in out
    code, _, err = run_main(capsys, "--finished", DEMO)
    assert code == 1 and "checkpointWriteDir" in err


def test_check_catches_a_launcher_that_starts_unrelated_one_rank_jobs(tmp_path, monkeypatch):
    """What a launcher of another MPI does (each rank a world of 1): --check refuses it."""
    for k in list(os.environ):
        if k.startswith(("SLURM_", "PMI_", "HYDRA_", "OMPI_")):
            monkeypatch.delenv(k)
    fake = tmp_path / "mpiexec"
    fake.write_text('#!/bin/sh\nshift; n=$1; shift\ni=0\nwhile [ $i -lt $n ]; do "$@"; i=$((i+1)); done\n')
    fake.chmod(0o755)
    with pytest.raises(PvmpiError, match=r"started 2 rank\(s\) with world sizes \[1\], not one world of 2"):
        launch.run_check([str(fake), "-n", "2"], sys.executable, dict(os.environ))

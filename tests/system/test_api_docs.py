"""docs/api.md's walk-through runs as written: on one process, and unchanged under mpiexec -n 2
with the same outputs (the layout never changes a result)."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

from running import mpirun

REPO = Path(__file__).resolve().parents[2]


def walkthrough():
    """The first Python block of docs/api.md."""
    text = (REPO / "docs" / "api.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def prepare(folder):
    """The folder the walk-through expects: configs/lca_demo.yaml and demo_data/ (8 images, one set
    for every folder: the image list names them by absolute path)."""
    from pvmpi.data.dead_leaves import make_image_set

    (folder / "configs").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "lca_demo.yaml", folder / "configs")
    make_image_set(folder.parent / "demo_data", count=8, size=64, seed=1)
    (folder / "demo_data").symlink_to(folder.parent / "demo_data")
    (folder / "walkthrough.py").write_text(walkthrough())
    return folder


def test_api_walkthrough_on_one_and_two_processes(tmp_path):
    from pvmpi.conformance.compare import compare_runs

    one = prepare(tmp_path / "one")
    proc = subprocess.run([sys.executable, "walkthrough.py"], cwd=one, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "of V1 active; dictionary (1, 32, 8, 8, 1), tile (4, 32, 32, 32)" in proc.stdout
    assert "continued from t = 50 to t = 80" in proc.stdout
    assert (one / "api_out" / "Checkpoint50").is_dir()

    two = prepare(tmp_path / "two")
    proc = mpirun(2, "walkthrough.py", cwd=two, timeout=300)
    assert proc.returncode == 0, proc.stderr
    tile = re.search(r"tile \((\d+), (\d+), (\d+), 32\)", proc.stdout).groups()
    assert 2 * 32 * 32 * 4 == 2 * int(tile[0]) * int(tile[1]) * int(tile[2]) * 2  # half of V1 each
    assert proc.stdout.count("continued from") == 1
    diff = compare_runs(one / "api_out", two / "api_out")
    assert not diff.problems, diff.problems[:5]


def test_quickstart_error_example_is_what_pvmpi_prints(tmp_path):
    """docs/quickstart.md's example of a mistake (VThresh misspelt in the demo config) is pvmpi's own
    line, file, line number and all."""
    shown = next(ln for ln in (REPO / "docs" / "quickstart.md").read_text().splitlines()
                 if ln.startswith("pvmpi: error: configs/lca_demo.yaml:"))
    (tmp_path / "configs").mkdir()
    text = (REPO / "configs" / "lca_demo.yaml").read_text().replace("\n  VThresh: 0.15 ", "\n  VTresh: 0.15 ", 1)
    (tmp_path / "configs" / "lca_demo.yaml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "configs/lca_demo.yaml", "-n"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == shown, proc.stderr

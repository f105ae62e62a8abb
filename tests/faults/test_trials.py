"""The fault trials of issue #21 (tests/faults/trials.py) keep working: its --quick subset, one trial
per class, runs and every trial ends cleanly."""
import subprocess
import sys
from pathlib import Path

import pytest

TRIALS = Path(__file__).with_name("trials.py")


@pytest.mark.slow
def test_the_quick_fault_trials_end_cleanly(tmp_path):
    proc = subprocess.run([sys.executable, str(TRIALS), "--quick", "--json", str(tmp_path / "trials.json")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "| total " in proc.stdout and "Traceback" not in proc.stderr

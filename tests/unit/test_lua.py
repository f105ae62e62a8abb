"""Lua params files run as OpenPV runs them: the script's printed params are the network."""
import os
import subprocess
import sys

import pytest
from shared_data import OPENPV_SUITE, require

from pvmpi.errors import PvmpiError
from pvmpi.model.params import load_params

pytest.importorskip("lupa")

SCRIPT = """
local nx = 8
local params = {
   {"HyPerCol", "column", {nx = nx, ny = nx, dt = 1, stopTime = 2, outputPath = "out"}},
   {"ConstantLayer", "Input", {nf = 1, InitVType = "ConstantV", valueV = 1}},
}
for _, g in ipairs(params) do
   io.write(g[1] .. ' "' .. g[2] .. '" = {\\n')
   for k, v in pairs(g[3]) do
      print(string.format('    %s = %s;', k, type(v) == "string" and ('"' .. v .. '"') or tostring(v)))
   end
   print("};")
end
"""


def test_a_lua_script_is_the_params_it_prints(tmp_path):
    (tmp_path / "net.lua").write_text(SCRIPT)
    pf = load_params(tmp_path / "net.lua")
    assert [(g.cls, g.name) for g in pf.groups] == [("HyPerCol", "column"), ("ConstantLayer", "Input")]
    assert pf.groups[0].values["nx"] == 8 and pf.groups[1].values["valueV"] == 1
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "net.lua", "-q"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "pv.params").is_file()


def test_a_failing_lua_script_is_one_line(tmp_path):
    (tmp_path / "bad.lua").write_text('local pv = require "PVModule"\n')
    with pytest.raises(PvmpiError, match="module 'PVModule' not found") as e:
        load_params(tmp_path / "bad.lua")
    assert "PV_SOURCEDIR" in e.value.hint
    (tmp_path / "quiet.lua").write_text("local x = 1\n")
    with pytest.raises(PvmpiError, match="printed no params"):
        load_params(tmp_path / "quiet.lua")


def test_openpvs_lca_cifar_tutorial_runs_from_its_lua_file(monkeypatch):
    """The tutorial's own script, with OpenPV's PVModule found through PV_SOURCEDIR: the same groups
    and values as lua5.3 prints (the order of a Lua table's keys varies from run to run)."""
    suite = require(OPENPV_SUITE, "OpenPV's suite (tutorials, parameterWrapper)", "PVMPI_OPENPV_SUITE")
    folder = suite / "tutorials" / "LCA-CIFAR"
    monkeypatch.setenv("PV_SOURCEDIR", str(suite))
    monkeypatch.chdir(folder)
    pf = load_params(folder / "input" / "LCA_CIFAR.lua")
    names = {g.name: g.cls for g in pf.groups}
    assert pf.groups[0].cls == "HyPerCol" and names["LeakyIntegrator"] == "HyPerLCALayer"
    assert names["LeakyIntegratorToInputError"] == "MomentumConn" and len(pf.groups) == 15
    assert os.environ["PV_SOURCEDIR"] == str(suite)

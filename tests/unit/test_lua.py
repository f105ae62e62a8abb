"""Lua params files run as OpenPV runs them: the script's printed params are the network."""
import os
import subprocess
import sys

import pytest
from shared_data import OPENPV_SUITE, unavailable

from pvmpi.errors import PvmpiError
from pvmpi.model.params import load_params, parse_params

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
    (tmp_path / "bad.lua").write_text('local pv = require "NoSuchModule"\n')
    with pytest.raises(PvmpiError, match="the Lua script failed: .*NoSuchModule"):
        load_params(tmp_path / "bad.lua")
    (tmp_path / "quiet.lua").write_text("local x = 1\n")
    with pytest.raises(PvmpiError, match="printed no params"):
        load_params(tmp_path / "quiet.lua")
    (tmp_path / "twice.lua").write_text('local pv = require "PVModule"\nlocal p = {}\n'
                                        'pv.addGroup(p, "a", {groupType = "HyPerCol"})\n'
                                        'pv.addGroup(p, "a", {groupType = "HyPerCol"})\n')
    with pytest.raises(PvmpiError, match="group a already exists"):
        load_params(tmp_path / "twice.lua")


def lua_scripts():
    """OpenPV's tutorials' and demos' Lua params files."""
    return sorted(p for sub in ("tutorials", "demos") for p in (OPENPV_SUITE / sub).rglob("*.lua"))


@pytest.mark.parametrize("script", lua_scripts(), ids=lambda p: p.name)
def test_openpvs_lua_files_give_what_lua53_and_openpvs_pvmodule_give(script, monkeypatch):
    """pvmpi's PVModule, in pvmpi's Lua, against Debian's lua5.3 with OpenPV's own parameterWrapper:
    the same groups, classes and values (OpenPV's prints them in Lua's table order, which varies)."""
    import shutil

    lua53 = shutil.which("lua5.3")
    if lua53 is None:
        unavailable("Debian's lua5.3 is not on PATH (apt-get install lua5.3)")
    wrapper = OPENPV_SUITE / "parameterWrapper"
    env = {**os.environ, "PV_SOURCEDIR": str(OPENPV_SUITE), "LUA_PATH": f"{wrapper}/?.lua;;"}
    ref = subprocess.run([lua53, script.name], cwd=script.parent, env=env, capture_output=True, text=True,
                         timeout=60)
    assert ref.returncode == 0, ref.stderr
    monkeypatch.delenv("PV_SOURCEDIR", raising=False)  # pvmpi needs no OpenPV repository
    monkeypatch.chdir(script.parent)
    mine = load_params(script)
    theirs = parse_params(ref.stdout, "lua5.3")
    assert mine.groups[0].cls == "HyPerCol"
    assert {g.name: (g.cls, dict(g.values)) for g in mine.groups} == \
        {g.name: (g.cls, dict(g.values)) for g in theirs.groups}
    assert load_params(script).groups == mine.groups  # the same every time

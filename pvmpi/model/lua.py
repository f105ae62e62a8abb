"""OpenPV's Lua params files, run as OpenPV runs them: the script builds the network with OpenPV's
``PVModule`` (found through ``PV_SOURCEDIR``, as the tutorials say) and prints the params text,
which pvmpi reads as any ``.params`` file. Lua itself comes from ``lupa`` (an optional dependency)."""
import os

from ..errors import PvmpiError


def params_text_of(path):
    """The params text a Lua params file prints, run in the working directory (as OpenPV runs it)."""
    try:
        import lupa
    except ImportError:
        raise PvmpiError("running a Lua params file needs the lupa package", file=path,
                         hint="pip install lupa, or run the script with lua and give pvmpi its output") from None
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError as e:
        raise PvmpiError(f"cannot read Lua params file: {e.strerror}", file=path) from None
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    printed = []
    lua.globals().print = lambda *parts: printed.append("\t".join(str(p) for p in parts) + "\n")
    lua.execute("io.write = function(...) for _, v in ipairs({...}) do print_part(tostring(v)) end end")
    try:
        lua.globals().print_part = lambda text: printed.append(str(text))
        lua.execute(source)
    except lupa.LuaError as e:
        message = str(e).strip().splitlines()[0]
        hint = None
        if "PVModule" in message or "module '" in message:
            hint = (f"set PV_SOURCEDIR to the OpenPV repository (its parameterWrapper/ holds PVModule.lua); "
                    f"now {os.environ.get('PV_SOURCEDIR', 'unset')}")
        raise PvmpiError(f"the Lua script failed: {message}", file=path, hint=hint) from None
    text = "".join(printed)
    if not text.strip():
        raise PvmpiError("the Lua script printed no params", file=path,
                         hint="a params script ends with pv.printConsole(params)")
    return text

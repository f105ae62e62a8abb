"""Convert between OpenPV params files and pvmpi's YAML configs, losslessly.

``params -> YAML -> params`` gives back the same raw config: same groups,
order, names and values (types included). Two readability choices need the
schema and change no meaning, because the schema reads them the way it reads
the numbers they stand for:

* a parameter the schema calls a bool, holding 0.0 or 1.0 (``false``/``true``
  in the params file), is written ``false``/``true`` in YAML;
* FLT_MAX (OpenPV's ``infinity``) of a float parameter is written
  ``infinity`` in YAML; inside arrays it stays a number, since the schema
  reads arrays as plain numbers.

Going back, a YAML string ``infinity``/``-infinity`` (or ``.inf``) becomes
OpenPV's ``infinity`` unless the schema says the parameter is a string.
"""
import math
import re

from ..errors import PvmpiError
from . import schema
from .config import RESERVED, _loader_class
from .params import QUOTED, ParamsFile, _longest_match, is_identifier
from .schema import FLT_MAX

_INFINITY_WORDS = {"infinity": FLT_MAX, "+infinity": FLT_MAX, "inf": FLT_MAX,
                   "-infinity": -FLT_MAX, "-inf": -FLT_MAX}


def _param_kind(cls, pname):
    """The schema's kind of a parameter ('float', 'bool', ...), or None if unknown."""
    if cls not in schema.CLASSES:
        return None
    p = schema.params_of(cls).get(pname)
    return p.kind if p else None


# ---------------------------------------------------------------- params -> YAML

def params_to_yaml(params_file):
    """YAML text of a :class:`ParamsFile` (or a RawConfig): ``class:`` first in each group."""
    if getattr(params_file, "sweeps", None):
        s = params_file.sweeps[0]
        raise PvmpiError("cannot convert a ParameterSweep to YAML yet", file=params_file.path,
                         line=s.line, group=s.group, param=s.param,
                         hint="convert each run separately (ParamsFile.sweep_configs())")
    raw = params_file.to_raw_config() if isinstance(params_file, ParamsFile) else params_file
    out = [f"# Converted by pvmpi from the OpenPV params file {raw.path}",
           "# (same groups, order and values; 'class' is the OpenPV keyword)."]
    for g in raw.groups:
        if g.name in RESERVED:
            raise PvmpiError(f"a group may not be named '{g.name}' in YAML (reserved)",
                             file=raw.path, line=g.line, group=g.name)
        out.append(f"{_yaml_str(g.name)}:")
        out.append(f"  class: {_yaml_str(g.cls)}")
        for pname, value in g.values.items():
            if pname == "class":
                raise PvmpiError("a parameter named 'class' cannot be written in YAML",
                                 file=raw.path, line=g.lines.get(pname), group=g.name, param=pname)
            line = f"{_yaml_str(pname)}: {_yaml_value(value, _param_kind(g.cls, pname))}"
            if _unknown(g.cls, pname):  # OpenPV ignores unused parameters; pvmpi's YAML refuses them
                out.append(f"  # {line}  -- not a pvmpi parameter of {g.cls}; ignored")
            else:
                out.append(f"  {line}")
        out.append("")
    if raw.parallel:
        out.append("parallel:")
        out.extend(f"  {_yaml_str(k)}: {_yaml_value(v, None)}" for k, v in raw.parallel.items())
    return "\n".join(out).rstrip("\n") + "\n"


def _unknown(cls, pname):
    """A parameter the schema does not know for a class it knows."""
    return cls in schema.CLASSES and pname not in schema.params_of(cls)


def _yaml_value(value, kind):
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_number(v) for v in value) + "]"
    if isinstance(value, str):
        return _yaml_str(value)
    if kind == "bool" and isinstance(value, float) and value in (0.0, 1.0):
        return "true" if value else "false"
    if kind in ("float", None) and isinstance(value, float) and abs(value) == FLT_MAX:
        return "infinity" if value > 0 else "-infinity"
    return _yaml_number(value)


def _yaml_number(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


_PLAIN = re.compile(r"[A-Za-z0-9_./+][A-Za-z0-9_ ~+/.-]*(?<! )")


def _yaml_str(text):
    """A YAML scalar that our loader reads back as exactly `text` (plain when safe)."""
    import yaml

    if _PLAIN.fullmatch(text):
        try:
            if yaml.load(text, Loader=_loader_class()) == text:
                return text
        except yaml.YAMLError:
            pass
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- YAML -> params

def yaml_to_params(raw_config):
    """OpenPV params text of a RawConfig; raises PvmpiError for what params syntax cannot hold."""
    path = raw_config.path
    out = [f"// Converted by pvmpi from {path}", ""]
    if raw_config.parallel:
        out.append("// pvmpi's parallel layout (OpenPV takes it from the command line or a config "
                   "file, not from params):")
        out.extend(f"//   {k} = {v}" for k, v in raw_config.parallel.items())
        out.append("")
    for g in raw_config.groups:
        ctx = dict(file=path, line=g.line, group=g.name)
        if not is_identifier(g.cls):
            raise PvmpiError(f"class '{g.cls}' is not an OpenPV keyword (an identifier)", **ctx)
        out.append(f"{g.cls} {_group_name(g.name, ctx)} = {{")
        for pname, value in g.values.items():
            pctx = dict(ctx, param=str(pname), line=g.lines.get(pname, g.line))
            if pctx["line"] == "--set":
                pctx["line"] = None
            if not is_identifier(pname):
                raise PvmpiError("this parameter name cannot be written in a params file "
                                 "(names are a letter, then letters, digits and '_')", **pctx)
            text = _params_value(value, _param_kind(g.cls, pname), pctx)
            out.append(f"    {pname:<35} = {text};")
        out.append("};")
        out.append("")
    return "\n".join(out)


def _group_name(name, ctx):
    token = f'"{name}"' if isinstance(name, str) else ""
    kind = _longest_match(token, 0) if token else (None, 0)
    if kind[0] not in ("GROUPID", "STRING") or kind[1] != len(token) or not name:
        raise PvmpiError(f"group name {name!r} cannot be written in a params file",
                         hint="group names are letters, digits and '_'", **ctx)
    return token


def _params_value(value, kind, ctx):
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple)):
        if not value:
            raise PvmpiError("an empty array cannot be written in a params file", **ctx,
                             hint="remove the parameter to use its default")
        return "[" + ", ".join(_params_number(v, ctx) for v in value) + "]"
    if isinstance(value, str):
        if kind != "str" and value.strip().lower() in _INFINITY_WORDS:
            return _params_number(_INFINITY_WORDS[value.strip().lower()], ctx)
        return _quoted(value, ctx)
    return _params_number(value, ctx)


def _params_number(value, ctx):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        raise PvmpiError(f"{value!r} cannot be written in a params file (numbers, strings, NULL "
                         "and arrays of numbers only)", **ctx)
    if math.isnan(value):
        raise PvmpiError("NaN cannot be written in a params file", **ctx)
    if math.isinf(value) or abs(value) == FLT_MAX:
        return "infinity" if value > 0 else "-infinity"
    return repr(value)  # shortest round-trip form; always d[.ddd][e±dd], an OpenPV number


def _quoted(text, ctx):
    token = f'"{text}"'
    kind, length, _ = _longest_match(token, 0)
    if kind not in QUOTED or length != len(token):
        raise PvmpiError(f"string {text!r} cannot be written in a params file",
                         hint="OpenPV strings hold letters, digits, '_' and spaces; file names "
                              "hold letters, digits and _~+/.-", **ctx)
    return token


# ---------------------------------------------------------------- files

PARAMS_SUFFIXES = (".params", ".lua")


def convert_file(src, dst=None):
    """Convert a params file to YAML or a YAML config to params (by `src`'s suffix).

    Returns the text; writes it to `dst` when given, never over an existing file.
    """
    from pathlib import Path

    from .config import load_yaml
    from .params import load_params

    src = str(src)
    to_yaml = src.endswith(PARAMS_SUFFIXES)
    if not to_yaml and not src.endswith((".yaml", ".yml")):
        raise PvmpiError("not a .params file or a YAML config (.yaml, .yml): which way to convert?",
                         file=src, hint="name the file by what it holds")
    if src.endswith(".lua") and dst is not None and str(dst).endswith(".params"):
        from .lua import params_text_of  # the params file the Lua script prints

        text, to_yaml = params_text_of(src), None
    elif dst is not None:
        wants_yaml = str(dst).endswith((".yaml", ".yml"))
        if wants_yaml != to_yaml or not (wants_yaml or str(dst).endswith(PARAMS_SUFFIXES)):
            made = "YAML (.yaml)" if to_yaml else "a params file (.params)"
            raise PvmpiError(f"converting {src} makes {made}; the output's name says otherwise", file=str(dst),
                             hint="end its name in .yaml for YAML, .params for a params file")
    if to_yaml is not None:
        text = params_to_yaml(load_params(src)) if to_yaml else yaml_to_params(load_yaml(src))
    if dst is not None:
        try:
            with open(dst, "x", encoding="utf-8") as f:
                f.write(text)
        except FileExistsError:
            raise PvmpiError("will not overwrite an existing file", file=str(dst),
                             hint="remove it or choose another name") from None
        except OSError as e:
            raise PvmpiError(f"cannot write: {e.strerror}", file=str(Path(dst))) from None
    return text


def main(argv=None):
    """``python -m pvmpi convert SRC [DST]`` (via cli.SUBCOMMANDS): params <-> YAML; stdout without DST."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m pvmpi convert",
                                description="Convert an OpenPV .params file to pvmpi YAML, or back.")
    p.add_argument("src", help=".params file (to YAML) or YAML config (to .params)")
    p.add_argument("dst", nargs="?", help="output file (must not exist); default: stdout")
    args = p.parse_args(argv)
    try:
        text = convert_file(args.src, args.dst)
    except PvmpiError as e:
        print(f"pvmpi: error: {e}", file=sys.stderr)
        return 2  # a user error, as everywhere in pvmpi
    if args.dst is None:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def model_to_params(model):
    """The cleaned, fully defaulted params file of a validated model (OpenPV's printParamsFilename)."""
    from .config import RawConfig, RawGroup

    groups = [RawGroup(g.name, g.cls, {k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in g.params.items() if v != ()}, g.line)  # () = default
              for g in (model.column,) + model.groups]
    return yaml_to_params(RawConfig(path=str(model.path), groups=groups, parallel=dict(model.parallel)))


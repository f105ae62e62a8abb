"""The parameter reference, generated from the schema (never written by hand).

``python -m pvmpi describe HyPerLCALayer`` prints one class in the terminal;
``python -m pvmpi describe --markdown > docs/reference/parameters.md``
regenerates the whole reference (a test fails when the file is stale).
"""
import argparse
import sys

from ..errors import PvmpiError
from . import schema
from .config import suggest

KINDS = (("column", "The column"), ("layer", "Layers"), ("connection", "Connections"), ("probe", "Probes"))


def _default(p):
    d = p.default
    if d is schema.REQUIRED:
        return "required"
    if isinstance(d, schema.From):
        return f"= {d.param}" + (f" + {d.offset:g}" if d.offset else "")
    if d is None:
        return "none"
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, float) and abs(d) == schema.FLT_MAX:
        return "infinity" if d > 0 else "-infinity"
    if isinstance(d, tuple):
        return "[" + ", ".join(f"{v:g}" for v in d) + "]" if d else "[]"
    if isinstance(d, str):
        return f'"{d}"'
    return f"{d:g}" if isinstance(d, float) else str(d)


def _meaning(p):
    text = p.doc
    if p.choices:
        text += " One of: " + ", ".join(p.choices) + "."
    if p.ignored:
        text += " (Accepted for compatibility; no effect.)"
    return text


def _rows(name):
    """(parameter, owner class, param) for a class, own parameters first, then inherited ones."""
    merged = schema.params_of(name)
    owner = {}
    for cls in schema.lineage(name):
        for p in schema.CLASSES[cls].params:
            owner.setdefault(p.name, cls)
    return sorted(merged.values(), key=lambda p: (schema.lineage(name).index(owner[p.name]), 0)), owner


def describe(name):
    """One class as plain text for the terminal."""
    if name not in schema.CLASSES:
        raise PvmpiError(f"no class named '{name}'", hint=suggest(name, schema.CLASSES) or
                         "python -m pvmpi describe --list")
    spec = schema.CLASSES[name]
    rows, owner = _rows(name)
    lines = [f"{name} ({spec.kind}{', abstract' if spec.abstract else ''}): {spec.doc}",
             f"  inherits: {' < '.join(schema.lineage(name))}", ""]
    width = max(len(p.name) for p in rows) if rows else 10
    for p in rows:
        unit = f" [{p.unit}]" if p.unit else ""
        src = "" if owner[p.name] == name else f" (from {owner[p.name]})"
        lines.append(f"  {p.name:<{width}}  {p.kind:<6} {_default(p):<14} {p.origin:<6} "
                     f"{_meaning(p)}{unit}{src}")
    return "\n".join(lines)


def markdown_reference():
    """The whole reference as Markdown: every concrete class, every parameter."""
    out = ["# Parameter reference", "",
           "Generated from `pvmpi/model/schema.py` by `python -m pvmpi describe --markdown`;",
           "do not edit by hand. Every parameter keeps OpenPV's name and default; the",
           "*origin* column says whether it is OpenPV's or pvmpi's own. Defaults written",
           "`= X` are the value of parameter X of the same group (`post.nf`: the post",
           "layer's nf; `target.VThresh`: the target layer's VThresh).", ""]
    for kind, title in KINDS:
        out += [f"## {title}", ""]
        for spec in schema.concrete_classes(kind):
            rows, owner = _rows(spec.name)
            out += [f"### {spec.name}", "", spec.doc, "",
                    f"Inherits: {' < '.join(schema.lineage(spec.name))}.", "",
                    "| parameter | type | default | unit | origin | meaning |",
                    "|---|---|---|---|---|---|"]
            for p in rows:
                src = "" if owner[p.name] == spec.name else f" *(from {owner[p.name]})*"
                out.append(f"| `{p.name}` | {p.kind} | {_default(p)} | {p.unit} | {p.origin} | "
                           f"{_meaning(p).replace('|', '/')}{src} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv=None):
    """``python -m pvmpi describe [CLASS | --list | --markdown]``: the schema, for people."""
    ap = argparse.ArgumentParser(prog="python -m pvmpi describe",
                                 description="Parameters of a pvmpi/OpenPV class, from the schema.")
    ap.add_argument("name", nargs="?", help="class name, e.g. HyPerLCALayer")
    ap.add_argument("--list", action="store_true", help="list every class")
    ap.add_argument("--markdown", action="store_true", help="print the whole reference as Markdown")
    args = ap.parse_args(argv)
    try:
        if args.markdown:
            sys.stdout.write(markdown_reference())
        elif args.list or not args.name:
            for kind, title in KINDS:
                print(f"{title}: " + ", ".join(c.name for c in schema.concrete_classes(kind)))
        else:
            print(describe(args.name))
    except PvmpiError as e:
        print(f"pvmpi: error: {e}", file=sys.stderr)
        return 1
    return 0

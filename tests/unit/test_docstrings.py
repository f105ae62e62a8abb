"""Public functions and classes say what they are for.

Walks every module of pvmpi with ``ast`` (nothing is imported) and fails on
a public module-level function or class, or a public method of a public
class, without a docstring. Exempt: names with a leading underscore (dunder
methods included), properties and their setters, ``@overload`` stubs, and a
method that overrides a documented method of a base class in the same module.

ALLOWED lists the offenders that existed when this test was written, in
files whose owners have yet to document them. The list may only shrink: an
entry that has gained its docstring fails the test until it is removed.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pvmpi"

ALLOWED = {}


def _is_property(node):
    for d in node.decorator_list:
        name = d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", None)
        if name in ("property", "setter", "getter", "deleter", "cached_property", "overload"):
            return True
    return False


def _public(name):
    return not name.startswith("_")


def undocumented(path):
    """Qualified names of the public definitions in one file that have no docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def documented_in_bases(cls, name, seen=()):
        for base in cls.bases:
            parent = classes.get(getattr(base, "id", None))
            if parent is None or parent.name in seen:
                continue
            for item in parent.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name:
                    return ast.get_docstring(item) is not None
            if documented_in_bases(parent, name, seen + (parent.name,)):
                return True
        return False

    missing = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
            if ast.get_docstring(node) is None and not _is_property(node):
                missing.append(node.name)
        elif isinstance(node, ast.ClassDef) and _public(node.name):
            if ast.get_docstring(node) is None:
                missing.append(node.name)
            for item in node.body:
                if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(item.name)
                        and ast.get_docstring(item) is None and not _is_property(item)
                        and not documented_in_bases(node, item.name)):
                    missing.append(f"{node.name}.{item.name}")
    return missing


def offenders():
    """{'pvmpi/module.py': [names]} for every file with an undocumented public definition."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        names = undocumented(path)
        if names:
            found[str(path.relative_to(PACKAGE.parent))] = names
    return found


def test_public_definitions_have_docstrings():
    new = {f: [n for n in names if n not in ALLOWED.get(f, ())] for f, names in offenders().items()}
    new = {f: names for f, names in new.items() if names}
    assert not new, "public definitions without a docstring (say what and why in one line):\n" + "\n".join(
        f"  {f}: {', '.join(names)}" for f, names in new.items())


def test_allowlist_only_shrinks():
    found = offenders()
    stale = {f: [n for n in names if n not in found.get(f, ())] for f, names in ALLOWED.items()}
    stale = {f: names for f, names in stale.items() if names}
    assert not stale, "documented now: remove from ALLOWED in tests/unit/test_docstrings.py:\n" + "\n".join(
        f"  {f}: {', '.join(names)}" for f, names in stale.items())

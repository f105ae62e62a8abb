"""The package's shape, checked: MPI only in ``parallel/``; no import circles; the layers of the
design (the model and the kernels know nothing of the engine)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pvmpi"
MPI_NAMES = {"world", "spatial", "COMM_WORLD", "COMM_SELF"}  # raw communicators


def modules():
    """{dotted name: parsed module} of every module of pvmpi."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (path, ast.parse(path.read_text()))
    return out


MODULES = modules()


def imported(name, node):
    """The pvmpi modules (or outside names) an import statement of module ``name`` names."""
    path = MODULES[name][0]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def graph():
    """{module: modules of pvmpi it imports (at the top or inside a function)}."""
    edges = {}
    for name, (_, tree) in MODULES.items():
        edges[name] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                       for t in imported(name, node)
                       if t in MODULES and t != name and not name.startswith(t + ".")}
    return edges


def test_mpi_only_in_parallel():
    """No module outside pvmpi.parallel imports mpi4py or touches a raw communicator."""
    found = []
    for name, (path, tree) in MODULES.items():
        if name.startswith("pvmpi.parallel"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if any(t.split(".")[0] == "mpi4py" for t in imported(name, node)):
                    found.append(f"{name}:{node.lineno}: imports mpi4py")
            elif isinstance(node, ast.Attribute) and node.attr in MPI_NAMES:
                found.append(f"{name}:{node.lineno}: .{node.attr}")
    assert not found, "MPI outside pvmpi.parallel:\n" + "\n".join(found)


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    """No module imports, directly or through others, a module that imports it (function-level
    imports count: they are circles waiting for the first top-level import)."""
    assert cycles(graph()) == []


FORBIDDEN = [  # (importer prefix, imported prefix, why)
    ("pvmpi.model", "pvmpi.network", "the model describes a network; the engine runs it"),
    ("pvmpi.kernels", "pvmpi.network", "kernels compute on arrays; they know nothing of the engine"),
    ("pvmpi.geometry", "pvmpi.", "geometry is arithmetic at the bottom of the package"),
    ("pvmpi.parallel", "pvmpi.network", "parallel lays out and communicates; it runs no network"),
    ("pvmpi.io", "pvmpi.network", "io reads and writes files and checkpoints for the engine"),
    ("pvmpi.io", "pvmpi.parallel", "io gets its collectives as a Comms"),
    ("pvmpi.parallel", "pvmpi.model", "parallel gets a network's shape as data"),
    ("pvmpi.probes", "pvmpi.network", "the column hands its services to the probes"),
    ("pvmpi.network", "pvmpi.simulation", "the engine knows nothing of who runs it"),
    ("pvmpi.network", "pvmpi.cli", "the engine knows nothing of the command line"),
]


@pytest.mark.parametrize("importer, target, why", FORBIDDEN, ids=[f"{a}-{b}" for a, b, _ in FORBIDDEN])
def test_import_directions(importer, target, why):
    edges = graph()
    bad = sorted(f"{m} -> {t}" for m, ts in edges.items() if m == importer or m.startswith(importer + ".")
                 for t in ts if t.startswith(target) and not t.startswith("pvmpi.errors")
                 and not (importer == "pvmpi.geometry" and t == "pvmpi.geometry"))
    assert not bad, f"{why}:\n" + "\n".join(bad)

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

ALLOWED = {
    "pvmpi/bench/cli.py": [
        "main",
    ],
    "pvmpi/bench/flops.py": [
        "FlopCounter.start",
    ],
    "pvmpi/bench/machine.py": [
        "cpu_count",
    ],
    "pvmpi/bench/model.py": [
        "Net",
        "kind_of",
        "build_parser",
        "main",
        "format_report",
    ],
    "pvmpi/bench/run.py": [
        "build_parser",
        "main",
        "format_report",
    ],
    "pvmpi/bench/scaling.py": [
        "build_parser",
        "run_one",
        "layout_name",
        "format_table",
        "write_csv",
        "main",
    ],
    "pvmpi/cli.py": [
        "build_parser",
        "fail",
        "main",
        "run",
    ],
    "pvmpi/errors.py": [
        "PvmpiError.message",
    ],
    "pvmpi/failure.py": [
        "exit_code",
    ],
    "pvmpi/io/checkpoint.py": [
        "CheckpointReader.has",
        "CheckpointReader.attr",
        "CheckpointReader.shared",
        "CheckpointReader.restricted",
        "CheckpointReader.extended",
        "CheckpointReader.batch_values",
        "CheckpointReader.close",
    ],
    "pvmpi/io/pvp.py": [
        "ActivityFile.close",
    ],
    "pvmpi/kernels/cuda.py": [
        "synchronize",
    ],
    "pvmpi/kernels/transfer.py": [
        "transfer1",
    ],
    "pvmpi/launch.py": [
        "MPIInfo",
        "LayerShape",
        "NetworkShape",
        "Resources",
        "build_parser",
        "say",
        "choose_launcher",
        "run_finished",
        "main",
    ],
    "pvmpi/network/checkpointing.py": [
        "Signals.uninstall",
        "CheckpointSchedule.path",
        "CheckpointSchedule.clock_due",
        "CheckpointSchedule.final_path",
    ],
    "pvmpi/network/column.py": [
        "Column.tile",
        "Column.initial_v",
        "Column.initial_weights",
        "Column.read_weights",
        "Column.stateful",
        "Column.failures",
        "Column.close",
    ],
    "pvmpi/network/connections.py": [
        "Connection.link",
        "Connection.uses_active_list",
        "Connection.allocate",
        "Connection.initialize",
        "Connection.normalize_on_initialize",
        "Connection.deliver",
        "Connection.open_output",
        "Connection.read_checkpoint",
        "Connection.write_output",
        "Connection.close",
        "IdentConn.deliver",
        "RescaleConn",
        "WeightedConnection.link",
        "WeightedConnection.axis_maps",
        "WeightedConnection.uses_active_list",
        "WeightedConnection.allocate",
        "WeightedConnection.map_args",
        "WeightedConnection.deliver",
        "HyPerConn.axis_maps",
        "HyPerConn.link",
        "HyPerConn.uses_active_list",
        "HyPerConn.initialize",
        "HyPerConn.normalize_on_initialize",
        "HyPerConn.normalize",
        "HyPerConn.update_weights",
        "HyPerConn.open_output",
        "HyPerConn.read_checkpoint",
        "HyPerConn.write_output",
        "HyPerConn.close",
        "CloneConn.link",
        "CloneConn.allocate",
        "TransposeConn.link",
    ],
    "pvmpi/network/input_frames.py": [
        "Jitter.from_params",
        "Jitter.due",
        "Jitter.state",
    ],
    "pvmpi/network/inputs.py": [
        "ImageSource.read",
        "ImageSource.description",
        "PvpSource.read",
        "PvpSource.description",
        "PvpSource.close",
        "InputLayer.initialize",
        "InputLayer.open_output",
        "InputLayer.write_checkpoint",
        "InputLayer.read_checkpoint",
        "InputLayer.update",
        "InputLayer.close",
        "ImageLayer",
        "PvpLayer",
    ],
    "pvmpi/network/layers.py": [
        "Layer.require_margin",
        "Layer.allocate",
        "Layer.needs_update",
        "Layer.update",
        "Layer.level",
        "Layer.active_level",
        "Layer.write_checkpoint",
        "Layer.read_checkpoint",
        "Layer.write_output",
        "Layer.close",
        "HyPerLayer.allocate",
        "HyPerLayer.write_checkpoint",
        "HyPerLayer.read_checkpoint",
        "HyPerLayer.reset_state",
        "HyPerLayer.update",
        "ConstantLayer.needs_update",
        "ANNLayer.allocate",
        "ANNErrorLayer.update",
        "HyPerLCALayer.link",
        "HyPerLCALayer.update",
        "MomentumLCALayer.allocate",
        "MomentumLCALayer.update",
        "MomentumLCALayer.write_checkpoint",
        "MomentumLCALayer.read_checkpoint",
        "LeakyIntegrator.update",
    ],
    "pvmpi/network/paramget.py": [
        "get_f32",
    ],
    "pvmpi/network/plasticity.py": [
        "HebbianUpdater.allocate",
        "HebbianUpdater.due",
        "HebbianUpdater.finish_reduction",
        "HebbianUpdater.reduced_dw",
        "HebbianUpdater.apply",
        "HebbianUpdater.momentum",
        "HebbianUpdater.read_checkpoint",
        "HebbianUpdater.open_output",
        "HebbianUpdater.write_output",
        "HebbianUpdater.close",
        "MomentumUpdater.allocate",
        "MomentumUpdater.momentum",
        "MomentumUpdater.read_checkpoint",
        "MomentumUpdater.open_output",
        "MomentumUpdater.write_output",
        "MomentumUpdater.close",
        "make_updater",
    ],
    "pvmpi/network/random.py": [
        "TausBank.copy",
    ],
    "pvmpi/network/schedule.py": [
        "UpdateController.due",
        "UpdateController.mark",
        "WriteSchedule.due",
    ],
    "pvmpi/network/timers.py": [
        "Timers",
        "Timers.time",
        "Timers.call",
        "Timers.reset",
    ],
    "pvmpi/openpv_args.py": [
        "OpenPVArgumentParser.error",
        "check_config_value",
        "Tee.write",
        "Tee.flush",
        "Tee.fileno",
        "Tee.isatty",
        "Tee.writable",
        "world",
        "warn",
    ],
    "pvmpi/probes/column_probes.py": [
        "ColumnEnergyProbe.link",
        "ColumnEnergyProbe.open_output",
        "ColumnEnergyProbe.compute",
        "ColumnEnergyProbe.line",
        "QuotientProbe.link",
        "QuotientProbe.open_output",
        "QuotientProbe.compute",
        "QuotientProbe.output",
        "run_nb",
        "AdaptiveTimeScaleProbe.link",
        "AdaptiveTimeScaleProbe.knee",
        "AdaptiveTimeScaleProbe.write_checkpoint",
        "AdaptiveTimeScaleProbe.read_checkpoint",
        "AdaptiveTimeScaleProbe.trigger_fires",
        "AdaptiveTimeScaleProbe.time_scales",
        "AdaptiveTimeScaleProbe.output",
        "KneeTimeScaleProbe.knee",
    ],
    "pvmpi/probes/layer_probes.py": [
        "Probe.link",
        "Probe.open_output",
        "Probe.read_checkpoint",
        "Probe.triggered",
        "Probe.invalidate",
        "Probe.compute",
        "Probe.line",
        "Probe.flush",
        "Probe.close",
        "LayerProbe",
        "LayerProbe.link",
        "LayerProbe.compute",
        "LayerProbe.finish",
        "L2NormProbe",
        "L2NormProbe.finish",
        "L1NormProbe",
        "L1NormProbe.finish",
        "L0NormProbe",
        "L0NormProbe.finish",
        "L1NormLCAProbe",
        "L1NormLCAProbe.link",
        "L0NormLCAProbe",
        "L0NormLCAProbe.link",
        "FirmThresholdCostFnProbe",
        "FirmThresholdCostFnProbe.compute",
        "FirmThresholdCostFnLCAProbe",
        "FirmThresholdCostFnLCAProbe.link",
        "StatsProbe.compute",
        "RequireAllZeroActivityProbe.read_checkpoint",
        "RequireAllZeroActivityProbe.failure",
    ],
    "pvmpi/probes/output.py": [
        "batch_file_name",
        "BatchFiles.write_all",
        "BatchFiles.flush",
        "BatchFiles.close",
    ],
    "pvmpi/progress.py": [
        "Progress.close",
    ],
}


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

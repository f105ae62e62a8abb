"""Load a YAML config into raw groups, remembering where each value came from.

The YAML form of an OpenPV params file is one mapping, in params-file order
(the order matters: it decides random seeds and delivery order)::

    column:                 # group name
      class: HyPerCol       # OpenPV's keyword
      nx: 64
      ...
    V1:
      class: HyPerLCALayer
      VThresh: 0.1

plus an optional reserved ``parallel:`` mapping (BatchWidth, NumRows,
NumColumns). Values keep OpenPV's names and meanings. Validation against the
schema happens in :mod:`pvmpi.model.network_model`.
"""
import os
from dataclasses import dataclass, field

from ..errors import PvmpiError

RESERVED = ("parallel",)


@dataclass
class RawGroup:
    """One group as written: name, class, values and their source lines."""

    name: str
    cls: str
    values: dict
    line: int = None
    lines: dict = field(default_factory=dict)


@dataclass
class RawConfig:
    """Groups as written. ``strict``: unknown parameters are errors (YAML) or, as in
    OpenPV params files, warnings unless the HyPerCol sets errorOnUnusedParam."""

    path: str
    groups: list
    parallel: dict = field(default_factory=dict)
    strict: bool = True

    def group(self, name):
        """The group called ``name``, or None."""
        for g in self.groups:
            if g.name == name:
                return g
        return None


def _loader_class():
    """The safe loader (libyaml's where built) that also reads ``1e-06`` as a number (YAML 1.1 wants a dot in floats)."""
    import re

    import yaml

    class ConfigLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml parses 10x faster
        pass

    ConfigLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return ConfigLoader


def _construct(loader, node):
    return loader.construct_object(node, deep=True)


#: no network needs a config this large; a larger file is a mistake (or hostile), not read into memory
MAX_CONFIG_BYTES = 256 * 2 ** 20


def read_config_bytes(path, what):
    """The bytes of a config file, refusing files larger than :data:`MAX_CONFIG_BYTES`."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise PvmpiError(f"the {what} is {size / 2 ** 20:.0f} MiB, larger than any network needs "
                                 f"(the limit is {MAX_CONFIG_BYTES // 2 ** 20} MiB)", file=path)
            return f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise PvmpiError(f"cannot read {what}: {e.strerror}", file=path) from None


def load_yaml(path):
    """Parse a YAML config file into a :class:`RawConfig` (no schema checks yet)."""

    data = read_config_bytes(path, "config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PvmpiError(f"the config is not UTF-8 text (byte 0x{data[e.start]:02x})", file=path,
                         line=data.count(b"\n", 0, e.start) + 1) from None
    return parse_yaml(text, path)


def parse_yaml(text, path="<string>"):
    """Parse YAML text with the safe loader: tags that would build Python objects are errors.

    A YAML error (syntax, an unknown tag, nesting deeper than Python's
    recursion) becomes one :class:`PvmpiError` naming the line.
    """
    import yaml

    loader = _loader_class()(text)
    try:
        return _parse_root(loader, path)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or e
        if isinstance(e, yaml.constructor.ConstructorError):
            raise PvmpiError(f"YAML: {problem}", file=path, line=line,
                             hint="a config holds plain values; tags that build objects are refused") from None
        raise PvmpiError(f"YAML syntax error: {problem}", file=path, line=line) from None
    except RecursionError:
        raise PvmpiError("YAML nested too deeply", file=path) from None
    finally:
        loader.dispose()


def _parse_root(loader, path):
    import yaml

    root = loader.get_single_node()
    if root is None:
        raise PvmpiError("the config is empty", file=path)
    if not isinstance(root, yaml.MappingNode):
        raise PvmpiError("the config must be a mapping of group names to groups", file=path,
                         line=root.start_mark.line + 1)
    raw = RawConfig(path=path, groups=[])
    seen = {}
    for knode, vnode in root.value:
        name = _construct(loader, knode)
        line = knode.start_mark.line + 1
        if not isinstance(name, str):
            raise PvmpiError(f"group name {name!r} is not a string", file=path, line=line)
        if name in seen:
            raise PvmpiError(f"group '{name}' is defined twice (first at line {seen[name]})",
                             file=path, line=line, group=name)
        seen[name] = line
        if not isinstance(vnode, yaml.MappingNode):
            raise PvmpiError("a group must be a mapping of parameter names to values",
                             file=path, line=line, group=name)
        values, lines = {}, {}
        for pk, pv in vnode.value:
            pname = _construct(loader, pk)
            pline = pk.start_mark.line + 1
            if not isinstance(pname, str):
                raise PvmpiError(f"parameter name {pname!r} is not a string", file=path, line=pline, group=name)
            if pname in values:
                raise PvmpiError(f"parameter defined twice (first at line {lines[pname]})",
                                 file=path, line=pline, group=name, param=str(pname))
            values[pname] = _construct(loader, pv)
            lines[pname] = pline
        if name in RESERVED:
            raw.parallel = values
            continue
        cls = values.pop("class", None)
        if cls is None:
            raise PvmpiError("missing 'class' (the OpenPV keyword, e.g. HyPerLayer)",
                             file=path, line=line, group=name, param="class")
        raw.groups.append(RawGroup(name, cls, values, line, lines))
    return raw


def apply_overrides(raw, assignments):
    """Apply ``GROUP.PARAM=VALUE`` assignments (the --set option) to a raw config.

    VALUE is read as a YAML scalar or flow sequence, so ``0.2``, ``true``,
    ``"name"`` and ``[1, 2]`` mean what they mean in the config file.
    """
    import yaml

    for text in assignments:
        lhs, sep, rhs = text.partition("=")
        gname, dot, pname = lhs.strip().rpartition(".")
        if not sep or not dot or not gname or not pname:
            raise PvmpiError(f"--set {text!r}: expected GROUP.PARAM=VALUE",
                             hint="e.g. --set column.stopTime=400")
        group = raw.group(gname)
        if group is None:
            names = [g.name for g in raw.groups]
            raise PvmpiError(f"--set {text!r}: no group named '{gname}'",
                             hint=suggest(gname, names) or f"groups: {', '.join(names)}")
        try:
            value = yaml.load(rhs, Loader=_loader_class()) if rhs.strip() else ""
        except yaml.YAMLError:
            value = rhs
        group.values[pname] = value
        group.lines[pname] = "--set"
    return raw


def suggest(word, candidates):
    """A 'did you mean' hint, or None."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if not close:
        lower = {c.lower(): c for c in candidates}
        if word.lower() in lower:
            close = [lower[word.lower()]]
    return f"did you mean '{close[0]}'?" if close else None

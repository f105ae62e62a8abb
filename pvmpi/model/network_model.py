"""The validated, immutable model of a network.

:func:`build_model` checks a :class:`~pvmpi.model.config.RawConfig` against
the schema, fills every default, resolves references between groups and
checks the geometry, raising one :class:`PvmpiError` that names the file,
line, group and parameter of the first problem. Everything downstream reads
the model only, never the raw config.
"""
import math
import warnings
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import PvmpiError
from . import schema
from .config import suggest
from .schema import FLT_MAX, REQUIRED, From


@dataclass(frozen=True)
class Group:
    """One validated group: its class, its kind and every parameter's value, defaults filled in.

    ``group["VThresh"]`` reads a value; ``given`` holds the names the config set itself.
    """

    name: str
    cls: str
    kind: str
    params: MappingProxyType
    given: frozenset
    line: int = None

    def __getitem__(self, key):
        return self.params[key]

    def is_a(self, ancestor):
        """True if the group's class is ``ancestor`` or derives from it (``is_a("HyPerConn")``)."""
        return schema.is_a(self.cls, ancestor)


@dataclass(frozen=True)
class Model:
    """The whole validated network: the column, the other groups in file order, the MPI layout keys."""

    path: str
    column: Group
    groups: tuple  # every group but the column, in file order
    parallel: MappingProxyType

    def group(self, name):
        """The group called ``name`` (KeyError if there is none)."""
        return self._index()[name]

    def _index(self):
        idx = self.__dict__.get("_idx")
        if idx is None:
            idx = {g.name: g for g in (self.column,) + self.groups}
            object.__setattr__(self, "_idx", idx)
        return idx

    def of_kind(self, kind):
        """The groups of one kind ("layer", "connection", "probe") in file order."""
        return [g for g in self.groups if g.kind == kind]

    @property
    def layers(self):
        return self.of_kind("layer")

    @property
    def connections(self):
        return self.of_kind("connection")

    @property
    def probes(self):
        return self.of_kind("probe")

    def layer_size(self, layer):
        """Global (nx, ny, nf) of a layer."""
        g = self.group(layer) if isinstance(layer, str) else layer
        return (_scaled(self, g, "nx"), _scaled(self, g, "ny"), g["nf"])


def _scaled(model, g, axis):
    return int(round(g[axis + "Scale"] * model.column[axis]))


# ---------------------------------------------------------------- coercion
_ANY_CASE = ("jitterChangeIntervalUnit", "interpolationMethod")  # enumerations OpenPV lower-cases
_ALIASES = (("targetName", "targetLayer"),)  # (deprecated, current): a layer probe's target


class UnusedParameterWarning(UserWarning):
    """A params-file parameter pvmpi does not know (OpenPV warns about unused ones too)."""


def _coerce(value, p, err):
    kind = p.kind
    if value is None:
        if kind in ("str",) or p.default is None:
            return None
        raise err(f"must be a {kind}, not null")
    if kind == "float":
        if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("infinity", "inf"):
            return -FLT_MAX if value.strip().startswith("-") else FLT_MAX
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise err(f"must be a number, not {value!r}")
        value = float(value)
        if math.isinf(value):  # YAML .inf means OpenPV's infinity, which is FLT_MAX
            value = math.copysign(FLT_MAX, value)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise err(f"must be an integer, not {value!r}")
        if isinstance(value, float) and (not math.isfinite(value) or value != round(value)):
            raise err(f"must be an integer, not {value!r}")
        return int(round(value))
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0  # OpenPV booleans are numbers
        raise err(f"must be true or false, not {value!r}")
    if kind == "str":
        if not isinstance(value, str):
            raise err(f"must be a string, not {value!r}")
        return value
    if kind == "array":
        items = value if isinstance(value, (list, tuple)) else [value]
        out = []
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise err(f"must be a number or a list of numbers, not {value!r}")
            out.append(float(v))
        return tuple(out)
    raise AssertionError(kind)


# ---------------------------------------------------------------- building
def build_model(raw):
    """Validate a raw config and return the immutable :class:`Model`."""
    path = raw.path
    if not raw.groups:
        raise PvmpiError("the config has no groups", file=path)
    names = [g.name for g in raw.groups]

    def err_for(g, pname=None):
        line = g.lines.get(pname, g.line) if pname else g.line
        where = "--set" if line == "--set" else path  # a value given on the command line is blamed there
        line = None if line == "--set" else line

        def make(what, hint=None):
            return PvmpiError(what, file=where, line=line, group=g.name, param=pname, hint=hint)
        return make

    col_raw = raw.groups[0]
    if col_raw.cls != "HyPerCol":
        raise err_for(col_raw)("the first group must be the HyPerCol",
                              hint=f"found {col_raw.cls}; move the HyPerCol group to the top")
    for g in raw.groups:
        if g.cls not in schema.CLASSES or schema.CLASSES[g.cls].abstract:
            known = [c.name for c in schema.concrete_classes()]
            raise err_for(g, "class")(f"unknown class '{g.cls}'", hint=suggest(g.cls, known))
        if g.cls == "HyPerCol" and g is not col_raw:
            raise err_for(g)("only one HyPerCol is allowed")
    kinds = {g.name: schema.CLASSES[g.cls].kind for g in raw.groups}

    # AToB connection names imply pre and post (a FeedbackConn takes them from its original).
    for g in raw.groups:
        if kinds[g.name] == "connection" and not schema.is_a(g.cls, "FeedbackConn") \
                and ("preLayerName" not in g.values
                                             or "postLayerName" not in g.values):
            pre, sep, post = g.name.partition("To")
            if sep and pre and post:
                g.values.setdefault("preLayerName", pre)
                g.values.setdefault("postLayerName", post)

    column = _fill(col_raw, None, raw, kinds, err_for)
    built = {}
    for g in raw.groups[1:]:
        built[g.name] = _fill(g, column, raw, kinds, err_for)
    model = Model(path=path, column=column, groups=tuple(built[n] for n in names[1:]),
                  parallel=MappingProxyType(dict(raw.parallel)))
    _check_references(model, raw, kinds, err_for)
    _check_probe_loops(model, raw, err_for)
    _check_geometry(model, raw, err_for)
    return model


def _fill(g, column, raw, kinds, err_for):
    spec = schema.params_of(g.cls)
    strict = raw.strict or (column is not None and column["errorOnUnusedParam"]) \
        or (column is None and g.values.get("errorOnUnusedParam"))
    for old, new in _ALIASES:  # deprecated spellings OpenPV still reads
        if old in g.values and old not in spec and new in spec and new not in g.values:
            warnings.warn(f"{g.name}: {old} is deprecated; use {new}")
            g.values[new] = g.values.pop(old)
            g.lines[new] = g.lines.get(old, g.line)
    for pname in list(g.values):
        if pname not in spec:
            err = err_for(g, pname)(f"unknown parameter for {g.cls}", hint=suggest(pname, spec))
            if strict:
                raise err
            warnings.warn(f"{err} — ignored, as OpenPV does unless errorOnUnusedParam is set",
                          UnusedParameterWarning)
            del g.values[pname]
    values = {}
    for pname, p in spec.items():
        err = err_for(g, pname)
        if pname in g.values:
            values[pname] = _coerce(g.values[pname], p, err)
            if pname == "pvpatchAccumulateType" and values[pname]:
                v = values[pname].lower()  # OpenPV compares it case-insensitively
                # and PoolingConn reads "max pooling" and "max_pooling" as "maxpooling"
                values[pname] = v[:3] + v[4:] if len(v) >= 4 and v[3] in " _" else v
            if pname in _ANY_CASE and values[pname]:  # OpenPV lower-cases these before use
                values[pname] = {c.lower(): c for c in p.choices}.get(values[pname].lower(), values[pname])
            if p.choices and values[pname] is not None and values[pname] not in p.choices:
                raise err(f"'{values[pname]}' is not one of: {', '.join(p.choices)}",
                          hint=suggest(str(values[pname]), p.choices))
            continue
        d = p.default
        if isinstance(d, From):
            values[pname] = d  # resolved below, after every plain value is known
        elif d is REQUIRED:
            values[pname] = REQUIRED
        else:
            values[pname] = d
    for pname, v in values.items():
        if isinstance(v, From):
            values[pname] = _resolve(v, values, column, raw, g)
    _conditional(g, values, err_for)
    missing = [k for k, v in values.items() if v is REQUIRED]
    if missing:
        raise err_for(g, missing[0])(f"required parameter of {g.cls} is missing")
    return Group(g.name, g.cls, kinds[g.name], MappingProxyType(values), frozenset(g.values), g.line)


def _resolve(d, values, column, raw, g):
    src, dot, rest = d.param.partition(".")
    if not dot:
        if src == "dt" and column is not None:
            return column["dt"]
        v = values[src]
        if isinstance(v, From):
            v = _resolve(v, values, column, raw, g)
        return v + d.offset if isinstance(v, float) and d.offset else v
    # a value of another group, filled in by the reference check
    return d


def _conditional(g, values, err_for):
    """Requirements that depend on other values (facts §2.3, §4.5, §4.6)."""
    cls = g.cls
    if cls == "HyPerCol":
        if values["checkpointWrite"] and not values["checkpointWriteDir"]:
            raise err_for(g, "checkpointWriteDir")("required when checkpointWrite is true")
        if values["nbatch"] < 1:
            raise err_for(g, "nbatch")("must be at least 1")
        if values["dt"] <= 0:
            raise err_for(g, "dt")("must be positive")
        stop = values["stopTime"]
        if stop < values["dt"] / 2:
            where = err_for(g, "stopTime")(f"is {stop:g}: the run takes no step (it advances while t < stopTime)")
            warnings.warn(str(where))
    if schema.is_a(cls, "HyPerConn") and values["plasticityFlag"]:
        if values["dWMax"] is None:
            raise err_for(g, "dWMax")("required when plasticityFlag is true")
        trig, period = values["triggerLayerName"], values["weightUpdatePeriod"]
        if trig is None and period is None:
            raise err_for(g, "weightUpdatePeriod")(
                "required when plasticityFlag is true and there is no triggerLayerName")
        if trig is not None and "weightUpdatePeriod" in g.values:
            raise err_for(g, "weightUpdatePeriod")("not allowed together with triggerLayerName")
        if values["triggerOffset"] < 0:
            raise err_for(g, "triggerOffset")("must be >= 0")
        if values["combine_dW_with_W_flag"]:
            raise err_for(g, "combine_dW_with_W_flag")("the legacy combined dW/W mode is not supported")
    if cls == "FeedbackConn":
        for p in ("preLayerName", "postLayerName"):
            if p in g.values:
                what = err_for(g, p)("not read: a FeedbackConn connects its original's post and pre layers")
                warnings.warn(f"{what} — ignored, as OpenPV does", UnusedParameterWarning)
    if cls == "MomentumConn":
        method = values["momentumMethod"]
        if values["timeConstantTau"] is None:
            if values["momentumTau"] is not None:
                warnings.warn(f"{g.name}: momentumTau is deprecated; use timeConstantTau")
            else:
                values["timeConstantTau"] = {"viscosity": 100.0, "simple": 0.25, "alex": 0.9}.get(method)
        if method in ("simple", "alex") and values["timeConstantTau"] is not None \
                and not 0 <= values["timeConstantTau"] < 1:
            raise err_for(g, "timeConstantTau")(f"must be in [0, 1) for momentumMethod {method}")
    if schema.is_a(cls, "InputLayer"):
        jitter = ("maxShiftX", "maxShiftY", "xFlipEnabled", "yFlipEnabled", "xFlipToggle", "yFlipToggle")
        if "jitterChangeInterval" not in g.values:  # OpenPV refuses jitter settings without it
            given = [p for p in jitter if p in g.values]
            if given:
                raise err_for(g, given[0])("needs jitterChangeInterval set explicitly",
                                           hint="jitterChangeInterval = 0 means no jitter")
        if values["jitterChangeInterval"] < 0:
            raise err_for(g, "jitterChangeInterval")("must be >= 0 (0: no jitter)")
        for p in ("maxShiftX", "maxShiftY"):
            if values[p] < 0:
                raise err_for(g, p)("must be >= 0")
        if values["batchMethod"] != "bySpecified" and "skip_frame_index" in g.values:
            warnings.warn(f"{g.name}: skip_frame_index is only read for batchMethod bySpecified")
    if schema.is_a(cls, "AdaptiveTimeScaleProbe") and values["triggerLayerName"] is None:
        warnings.warn(f"{g.name}: without triggerLayerName the time scale never adapts, as in OpenPV "
                      f"(it stays at baseMin; name the input layer as the trigger to adapt)")


def _ref(model, g, pname, kind, raw, err_for, cls=None):
    name = g[pname]
    if name is None:
        return None
    rg = raw.group(g.name)
    target = model._index().get(name)
    if target is None or target.kind != kind or (cls and not target.is_a(cls)):
        pool = [x.name for x in model.groups if x.kind == kind and (not cls or x.is_a(cls))]
        what = f"no {cls or kind} named '{name}'"
        raise err_for(rg, pname)(what, hint=suggest(name, pool) or
                                 (f"{kind}s: {', '.join(pool)}" if pool else None))
    return target


def _check_references(model, raw, kinds, err_for):
    for g in model.groups:
        rg = raw.group(g.name)
        if g.kind == "layer":
            for p in ("triggerLayerName", "triggerResetLayerName"):
                if p in g.params:
                    _ref(model, g, p, "layer", raw, err_for)
            if g.is_a("CloneVLayer"):
                _check_original_layer(model, g, raw, err_for)
            if g.is_a("InputRegionLayer"):
                orig = _ref(model, g, "originalLayerName", "layer", raw, err_for, "InputLayer")
                if orig is None:
                    raise err_for(rg, "originalLayerName")("required: the input layer whose region is shown")
                if model.layer_size(orig) != model.layer_size(g):
                    raise err_for(rg, "originalLayerName")(
                        f"'{orig.name}' is {model.layer_size(orig)} (nx, ny, nf), this layer {model.layer_size(g)}")
                _set(g, "phase", orig["phase"])  # OpenPV's DependentPhaseParam and boundary conditions
                _set(g, "mirrorBCflag", orig["mirrorBCflag"])
            if g.is_a("MaskLayer"):
                _check_mask(model, g, raw, err_for)
            if g.is_a("SigmoidLayer") and not 0 <= g["SigmoidAlpha"] <= 1:
                raise err_for(rg, "SigmoidAlpha")(f"{g['SigmoidAlpha']} is not between 0 and 1")
            if g.is_a("DependentFirmThresholdCostLayer"):
                _check_cost_original(model, g, raw, err_for)
            if g.is_a("HyPerLCALayer"):
                _ref(model, g, "adaptiveTimeScaleProbe", "probe", raw, err_for, "AdaptiveTimeScaleProbe")
            if g.is_a("ANNLayer") and (g["verticesV"] is not None or g["verticesA"] is not None):
                vv, va = g["verticesV"] or (), g["verticesA"] or ()
                if len(vv) != len(va) or not vv:
                    raise err_for(rg, "verticesA")("verticesV and verticesA must have the same, "
                                                   "nonzero length")
        elif g.kind == "connection":
            if "originalConnName" in g.params:
                _check_original(model, g, raw, err_for)
            if g.is_a("FeedbackConn"):
                pre_name, post_name = _feedback_layers(model, g)
                _set(g, "preLayerName", pre_name)
                _set(g, "postLayerName", post_name)
            pre = _ref(model, g, "preLayerName", "layer", raw, err_for)
            post = _ref(model, g, "postLayerName", "layer", raw, err_for)
            if post.is_a("InputLayer") and g["channelCode"] >= 0:
                raise err_for(rg, "postLayerName")(f"input layer '{post.name}' cannot receive input")
            if (post.is_a("CloneVLayer") or post.is_a("InputRegionLayer")) and g["channelCode"] >= 0:
                raise err_for(rg, "postLayerName")(f"{post.cls} '{post.name}' has no input channels: it "
                                                   f"follows {post['originalLayerName']} (use channelCode = -1)")
            if "triggerLayerName" in g.params:
                _ref(model, g, "triggerLayerName", "layer", raw, err_for)
            if "nfp" in g.params:
                nfp = g["nfp"]
                if isinstance(nfp, From) or nfp < 0:  # OpenPV: a negative nfp is the post layer's nf
                    nfp = post["nf"]
                    _set(g, "nfp", nfp)
                if nfp != post["nf"]:
                    raise err_for(rg, "nfp")(f"must equal the post layer's nf ({post['nf']})")
            if g.is_a("PoolingConn") and g["needPostIndexLayer"]:
                index = _ref(model, g, "postIndexLayerName", "layer", raw, err_for, "PoolingIndexLayer")
                if index is None or model.layer_size(index) != model.layer_size(post):
                    raise err_for(rg, "postIndexLayerName")(
                        f"needPostIndexLayer needs a PoolingIndexLayer of the post layer's size "
                        f"{model.layer_size(post)}")
            if g.cls == "WTAConn":
                (px, py, _), (qx, qy, qf) = model.layer_size(pre), model.layer_size(post)
                if (px, py) != (qx, qy) or qf != 1:
                    raise err_for(rg)(f"WTAConn needs pre and post of the same nx, ny and a post of nf 1: "
                                      f"{model.layer_size(pre)} vs {model.layer_size(post)}")
            if g.cls in ("IdentConn", "RescaleConn"):
                if model.layer_size(pre) != model.layer_size(post):
                    raise err_for(rg)(f"{g.cls} needs pre and post of the same size: "
                                      f"{model.layer_size(pre)} vs {model.layer_size(post)}")
            delays = g["delay"]
            if any(d < 0 for d in delays):
                raise err_for(rg, "delay")("delays must be >= 0")
            if g["channelCode"] not in (-1, 0, 1, 2, 3, 4):
                raise err_for(rg, "channelCode")(f"{g['channelCode']} is not a channel: 0 excitatory, 1 inhibitory, "
                                                 "2 inhibitory B, 3 gap, 4 norm, -1 no delivery (OpenPV's channels)")
            if (g.params.get("normalizeMethod") == "normalizeContrastZeroMean"
                    and (g.params.get("numAxonalArbors") or 1) > 1 and not g.params.get("normalizeArborsIndividually")):
                raise err_for(rg, "normalizeArborsIndividually")(
                    "normalizeContrastZeroMean over several arbors together is refused: OpenPV steps through "
                    "the arbors' patches by a size that grows with each arbor, past their ends; set it true")
        elif g.kind == "probe":
            if "targetLayer" in g.params:
                target = _ref(model, g, "targetLayer", "layer", raw, err_for)
                _ref(model, g, "maskLayerName", "layer", raw, err_for)
                for p in ("VThresh", "VWidth"):
                    if isinstance(g.params.get(p), From):
                        _set(g, p, target[p] if target.is_a("ANNLayer") else 0.0)
                if g.cls.endswith("LCAProbe") and not target.is_a("ANNLayer"):
                    raise err_for(rg, "targetLayer")(f"{g.cls} needs an ANNLayer target (it reads VThresh)")
            if "targetName" in g.params:
                _scalar_probe_ref(model, g, "targetName", raw, err_for)
            for p in ("numerator", "denominator"):
                if p in g.params:
                    _scalar_probe_ref(model, g, p, raw, err_for)
            _ref(model, g, "energyProbe", "probe", raw, err_for, "ColumnEnergyProbe")
            _ref(model, g, "triggerLayerName", "layer", raw, err_for)


TRANSPOSABLE = ("HyPerConn", "TransposeConn", "CopyConn")  # connections with weights a TransposeConn can follow
COPYABLE = ("HyPerConn", "CopyConn")  # connections with weights of their own, which a CopyConn can copy


SCALAR_PROBES = ("ColumnEnergyProbe", "QuotientProbe", "L0NormProbe", "L1NormProbe", "L2NormProbe",
                 "FirmThresholdCostFnProbe")  # and their subclasses: one value per batch element


def _scalar_probe_ref(model, g, pname, raw, err_for):
    target = _ref(model, g, pname, "probe", raw, err_for)
    if not any(target.is_a(c) for c in SCALAR_PROBES):
        raise err_for(raw.group(g.name), pname)(
            f"'{target.name}' is a {target.cls}; it must be a probe with one value per batch element "
            f"({', '.join(SCALAR_PROBES)})")
    if target.name == g.name:
        raise err_for(raw.group(g.name), pname)("a probe cannot follow itself")
    return target


def _check_probe_loops(model, raw, err_for):
    """No probe may depend on itself through QuotientProbe operands and ColumnEnergyProbe terms."""
    probes = model.probes
    deps = {p.name: [p[k] for k in ("numerator", "denominator") if k in p.params] for p in probes}
    for p in probes:
        if p.params.get("energyProbe"):
            deps[p["energyProbe"]].append(p.name)
    state = {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            loop = path[path.index(name):] + [name]
            raise err_for(raw.group(loop[0]))("probes depend on each other in a loop: " + " -> ".join(loop))
        state[name] = "open"
        for d in deps.get(name, ()):
            visit(d, path + [name])
        state[name] = "done"

    for p in probes:
        visit(p.name, [])


def _check_original(model, g, raw, err_for):
    """originalConnName names a connection of the right kind, and the chain of originals has no loop."""
    rg = raw.group(g.name)
    orig = _ref(model, g, "originalConnName", "connection", raw, err_for)
    if g.is_a("CloneConn"):
        if not orig.is_a("HyPerConn"):
            raise err_for(rg, "originalConnName")(f"'{orig.name}' is a {orig.cls}; a CloneConn needs a HyPerConn")
        return
    if g.cls == "TransposePoolingConn":
        if not orig.is_a("PoolingConn"):
            raise err_for(rg, "originalConnName")(f"'{orig.name}' is a {orig.cls}; a TransposePoolingConn needs "
                                                  f"a PoolingConn")
        return
    if g.cls == "CopyConn":
        if not any(orig.is_a(c) for c in COPYABLE):
            raise err_for(rg, "originalConnName")(
                f"'{orig.name}' is a {orig.cls}; a CopyConn needs a connection with weights of its own "
                f"(HyPerConn, MomentumConn or CopyConn)")
    elif not any(orig.is_a(c) for c in TRANSPOSABLE):
        raise err_for(rg, "originalConnName")(
            f"'{orig.name}' is a {orig.cls}; a {g.cls} needs a connection with weights "
            f"(HyPerConn, MomentumConn, CopyConn, TransposeConn or FeedbackConn)")
    seen = [g.name]
    while "originalConnName" in orig.params:
        if orig.name in seen:
            raise err_for(rg, "originalConnName")("the originals form a loop: " + " -> ".join(seen + [orig.name]))
        seen.append(orig.name)
        orig = model.group(orig["originalConnName"])


def _check_original_layer(model, g, raw, err_for):
    """originalLayerName names a layer of the same size; a CloneVLayer's has a V; no loop of originals."""
    rg = raw.group(g.name)
    orig = _ref(model, g, "originalLayerName", "layer", raw, err_for)
    if orig is None:
        raise err_for(rg, "originalLayerName")("required: the layer this one follows")
    (ox, oy, of), (x, y, f) = model.layer_size(orig), model.layer_size(g)
    if g.is_a("BackgroundLayer"):
        rep = g["repFeatureNum"]
        if rep < 1:
            raise err_for(rg, "repFeatureNum")(f"{rep}: it must be at least 1 (1: no repetition)")
        if (ox, oy) != (x, y) or f != (of + 1) * rep:
            raise err_for(rg, "nf")(f"with '{orig.name}' of {ox}x{oy}x{of} and repFeatureNum {rep} this layer "
                                    f"must be {ox}x{oy}x{(of + 1) * rep}, not {x}x{y}x{f}")
    elif (ox, oy, of) != (x, y, f):
        raise err_for(rg, "originalLayerName")(
            f"'{orig.name}' is {model.layer_size(orig)} (nx, ny, nf), this layer is {model.layer_size(g)}: "
            f"a {g.cls} has its original's size")
    if not (g.is_a("RescaleLayer") or g.is_a("BackgroundLayer")) and not orig.is_a("HyPerLayer"):
        raise err_for(rg, "originalLayerName")(f"'{orig.name}' is a {orig.cls}, which has no V to clone")
    seen = [g.name]
    while orig is not None and orig.kind == "layer" and orig.is_a("CloneVLayer"):
        if orig.name in seen:
            raise err_for(rg, "originalLayerName")("the originals form a loop: " + " -> ".join(seen + [orig.name]))
        seen.append(orig.name)
        orig = model._index().get(orig["originalLayerName"])  # a bad name is that group's own error


def _check_mask(model, g, raw, err_for):
    """A MaskLayer's mask: a layer of its nx, ny with nf 1 or its nf; or features that exist."""
    rg = raw.group(g.name)
    if g["maskMethod"] in ("layer", "invertLayer"):
        mask = _ref(model, g, "maskLayerName", "layer", raw, err_for)
        if mask is None:
            raise err_for(rg, "maskLayerName")(f"required with maskMethod {g['maskMethod']}")
        (mx, my, mf), (x, y, f) = model.layer_size(mask), model.layer_size(g)
        if (mx, my) != (x, y) or mf not in (1, f):
            raise err_for(rg, "maskLayerName")(f"'{mask.name}' is {mx}x{my}x{mf}: a mask needs this layer's "
                                               f"{x}x{y} and nf 1 or {f}")
        return
    feats = [int(v) for v in g["featureIdxs"]]
    if not feats or any(not 0 <= v < g["nf"] for v in feats):
        raise err_for(rg, "featureIdxs")(f"{g['maskMethod']} needs features between 0 and {g['nf'] - 1}, got {feats}")


def _check_cost_original(model, g, raw, err_for):
    """A DependentFirmThresholdCostLayer's original: an ANNLayer with a plain threshold (AMin 0,
    AMax infinity, AShift 0, no vertices), as OpenPV requires."""
    rg = raw.group(g.name)
    orig = _ref(model, g, "originalLayerName", "layer", raw, err_for)
    what = None
    if orig is None or not orig.is_a("ANNLayer"):
        what = f"'{orig.name}' is a {orig.cls}: it must be an ANNLayer" if orig else "required: an ANNLayer"
    elif orig["verticesV"] is not None:
        what = f"'{orig.name}' gives verticesV/verticesA: it must give VThresh and VWidth"
    elif orig["AMax"] < 0.99 * schema.FLT_MAX or orig["AMin"] != 0 or orig["AShift"] != 0:
        what = (f"'{orig.name}' must have AMin = 0, AMax = infinity and AShift = 0 (it has {orig['AMin']}, "
                f"{orig['AMax']}, {orig['AShift']})")
    if what:
        raise err_for(rg, "originalLayerName")(what)


def _feedback_layers(model, g):
    """(pre, post) of a FeedbackConn: its original's (post, pre), following FeedbackConn originals."""
    orig = model.group(g["originalConnName"])
    if orig.is_a("FeedbackConn"):
        pre, post = _feedback_layers(model, orig)
    else:
        pre, post = orig["preLayerName"], orig["postLayerName"]
    return post, pre


def _set(group, key, value):
    d = dict(group.params)
    d[key] = value
    object.__setattr__(group, "params", MappingProxyType(d))


def _check_geometry(model, raw, err_for):
    from ..geometry import axis_map

    col = model.column
    for axis in ("nx", "ny"):  # the column's own size first: a bad one is its fault, not a layer's
        if not isinstance(col[axis], int) or col[axis] < 1:
            raise err_for(raw.groups[0], axis)(f"must be a positive integer, not {col[axis]!r}")
    for g in model.layers:
        rg = raw.group(g.name)
        for axis in ("nx", "ny"):
            size = g[axis + "Scale"] * col[axis]
            if abs(size - round(size)) > 1e-4 or round(size) < 1:
                raise err_for(rg, axis + "Scale")(
                    f"{axis}Scale*{axis} = {g[axis + 'Scale']}*{col[axis]} = {size:g} is not a "
                    f"positive integer")
        if g["nf"] < 1:
            raise err_for(rg, "nf")("must be at least 1")
    for g in model.connections:
        if "nxp" not in g.params:
            continue
        rg = raw.group(g.name)
        pre = model.layer_size(g["preLayerName"])
        post = model.layer_size(g["postLayerName"])
        for i, axis in enumerate(("x", "y")):
            try:
                axis_map(pre[i], post[i], g[f"n{axis}p"])
            except PvmpiError as e:
                raise err_for(rg, f"n{axis}p")(e.what, hint=e.hint) from None

"""Random small networks drawn from what pvmpi supports, as YAML configs with their input files.

:func:`networks` is a hypothesis strategy. Every drawn network is an LCA
core (an input, an error layer, an LCA layer with its dictionary, transpose
and clone, a reconstruction) with drawn classes, sizes, thresholds,
learning rules, triggers, delays, phases, sparse or dense outputs, plus an
optional side branch (a fixed or learning HyPerConn, shared or not, one or
two arbors with delays, into an ANNLayer or LeakyIntegrator) and a drawn set
of probes (norm probes with and without triggers, inside and outside an
energy probe, adaptive and knee time scales, stats, quotients). Layer sizes
are multiples of 4 so that several layouts of 2 and 4 ranks fit. Added
for the classes of issue 23: a CloneVLayer, SigmoidLayer, RescaleLayer or BackgroundLayer following one
of the layers, dropout in the side branch (DropoutLayer), a point-wise
layer (FirmThresholdCostLayer, DependentFirmThresholdCostLayer,
PtwiseQuotientLayer), an InputRegionLayer, a WTAConn picking V1's largest
feature, a reconstruction clone that teaches the dictionary
(PlasticCloneConn), one-to-one, co-circular, spread-over-arbors, smart and discrete random side
weights, the side weights transposed
back (shared or not), a Retina (rates or spikes), V1 pooled (PoolingConn)
into a layer that may square it (ANNSquaredLayer) and unpooled
(TransposePoolingConn, PoolingIndexLayer), contrast
normalisation (normalizeContrastZeroMean), LIF or LIFGap neurons (and a
GapLayer of them), and a MaskLayer. Later issues add their classes here.
"""
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

INF = "infinity"


@dataclass
class Inputs:
    """The input frames of a drawn network: `kind` png or pvp, [frames, ny, nx, nf] from `seed`."""

    kind: str
    frames: int
    ny: int
    nx: int
    nf: int
    seed: int

    def write(self, folder):
        """Write the frames into ``folder``; returns the inputPath (an image list or a .pvp file)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(self.seed)
        data = rng.integers(0, 256, (self.frames, self.ny, self.nx, self.nf), dtype=np.uint8)
        if self.kind == "pvp":
            from pvmpi.io import pvp

            path = folder / "frames.pvp"
            with pvp.DenseWriter(path, self.nx, self.ny, self.nf) as w:
                for k, frame in enumerate(data):
                    w.write(float(k), (frame / 255.0).astype(np.float32))
            return str(path)
        from PIL import Image

        names = []
        for k, frame in enumerate(data):
            names.append(str(folder / f"frame{k}.png"))
            Image.fromarray(frame[..., 0] if self.nf == 1 else frame).save(names[-1])
        (folder / "images.txt").write_text("\n".join(names) + "\n")
        return str(folder / "images.txt")


@dataclass
class Network:
    """A drawn network: its groups (name -> parameters, the column first) and its input frames."""

    groups: dict
    inputs: Inputs

    def spec(self):
        """The network as plain data (a regression example in tests/generated/regressions)."""
        return {"inputs": asdict(self.inputs), "groups": self.groups}

    @classmethod
    def from_spec(cls, spec):
        """The network :meth:`spec` described."""
        return cls(spec["groups"], Inputs(**spec["inputs"]))

    def yaml(self, input_path, output_path):
        """The config as YAML text, reading ``input_path`` and writing into ``output_path``."""
        import yaml

        groups = {name: dict(params) for name, params in self.groups.items()}
        groups["column"]["outputPath"] = str(output_path)
        if groups["column"].get("checkpointWrite"):
            groups["column"]["checkpointWriteDir"] = str(Path(output_path) / "Checkpoints")
        else:
            groups["column"]["lastCheckpointDir"] = str(Path(output_path) / "Last")
        groups["Input"]["inputPath"] = str(input_path)
        return yaml.safe_dump(groups, sort_keys=False)

    @property
    def nbatch(self):
        return self.groups["column"]["nbatch"]


def _maybe(draw, value, p=st.booleans()):
    return value if draw(p) else None


@st.composite
def _input_layer(draw, nbatch, ny, nx):
    kind = draw(st.sampled_from(["png", "pvp"]))
    nf = draw(st.sampled_from([1, 3])) if kind == "png" else draw(st.integers(1, 3))
    frames = draw(st.integers(2, 5))
    display = draw(st.integers(1, 3))
    g = {"class": "ImageLayer" if kind == "png" else "PvpLayer", "nf": nf, "phase": 0,
         "displayPeriod": display,
         "batchMethod": draw(st.sampled_from(["byFile", "byList", "bySpecified", "random"])),
         "normalizeLuminanceFlag": draw(st.booleans()), "normalizeStdDev": draw(st.booleans()),
         "writeStep": draw(st.sampled_from([1, display])), "initialWriteTime": 0}
    if g["batchMethod"] == "bySpecified":
        g["start_frame_index"] = draw(st.lists(st.integers(0, frames - 1), min_size=nbatch,
                                               max_size=nbatch))
        g["skip_frame_index"] = draw(st.lists(st.integers(1, 2), min_size=nbatch, max_size=nbatch))
    inputs = Inputs(kind, frames, ny, nx, nf, draw(st.integers(0, 2**31)))
    return g, inputs


@st.composite
def _lca_layer(draw):
    thresh = draw(st.sampled_from([0.05, 0.1, 0.2]))
    g = {"class": draw(st.sampled_from(["HyPerLCALayer", "MomentumLCALayer"])),
         "nxScale": 0, "nyScale": 0,  # set by the caller
         "nf": draw(st.integers(2, 4)), "VThresh": thresh, "AMin": 0,
         "AMax": draw(st.sampled_from([INF, 1.0])),
         "AShift": draw(st.sampled_from([thresh, 0.0])),  # soft or hard threshold
         # dt/tau <= 0.2 and a firm-threshold ramp of gain <= 2, as LCA networks run: a faster,
         # steeper network amplifies float32 round-off past any fixed tolerance within steps
         "VWidth": draw(st.sampled_from([0.0, thresh])),
         "timeConstantTau": draw(st.sampled_from([5.0, 10.0, 20.0])),
         "selfInteract": draw(st.booleans()), "sparseLayer": draw(st.booleans()),
         "mirrorBCflag": draw(st.booleans()), "writeStep": 1, "initialWriteTime": 0}
    if g["class"] == "MomentumLCALayer":
        g["LCAMomentumRate"] = draw(st.sampled_from([0.1, 0.5]))
    if draw(st.booleans()):
        g.update(InitVType="ConstantV", valueV=thresh)
    else:
        g.update(InitVType="UniformRandomV", minV=0.0, maxV=3 * thresh)
    return g


@st.composite
def _learning(draw):
    """Plasticity parameters: none, or a trigger (with an offset) or a period, a rate, the
    reduction mode."""
    if not draw(st.booleans()):
        return {"plasticityFlag": False}
    g = {"plasticityFlag": True, "immediateWeightUpdate": draw(st.booleans()),
         "normalizeDw": draw(st.booleans())}
    # normalizeDw false sums dW over every position and batch element: a smaller rate
    g["dWMax"] = draw(st.sampled_from([0.05, 0.5] if g["normalizeDw"] else [0.005, 0.05]))
    if draw(st.booleans()):  # dWMax shrinking: at the first update, then every interval + 1
        g.update(dWMaxDecayInterval=draw(st.sampled_from([1, 2])), dWMaxDecayFactor=0.25)
    if draw(st.booleans()):
        g.update(triggerLayerName="Input", triggerOffset=draw(st.sampled_from([0, 1])))
    else:
        g.update(weightUpdatePeriod=draw(st.sampled_from([1, 2])), initialWeightUpdateTime=0)
    return g


@st.composite
def _weights(draw, gauss2d=False):
    kinds = ["UniformRandomWeight", "GaussianRandomWeight"] + (
        ["Gauss2DWeight", "CoCircWeight", "OneToOneWeights", "IdentWeight", "OneToOneWeightsWithDelays",
         "SpreadOverArborsWeight", "SmartWeight", "DiscreteUniformRandomWeight"] if gauss2d else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "SpreadOverArborsWeight":
        return {"weightInitType": kind, "weightInit": draw(st.sampled_from([0.5, 2.0]))}
    if kind == "SmartWeight":
        return {"weightInitType": kind}
    if kind == "DiscreteUniformRandomWeight":
        return {"weightInitType": kind, "wMin": -1.0, "wMax": 1.0, "numValues": draw(st.sampled_from([2, 5]))}
    if kind == "CoCircWeight":  # one curvature per orientation: numOrientations = nf (the default)
        return {"weightInitType": kind, "sigma": draw(st.sampled_from([0.8, 2.0])),
                "rMax": draw(st.sampled_from([1.4, 3.0])), "sigmaCocirc": draw(st.sampled_from([0.3, 1.5])),
                "cocircSelf": draw(st.booleans())}
    if kind in ("OneToOneWeights", "OneToOneWeightsWithDelays"):
        return {"weightInitType": kind, "weightInit": draw(st.sampled_from([0.5, 2.0]))}
    if kind == "IdentWeight":
        return {"weightInitType": kind}
    if kind == "Gauss2DWeight":
        return {"weightInitType": kind, "sigma": draw(st.sampled_from([0.8, 2.0])),
                "rMax": draw(st.sampled_from([1.4, 3.0])), "aspect": draw(st.sampled_from([1.0, 2.0]))}
    if kind == "UniformRandomWeight":
        return {"weightInitType": kind, "wMinInit": -1.0, "wMaxInit": 1.0,
                "sparseFraction": draw(st.sampled_from([0.0, 0.5]))}
    return {"weightInitType": kind, "wGaussMean": 0.0, "wGaussStdev": 0.5}


@st.composite
def _side_branch(draw):
    """Input -> Side through a HyPerConn with margins: shared or not, 1 or 2 arbors with delays."""
    arbors = draw(st.integers(1, 2))
    patch = draw(st.sampled_from([1, 3, 5]))
    side = {"class": draw(st.sampled_from(["ANNLayer", "LeakyIntegrator", "DropoutLayer"])),
            "nf": draw(st.integers(1, 2)), "InitVType": "ZeroV",
            "sparseLayer": draw(st.booleans()), "mirrorBCflag": draw(st.booleans()),
            "writeStep": 1, "initialWriteTime": 0}
    if side["class"] == "LeakyIntegrator":
        side["integrationTime"] = draw(st.sampled_from([2.0, 10.0]))
    else:
        side.update(VThresh=draw(st.sampled_from(["-infinity", 0.1])), AMin=0.0)
    if side["class"] == "DropoutLayer":
        side["probability"] = draw(st.sampled_from([10, 50, 120]))
    conn = {"class": "HyPerConn", "preLayerName": "Input", "postLayerName": "Side",
            "channelCode": 0, "nxp": patch, "nyp": patch,
            "sharedWeights": draw(st.booleans()), "numAxonalArbors": arbors,
            "delay": [0] if arbors == 1 else draw(st.sampled_from([[0, 1], [1, 2]])),
            "updateGSynFromPostPerspective": draw(st.booleans()),
            "strength": 1.0, "writeStep": draw(st.sampled_from([-1, 1, 2])), "initialWriteTime": 0}
    conn.update(draw(_weights(gauss2d=True)))
    conn.update(draw(_learning()))
    conn["normalizeMethod"] = draw(_normalization(conn))
    if conn["normalizeMethod"] == "normalizeContrastZeroMean" and arbors > 1:
        conn["normalizeArborsIndividually"] = True  # together: refused (OpenPV walks past the patches)
    return side, conn


_FEATURE_RESCALES = ("pointmeanstd", "pointResponseNormalization", "softmax")
_RESCALES = _FEATURE_RESCALES + ("maxmin", "meanstd", "l2", "l2NoMean", "logreg", "zerotonegative")


@st.composite
def _follower(draw, groups, with_v):
    """A CloneVLayer or SigmoidLayer of a layer with V, or a RescaleLayer of any layer, with its original's size.

    The per-position rescales follow Recon, which has no margins: with margins OpenPV indexes
    those methods' buffers as if it had none (docs/openpv-migration.md, a deliberate difference).
    """
    # a PlasticCloneConn into Recon gives it the margins of its original's post (OpenPV's HebbianUpdater
    # synchronises them): then no follower that OpenPV indexes as if Recon had none
    recon_plain = groups["V1ToRecon"]["class"] != "PlasticCloneConn"
    kind = draw(st.sampled_from(["CloneVLayer", "SigmoidLayer", "RescaleLayer"]
                                + ["BackgroundLayer"] * recon_plain))
    if kind == "CloneVLayer":
        g = {"class": "CloneVLayer", "originalLayerName": draw(st.sampled_from(with_v))}
    elif kind == "BackgroundLayer":  # Recon has no margins (OpenPV indexes the original as if it had none)
        g = {"class": kind, "originalLayerName": "Recon", "repFeatureNum": draw(st.sampled_from([1, 2]))}
    elif kind == "SigmoidLayer":
        g = {"class": "SigmoidLayer", "originalLayerName": draw(st.sampled_from(with_v)), "Vrest": 0.0,
             "VthRest": draw(st.sampled_from([0.5, 1.0])), "SigmoidAlpha": draw(st.sampled_from([0.1, 0.3])),
             "SigmoidFlag": draw(st.booleans()), "InverseFlag": draw(st.booleans())}
    else:
        method = draw(st.sampled_from(_RESCALES if recon_plain else _RESCALES[len(_FEATURE_RESCALES):]))
        g = {"class": "RescaleLayer", "rescaleMethod": method,
             "originalLayerName": "Recon" if method in _FEATURE_RESCALES else
             draw(st.sampled_from(["Input"] + with_v))}
        if method == "maxmin":
            g.update(targetMax=draw(st.sampled_from([1.0, 3.0])), targetMin=-1.0)
        if method in ("meanstd", "pointmeanstd"):
            g.update(targetMean=draw(st.sampled_from([0.0, 0.5])), targetStd=draw(st.sampled_from([1.0, 2.0])))
        if method in ("l2", "l2NoMean"):
            g["patchSize"] = draw(st.sampled_from([1, 4]))
    orig = groups[g["originalLayerName"]]
    nf = orig.get("nf", 1)
    g.update(nxScale=orig.get("nxScale", 1.0), nyScale=orig.get("nyScale", 1.0),
             nf=(nf + 1) * g["repFeatureNum"] if kind == "BackgroundLayer" else nf,
             phase=draw(st.integers(0, 4)), writeStep=1, initialWriteTime=0)
    if draw(st.integers(0, 2)) == 0:
        g.update(triggerLayerName="Input", triggerOffset=0)
    return g


@st.composite
def _pointwise(draw, groups):
    """A FirmThresholdCostLayer (or a DependentFirmThresholdCostLayer of an ANNLayer side branch)
    of the input, or a PtwiseQuotientLayer of the error over a ConstantLayer; groups to add."""
    nf = groups["Input"]["nf"]
    side = groups.get("Side", {})
    kind = draw(st.sampled_from(["cost", "quotient"] + (["dependent"] if side.get("class") in (
        "ANNLayer", "DropoutLayer") else [])))
    layer = {"nf": nf, "phase": draw(st.integers(1, 4)), "InitVType": "ZeroV", "writeStep": 1,
             "initialWriteTime": 0}
    if kind == "quotient":
        layer["class"] = "PtwiseQuotientLayer"
        return {"Divisor": {"class": "ConstantLayer", "nf": nf, "InitVType": "ConstantV",
                            "valueV": draw(st.sampled_from([0.5, 2.0])), "writeStep": -1},
                "Ratio": layer,
                "ErrorToRatio": {"class": "IdentConn", "channelCode": 0},
                "DivisorToRatio": {"class": "IdentConn", "channelCode": 1}}
    if kind == "cost":
        layer.update({"class": "FirmThresholdCostLayer", "VThresh": draw(st.sampled_from([0.1, 0.5])),
                      "VWidth": draw(st.sampled_from([0.0, 0.25]))})
    else:
        layer.update({"class": "DependentFirmThresholdCostLayer", "originalLayerName": "Side"})
    return {"Cost": layer, "InputToCost": {"class": "IdentConn", "channelCode": 0}}


@st.composite
def _normalization(draw, conn):
    """normalizeMethod for a connection: learning weights are always normalised (by L2, or by
    their sum when they are nonnegative), as learning networks are: an unnormalised learning
    connection grows without bound and turns float32 round-off into any difference."""
    nonnegative = conn["weightInitType"] in ("Gauss2DWeight", "CoCircWeight")
    methods = ["normalizeL2"] + (["normalizeSum"] if nonnegative else [])
    if not conn["plasticityFlag"]:
        methods += ["none", "normalizeContrastZeroMean"] + ([] if nonnegative else ["normalizeSum"])
    return draw(st.sampled_from(methods))


_NORM_PROBES = ["L2NormProbe", "L1NormProbe", "L0NormProbe", "L1NormLCAProbe", "L0NormLCAProbe",
                "FirmThresholdCostFnProbe", "FirmThresholdCostFnLCAProbe", "StatsProbe",
                "RequireAllZeroActivityProbe"]
_VECTOR_PROBES = ("StatsProbe", "RequireAllZeroActivityProbe")  # no single value: no energy term


@st.composite
def _probe(draw, name, layers, energy):
    cls = draw(st.sampled_from(_NORM_PROBES))
    lca_only = cls in ("L1NormLCAProbe", "L0NormLCAProbe", "FirmThresholdCostFnLCAProbe")
    target = "V1" if lca_only else draw(st.sampled_from(layers))
    g = {"class": cls, "targetLayer": target, "probeOutputFile": f"{name}.txt"}
    if draw(st.booleans()):
        g.update(triggerLayerName="Input", triggerOffset=draw(st.sampled_from([0, 1])))
    if cls == "L2NormProbe":
        g["exponent"] = draw(st.sampled_from([1.0, 2.0]))
    if cls in ("L0NormProbe",) + _VECTOR_PROBES:
        g["nnzThreshold"] = draw(st.sampled_from([0.0, 0.05]))
    if cls == "StatsProbe":
        g["buffer"] = draw(st.sampled_from(["Activity", "MembranePotential"]))
    if cls == "RequireAllZeroActivityProbe":  # records; a run that saw activity ends in failure
        g.update(exitOnFailure=False, immediateExitOnFailure=False)
    if cls not in _VECTOR_PROBES and draw(st.integers(0, 4)) == 0:  # read, never applied (OpenPV)
        g["maskLayerName"] = draw(st.sampled_from(layers))
    if cls.startswith("FirmThreshold") and target != "V1":
        g.update(VThresh=0.1, VWidth=0.05)
    if energy and cls not in _VECTOR_PROBES and draw(st.booleans()):
        g.update(energyProbe="Energy", coefficient=draw(st.sampled_from([0.5, 1.0])))
    return g


@st.composite
def networks(draw, oracle=False):
    """A drawn :class:`Network` (see the module's docstring); ``oracle``: only what OpenPV computes as pvmpi
    does or is documented to differ (no max unpooling: OpenPV misplaces it where the pooled layer has margins)."""
    nbatch = draw(st.sampled_from([1, 1, 2, 2, 3, 4]))
    ny, nx = draw(st.sampled_from([8, 16])), draw(st.sampled_from([8, 16]))
    col = {"class": "HyPerCol", "nx": nx, "ny": ny, "nbatch": nbatch, "dt": 1,
           "stopTime": draw(st.integers(3, 8)), "progressInterval": 100,
           "randomSeed": draw(st.integers(10_000_000, 2**31 - 1)),
           "errorOnNotANumber": True, "checkpointWrite": draw(st.booleans())}
    if col["checkpointWrite"]:
        col["checkpointWriteStepInterval"] = draw(st.integers(1, 3))
    inp, inputs = draw(_input_layer(nbatch, ny, nx))
    scale = draw(st.sampled_from([0.5, 1.0]))
    v1 = draw(_lca_layer())
    v1["nxScale"] = v1["nyScale"] = scale
    p_err, p_v1, p_rec = draw(st.sampled_from([(1, 2, 3), (1, 1, 1), (2, 1, 3), (1, 2, 1)]))
    v1["phase"] = p_v1
    err_class = draw(st.sampled_from(["HyPerLayer", "ANNErrorLayer"]))
    err = {"class": err_class, "nf": inp["nf"], "phase": p_err, "InitVType": "ZeroV",
           "sparseLayer": False, "mirrorBCflag": draw(st.booleans()),
           "writeStep": 1, "initialWriteTime": 0}
    if err_class == "ANNErrorLayer":
        err["errScale"] = draw(st.sampled_from([1.0, 0.5]))
    recon = {"class": "HyPerLayer", "nf": inp["nf"], "phase": p_rec, "InitVType": "ZeroV",
             "writeStep": draw(st.sampled_from([1, 2])), "initialWriteTime": 0}
    many = int(round(1 / scale))
    patch = draw(st.sampled_from([2, 4, 6] if many == 2 else [1, 3, 5]))
    dictionary = {"class": draw(st.sampled_from(["HyPerConn", "MomentumConn"])),
                  "preLayerName": "V1", "postLayerName": "Error", "channelCode": -1,
                  "nxp": patch, "nyp": patch, "sharedWeights": True, "strength": 1.0,
                  "writeStep": draw(st.sampled_from([1, 2, -1])), "initialWriteTime": 0}
    dictionary.update(draw(_weights()))
    dictionary.update(draw(_learning()))
    dictionary["normalizeMethod"] = draw(_normalization(dictionary))
    if dictionary["class"] == "MomentumConn":
        dictionary["momentumMethod"] = draw(st.sampled_from(["viscosity", "simple", "alex"]))
        dictionary["timeConstantTau"] = {"viscosity": 5.0, "simple": 0.25, "alex": 0.9}[
            dictionary["momentumMethod"]]
    groups = {"column": col, "Input": inp, "Error": err, "V1": v1, "Recon": recon,
              "InputToError": {"class": "IdentConn", "channelCode": 0,
                               "delay": [draw(st.sampled_from([0, 0, 1]))]},
              "V1ToError": dictionary,
              "ErrorToV1": {"class": "TransposeConn", "channelCode": 0,
                            "originalConnName": "V1ToError",
                            "updateGSynFromPostPerspective": draw(st.booleans()),
                            "writeStep": draw(st.sampled_from([-1, 1, 2])), "initialWriteTime": 0},
              "V1ToRecon": {"class": "CloneConn", "channelCode": 0, "originalConnName": "V1ToError",
                            "writeStep": -1}}
    if draw(st.integers(0, 3)) == 0:  # the reconstruction also teaches the dictionary (V1 x Recon)
        groups["V1ToRecon"]["class"] = "PlasticCloneConn"
    elif draw(st.booleans()):  # a CopyConn instead: its own copy of the weights, under its own normalizer
        groups["V1ToRecon"].update({"class": "CopyConn", "strength": draw(st.sampled_from([1.0, 2.0])),
                                    "normalizeMethod": draw(_normalization(dictionary)),
                                    "writeStep": draw(st.sampled_from([-1, 1])), "initialWriteTime": 0})
    if draw(st.booleans()):
        groups["ReconToError"] = {"class": "IdentConn", "channelCode": 1}
    else:
        groups["ReconToError"] = {"class": "RescaleConn", "channelCode": 1,
                                  "scale": draw(st.sampled_from([0.5, 1.0]))}
    layers = ["Error", "V1", "Recon"]
    if draw(st.booleans()):
        side, conn = draw(_side_branch())
        side["phase"] = draw(st.integers(1, 3))
        groups["Side"], groups["InputToSide"] = side, conn
        layers.append("Side")
        if draw(st.integers(0, 2)) == 0:  # the side branch's weights transposed back (shared or not)
            groups["SideBack"] = {"class": "HyPerLayer", "nf": inp["nf"], "phase": 4, "InitVType": "ZeroV",
                                  "writeStep": 1, "initialWriteTime": 0}
            groups["SideToSideBack"] = {"class": "TransposeConn", "originalConnName": "InputToSide",
                                        "channelCode": 0, "writeStep": draw(st.sampled_from([-1, 1])),
                                        "initialWriteTime": 0}
    if draw(st.integers(0, 2)) == 0:
        groups["Follower"] = draw(_follower(groups, [n for n in layers if n != "Input"]))
    if draw(st.integers(0, 2)) == 0:
        groups.update(draw(_pointwise(groups)))
    # winner take all over V1's features; one batch element only: OpenPV's WTAConn strides the post buffer
    # by the pre layer's nf and writes past it for the second element (docs/openpv-migration.md)
    if nbatch == 1 and draw(st.integers(0, 3)) == 0:
        groups["Winner"] = {"class": "HyPerLayer", "nf": 1, "nxScale": v1["nxScale"], "nyScale": v1["nyScale"],
                            "phase": draw(st.integers(1, 4)), "InitVType": "ZeroV", "writeStep": 1,
                            "initialWriteTime": 0}
        groups["V1ToWinner"] = {"class": "WTAConn", "channelCode": 0, "delay": [draw(st.sampled_from([0, 1]))]}
    if draw(st.integers(0, 3)) == 0:  # a Retina of the input, inhibited by the reconstruction
        # spiking only with one batch element: OpenPV's spiking Retina mixes up the batch elements'
        # refractory clocks (docs/openpv-migration.md), so beyond one it cannot be compared
        retina = {"class": "Retina", "nf": inp["nf"], "phase": draw(st.integers(1, 4)),
                  "spikingFlag": nbatch == 1 and draw(st.booleans()),
                  "foregroundRate": draw(st.sampled_from([200.0, 1000.0])),
                  "backgroundRate": draw(st.sampled_from([0.0, 50.0])),
                  "burstFreq": draw(st.sampled_from([1.0, 40.0])),
                  "burstDuration": draw(st.sampled_from([-1.0, 20.0, 1000.0])),
                  "refractoryPeriod": draw(st.sampled_from([0.0, 4.0])),
                  "absRefractoryPeriod": draw(st.sampled_from([0.0, 2.0])), "writeStep": 1, "initialWriteTime": 0}
        groups["Retina"] = retina
        groups["InputToRetina"] = {"class": "IdentConn", "channelCode": 0}
        if draw(st.booleans()):
            groups["ReconToRetina"] = {"class": "IdentConn", "channelCode": 1}
    if draw(st.integers(0, 3)) == 0:  # V1 pooled (max, sum or mean), maybe squared
        shrink = draw(st.sampled_from([1, 2]))  # a neighbourhood max/sum, or 2x2 blocks
        groups["Pooled"] = {"class": draw(st.sampled_from(["HyPerLayer", "ANNSquaredLayer"])), "nf": v1["nf"],
                            "nxScale": v1["nxScale"] / shrink, "nyScale": v1["nyScale"] / shrink,
                            "phase": draw(st.integers(1, 4)), "InitVType": "ZeroV", "writeStep": 1,
                            "initialWriteTime": 0}
        pooling = {"class": "PoolingConn", "channelCode": 0,
                   "pvpatchAccumulateType": draw(st.sampled_from(["maxpooling", "sumpooling", "avgpooling"])),
                   "nxp": draw(st.sampled_from([1, 3])), "nyp": draw(st.sampled_from([1, 3])),
                   "updateGSynFromPostPerspective": draw(st.booleans())}
        if pooling["pvpatchAccumulateType"] == "maxpooling" and v1.get("sparseLayer"):
            # pre-perspective max pooling walks a sparse layer's active neurons only: a pool with none is -inf
            # (in OpenPV too), which pvmpi's guard stops at; gather from the post perspective instead
            pooling["updateGSynFromPostPerspective"] = True
        if pooling["updateGSynFromPostPerspective"]:
            pooling["nyp"] = pooling["nxp"]  # OpenPV's post-perspective pooling needs a square patch
        groups["V1ToPooled"] = pooling
        if draw(st.booleans()):  # and back: unpooled into a layer of V1's size (max: through the winners)
            if pooling["pvpatchAccumulateType"] == "maxpooling":
                pooling.update(needPostIndexLayer=True, postIndexLayerName="Winners")
                groups["Winners"] = {k: groups["Pooled"][k] for k in ("nf", "nxScale", "nyScale", "phase")}
                groups["Winners"].update({"class": "PoolingIndexLayer", "InitVType": "ZeroV", "writeStep": 1,
                                          "initialWriteTime": 0})
            if not (oracle and pooling["pvpatchAccumulateType"] == "maxpooling"):
                groups["Unpooled"] = {"class": "HyPerLayer", "nf": v1["nf"], "nxScale": v1["nxScale"],
                                      "nyScale": v1["nyScale"], "phase": 4, "InitVType": "ZeroV", "writeStep": 1,
                                      "initialWriteTime": 0}
                groups["PooledToUnpooled"] = {"class": "TransposePoolingConn", "originalConnName": "V1ToPooled",
                                              "channelCode": 0}
    if draw(st.integers(0, 3)) == 0:  # leaky integrate-and-fire neurons (noise drawn)
        # driven by V1's activity (>= 0): a conductance must not turn negative, or V is not finite
        lif = {"class": draw(st.sampled_from(["LIF", "LIFGap"])), "nf": v1["nf"], "nxScale": v1["nxScale"],
               "nyScale": v1["nyScale"], "phase": draw(st.integers(1, 4)),
               "InitVType": "ConstantV", "valueV": -70.0, "tau": draw(st.sampled_from([5.0, 15.0])),
               "noiseAmpE": draw(st.sampled_from([0.0, 0.5])), "noiseFreqE": draw(st.sampled_from([0.0, 250.0])),
               "noiseAmpI": 0.25, "noiseFreqI": draw(st.sampled_from([0.0, 2000.0])), "method": "arma",
               "writeStep": 1, "initialWriteTime": 0}
        groups["Spiking"] = lif
        groups["V1ToSpiking"] = {"class": "RescaleConn", "channelCode": 0, "scale": draw(st.sampled_from([4.0, 20.0]))}
        if draw(st.booleans()):  # what its gap junctions would pass on
            groups["Spikelets"] = {"class": "GapLayer", "originalLayerName": "Spiking", "nf": v1["nf"],
                                   "nxScale": v1["nxScale"], "nyScale": v1["nyScale"],
                                   "ampSpikelet": draw(st.sampled_from([5.0, 50.0])), "writeStep": 1,
                                   "initialWriteTime": 0, "phase": 4}
        if lif["class"] == "LIFGap":  # V1 as gap input too: the gap strength is the connection's scale
            groups["SpikingGap"] = {"class": "RescaleConn", "preLayerName": "V1", "postLayerName": "Spiking",
                                    "channelCode": 3, "scale": 0.25}
    if draw(st.integers(0, 3)) == 0:  # the input masked by the error's activity or on a feature
        masked = {"class": "MaskLayer", "nf": inp["nf"], "phase": draw(st.integers(1, 4)), "InitVType": "ZeroV",
                  "writeStep": 1, "initialWriteTime": 0,
                  "maskMethod": draw(st.sampled_from(["layer", "invertLayer", "maskFeatures", "noMaskFeatures"]))}
        if masked["maskMethod"] in ("layer", "invertLayer"):
            masked["maskLayerName"] = "Error"
        else:
            masked["featureIdxs"] = [0]
        groups["Masked"] = masked
        groups["InputToMasked"] = {"class": "IdentConn", "channelCode": 0}
    if draw(st.integers(0, 3)) == 0:  # where the input shows image data
        groups["Region"] = {"class": "InputRegionLayer", "originalLayerName": "Input", "nf": inp["nf"],
                            "writeStep": 1, "initialWriteTime": 0}
    energy = draw(st.booleans())
    if energy:  # the LCA energy: half the error's squared norm, plus whatever probes join it
        groups["Energy"] = {"class": "ColumnEnergyProbe", "probeOutputFile": "Energy.txt"}
        groups["ErrorL2"] = {"class": "L2NormProbe", "targetLayer": "Error", "exponent": 2.0,
                             "coefficient": 0.5, "energyProbe": "Energy",
                             "probeOutputFile": "ErrorL2.txt"}
        if draw(st.booleans()):
            groups["ErrorL2"].update(triggerLayerName="Input", triggerOffset=0)
    names = [f"Probe{k}" for k in range(draw(st.integers(0, 5)))]
    for name in names:
        groups[name] = draw(_probe(name, layers, energy))
    if energy:
        if draw(st.booleans()):
            ts = {"class": draw(st.sampled_from(["AdaptiveTimeScaleProbe", "KneeTimeScaleProbe"])),
                  "targetName": "Energy", "probeOutputFile": "TimeScale.txt",
                  "baseMax": draw(st.sampled_from([0.1, 1.0])), "baseMin": 0.05,
                  "tauFactor": draw(st.sampled_from([0.03, 0.1])), "growthFactor": 1.01}
            if ts["class"] == "KneeTimeScaleProbe":
                ts.update(kneeThresh=0.5, kneeSlope=0.1)
            if draw(st.booleans()):
                ts.update(triggerLayerName="Input", triggerOffset=0)
            groups["TimeScale"] = ts
            v1["adaptiveTimeScaleProbe"] = "TimeScale"
    scalar = [n for n in names if groups[n]["class"] not in _VECTOR_PROBES]
    if energy and draw(st.booleans()):  # as OpenPV's tutorials use it: a share of the energy
        # (a denominator that can come near 0, such as a sparse layer's L1 norm, turns round-off
        # into any relative difference: that is the quotient's arithmetic, not the layout's)
        groups["Quotient"] = {"class": "QuotientProbe", "numerator": draw(st.sampled_from(
                                  scalar + ["ErrorL2"])), "denominator": "Energy",
                              "probeOutputFile": "Quotient.txt", "message": "share"}  # OpenPV crashes without one
    return Network(groups, inputs)

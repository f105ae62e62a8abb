"""The parameter schema: every class pvmpi knows, every parameter, its default.

This table is the single source of truth for defaults (facts §2.3, §3, §4,
§5). A params file and its YAML form name the same classes and parameters
with OpenPV's spelling; the model layer validates a config against this
table and fills in the defaults. The parameter reference in docs/ is
generated from it.
"""
from dataclasses import dataclass

FLT_MAX = 3.4028234663852886e38  # OpenPV's "infinity"


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class From:
    """A default taken from another parameter of the same group (AMin = VThresh)."""

    param: str
    offset: float = 0.0


@dataclass(frozen=True)
class Param:
    """One parameter: OpenPV's name, its type, default, unit, allowed values and meaning."""

    name: str
    kind: str  # "float", "int", "bool", "str", "array", "strarray"
    default: object = REQUIRED
    doc: str = ""
    unit: str = ""
    choices: tuple = ()
    origin: str = "OpenPV"  # or "pvmpi"
    ignored: bool = False  # accepted for compatibility, has no effect


@dataclass(frozen=True)
class ClassSpec:
    """One class of the schema: its kind, meaning, own parameters and parent class."""

    name: str
    kind: str  # "column", "layer", "connection", "probe"
    doc: str
    params: tuple = ()
    parent: str = None
    abstract: bool = False


CLASSES = {}


def _cls(name, kind, doc, params=(), parent=None, abstract=False):
    CLASSES[name] = ClassSpec(name, kind, doc, tuple(params), parent, abstract)


P = Param

# ---------------------------------------------------------------- HyPerCol
_cls("HyPerCol", "column", "The column: global size, batch, time step and run length.", [
    P("nx", "int", doc="Column width; a layer's width is nxScale*nx.", unit="pixels"),
    P("ny", "int", doc="Column height; a layer's height is nyScale*ny.", unit="pixels"),
    P("nbatch", "int", 1, "Global batch size: independent networks sharing the weights."),
    P("dt", "float", 1.0, "Time step.", unit="time"),
    P("stopTime", "float", 0.0, "The run advances while t < stopTime - dt/2.", unit="time"),
    P("progressInterval", "float", 1.0, "Simulated time between progress messages.", unit="time"),
    P("writeProgressToErr", "bool", False, "Progress messages go to stderr instead of stdout."),
    P("printParamsFilename", "str", "pv.params", "Name of the cleaned params copy in outputPath."),
    P("randomSeed", "int", 0, "Seed of every random initialisation (>= 10000000); 0: from the clock. "
      "The -s/--seed option overrides it."),
    P("errorOnUnusedParam", "bool", False, "Unused parameters are errors instead of warnings."),
    P("errorOnNotANumber", "bool", False,
      "Also check membrane potentials V for NaN/Inf each step (activity A is always checked: "
      "the run stops at the first non-finite step)."),
    P("outputPath", "str", "output", "Directory of all outputs; -o overrides it."),
    P("verifyWrites", "bool", True, "Read-back verification of writes (OpenPV); pvmpi writes through "
      "checked numpy I/O instead.", ignored=True),
    P("checkpointWrite", "bool", False, "Write checkpoints during the run."),
    P("checkpointWriteDir", "str", None, "Directory of checkpoints (required if checkpointWrite)."),
    P("checkpointWriteTriggerMode", "str", "step", "When to checkpoint.", choices=("step", "time", "clock")),
    P("checkpointWriteStepInterval", "int", 1, "Steps between checkpoints (mode step).", unit="steps"),
    P("checkpointWriteTimeInterval", "float", 1.0, "Time between checkpoints (mode time).", unit="time"),
    P("checkpointWriteClockInterval", "float", None, "Wall-clock interval (mode clock)."),
    P("checkpointWriteClockUnit", "str", "seconds", "Unit of checkpointWriteClockInterval."),
    P("checkpointIndexWidth", "int", -1, "Zero-padding of Checkpoint<step>; -1: digits of the final step."),
    P("checkpointFormat", "str", "openpv", "Checkpoint files: OpenPV's (OpenPV continues from them) "
      "or one HDF5 file.", choices=("openpv", "hdf5"), origin="pvmpi"),
    P("suppressNonplasticCheckpoints", "bool", False, "Skip constant data in checkpoints."),
    P("deleteOlderCheckpoints", "bool", False, "Keep only the newest numCheckpointsKept checkpoints."),
    P("numCheckpointsKept", "int", 1, "How many checkpoints deleteOlderCheckpoints keeps."),
    P("lastCheckpointDir", "str", None, "Where the final state goes when checkpointWrite is false."),
    P("initializeFromCheckpointDir", "str", "", "Objects flagged initializeFromCheckpointFlag start "
      "from this checkpoint."),
])

# ---------------------------------------------------------------- layers
_LAYER_BASE = [
    P("nxScale", "float", 1.0, "Layer width / column width (a power of 2)."),
    P("nyScale", "float", 1.0, "Layer height / column height (a power of 2)."),
    P("nf", "int", 1, "Number of features."),
    P("phase", "int", 0, "Update phase within a step; lower phases update first."),
    P("mirrorBCflag", "bool", False, "Fill the halo at the global edge by mirroring."),
    P("valueBC", "float", 0.0, "Read but never applied by OpenPV (the halo stays 0).", ignored=True),
    P("writeStep", "float", From("dt"), "Time between output frames; < 0: never.", unit="time"),
    P("initialWriteTime", "float", 0.0, "Time of the first output frame.", unit="time"),
    P("sparseLayer", "bool", False, "Write output as sparse values (PVP type 6) and deliver from "
      "active lists."),
    P("updateGpu", "bool", False, "Update on the GPU where the backend has one (never changes results)."),
    P("dataType", "str", None, "Obsolete in OpenPV.", ignored=True),
    P("initializeFromCheckpointFlag", "bool", False, "Load state from initializeFromCheckpointDir."),
]
_cls("BaseLayer", "layer", "Geometry and output parameters every layer has.", _LAYER_BASE, abstract=True)

_TRIGGER = [
    P("triggerLayerName", "str", None, "Update only when this layer updates."),
    P("triggerOffset", "float", 0.0, "Trigger when the trigger layer updates at t + offset.", unit="time"),
]

_cls("HyPerLayer", "layer",
     "A layer with membrane potential V and activity A = V, V = sum of channel inputs.", [
         P("InitVType", "str", "ConstantV", "How V starts.",
           choices=("ConstantV", "ZeroV", "UniformRandomV", "GaussianRandomV", "DiscreteUniformRandomV",
                    "InitVFromFile")),
         P("valueV", "float", -70.0, "Initial V (ConstantV)."),
         P("minV", "float", 0.0, "Lower bound (UniformRandomV, DiscreteUniformRandomV)."),
         P("maxV", "float", From("minV", 1.0), "Upper bound (UniformRandomV); the standard "
           "deviation for GaussianRandomV (OpenPV's naming)."),
         P("meanV", "float", 0.0, "Mean (GaussianRandomV)."),
         P("numValues", "int", 2, "Number of levels (DiscreteUniformRandomV)."),
         P("Vfilename", "str", None, "PVP file of the initial V (InitVFromFile)."),
         P("frameNumber", "int", 0, "Frame of Vfilename (InitVFromFile)."),
         *_TRIGGER,
         P("triggerBehavior", "str", "updateOnlyOnTrigger", "What a trigger does.",
           choices=("updateOnlyOnTrigger", "resetStateOnTrigger", "ignore")),
         P("triggerResetLayerName", "str", None, "Layer whose V (or A) resets this V "
           "(resetStateOnTrigger); default the trigger layer."),
         P("channelIndices", "array", (), "Channels whose coefficient channelCoefficients overrides."),
         P("channelCoefficients", "array", (), "Coefficients of the channels in channelIndices "
           "(default 1 for channel 0, -1 for channel 1)."),
     ], parent="BaseLayer")

_cls("ANNLayer", "layer", "HyPerLayer with OpenPV's piecewise-linear transfer function A = f(V).", [
    P("VThresh", "float", -FLT_MAX, "Below VThresh, A = AMin; -infinity: no threshold."),
    P("AMin", "float", From("VThresh"), "Activity below threshold."),
    P("AMax", "float", FLT_MAX, "Activity is clipped at AMax."),
    P("AShift", "float", 0.0, "A = V - AShift above threshold (AShift = VThresh: soft threshold)."),
    P("VWidth", "float", 0.0, "Width of the linear ramp above VThresh (firm threshold)."),
    P("verticesV", "array", None, "Piecewise-linear transfer: V of the vertices."),
    P("verticesA", "array", None, "Piecewise-linear transfer: A of the vertices."),
    P("slopeNegInf", "float", 1.0, "Slope left of the first vertex."),
    P("slopePosInf", "float", 1.0, "Slope right of the last vertex."),
], parent="HyPerLayer")

_cls("ANNErrorLayer", "layer", "Error layer: V = errScale * (exc - inh), then the transfer function.", [
    P("errScale", "float", 1.0, "Scale of the error."),
], parent="ANNLayer")

_cls("HyPerLCALayer", "layer", "LCA sparse-coding layer (facts §3.7).", [
    P("timeConstantTau", "float", 1.0, "Membrane time constant tau.", unit="time"),
    P("selfInteract", "bool", True, "Add the layer's own activity to its input (the LCA '+a' term)."),
    P("adaptiveTimeScaleProbe", "str", None, "AdaptiveTimeScaleProbe giving the per-batch-element "
      "time scale; default dt."),
], parent="ANNLayer")

_cls("MomentumLCALayer", "layer", "HyPerLCALayer whose V also carries LCAMomentumRate times the previous drive.", [
    P("LCAMomentumRate", "float", 0.0, "Weight of the previous step's drive (1-e)(G + selfInteract*A)."),
], parent="HyPerLCALayer")

_cls("LeakyIntegrator", "layer", "ANNLayer integrating its input: V = V*exp(-dt/integrationTime) + G.", [
    P("integrationTime", "float", FLT_MAX, "Leak time constant; infinity: no leak.", unit="time"),
], parent="ANNLayer")

_cls("DropoutLayer", "layer", "ANNLayer whose activity drops to 0 at each update with a probability, "
     "neuron by neuron (OpenPV's random streams).", [
    P("probability", "int", 0, "Percent chance, 0 to 99, that a neuron's A is set to 0 at an update; "
      "values outside 0..99 act as 99 (OpenPV's rule).", unit="percent"),
], parent="ANNLayer")

_cls("LIF", "layer", "Leaky integrate-and-fire neurons with excitatory, inhibitory and slow inhibitory "
     "(channel 2) conductances, a moving threshold and noise (OpenPV's per-neuron random streams); A = spikes.", [
    P("Vrest", "float", -70.0, "Resting potential; V after a spike."),
    P("Vexc", "float", 0.0, "Reversal potential of the excitatory conductance."),
    P("Vinh", "float", -75.0, "Reversal potential of the inhibitory conductance."),
    P("VinhB", "float", -90.0, "Reversal potential of the slow inhibitory conductance."),
    P("VthRest", "float", -55.0, "Resting threshold."),
    P("tau", "float", 20.0, "Membrane time constant.", unit="ms"),
    P("tauVth", "float", 10.0, "Time constant of the threshold's return to VthRest.", unit="ms"),
    P("deltaVth", "float", 5.0, "Threshold jump at a spike."),
    P("deltaGIB", "float", 1.0, "Slow inhibitory conductance jump at a spike."),
    P("tauE", "float", 1.0, "Decay time of the excitatory conductance.", unit="ms"),
    P("tauI", "float", 5.0, "Decay time of the inhibitory conductance.", unit="ms"),
    P("tauIB", "float", 10.0, "Decay time of the slow inhibitory conductance.", unit="ms"),
    P("noiseAmpE", "float", 0.0, "Largest excitatory noise conductance."),
    P("noiseAmpI", "float", 0.0, "Largest inhibitory noise conductance."),
    P("noiseAmpIB", "float", 0.0, "Largest slow inhibitory noise conductance."),
    P("noiseFreqE", "float", 250.0, "Rate of excitatory noise events (at most 1000/dt).", unit="Hz"),
    P("noiseFreqI", "float", 250.0, "Rate of inhibitory noise events (at most 1000/dt).", unit="Hz"),
    P("noiseFreqIB", "float", 250.0, "Rate of slow inhibitory noise events (at most 1000/dt).", unit="Hz"),
    P("method", "str", "arma", "Integration: arma (OpenPV's beginning and original are deprecated and "
      "refused)."),
], parent="HyPerLayer")

_cls("LIFGap", "layer", "LIF with gap junctions: channel 3's input and its connections' total weight (the "
     "gap strength) join the membrane equation.", parent="LIF")

_cls("ANNSquaredLayer", "layer", "ANNLayer whose V is the square of its excitatory input (other channels "
     "are not used).", parent="ANNLayer")

_cls("PtwiseQuotientLayer", "layer", "HyPerLayer whose V is the excitatory input divided by the inhibitory "
     "one, neuron by neuron (channelIndices and channelCoefficients are not used).", parent="HyPerLayer")

_cls("MaskLayer", "layer", "ANNLayer whose activity is zeroed by a mask: where maskLayerName's activity is 0 "
     "(or, inverted, where it is not), or on chosen features.", [
    P("maskMethod", "str", doc="layer, invertLayer (by maskLayerName), maskFeatures or noMaskFeatures "
      "(by featureIdxs).", choices=("layer", "invertLayer", "maskFeatures", "noMaskFeatures")),
    P("maskLayerName", "str", None, "The mask layer (layer, invertLayer): the same nx, ny; nf 1 or this nf."),
    P("featureIdxs", "array", (), "Features zeroed (maskFeatures) or kept (noMaskFeatures)."),
], parent="ANNLayer")

_cls("PoolingIndexLayer", "layer", "HyPerLayer holding, for each neuron of a max-pooled layer, the global "
     "extended index of the pre neuron that won its pool (written by the PoolingConn naming it in "
     "postIndexLayerName; -1: none).", parent="HyPerLayer")

_cls("PtwiseProductLayer", "layer", "HyPerLayer whose V is the excitatory input times the inhibitory one, "
     "neuron by neuron (channelIndices and channelCoefficients are not used).", parent="HyPerLayer")

_cls("FirmThresholdCostLayer", "layer", "HyPerLayer whose A is the firm-threshold cost of V: "
     "|V|(1 - |V|/(2w)) up to w = VThresh + VWidth, w/2 beyond.", [
    P("VThresh", "float", doc="Threshold of the cost function."),
    P("VWidth", "float", 0.0, "Width of the cost's ramp beyond VThresh."),
], parent="HyPerLayer")

_cls("DependentFirmThresholdCostLayer", "layer", "FirmThresholdCostLayer taking VThresh and VWidth from "
     "originalLayerName, an ANNLayer with AMin = 0, AMax = infinity and AShift = 0.", [
    P("originalLayerName", "str", doc="The ANNLayer whose VThresh and VWidth the cost uses."),
    P("VThresh", "float", 0.0, "Not used: the original's VThresh.", ignored=True),
    P("VWidth", "float", 0.0, "Not used: the original's VWidth.", ignored=True),
], parent="FirmThresholdCostLayer")

_cls("ConstantLayer", "layer", "A HyPerLayer that keeps its initial state (it never updates).",
     parent="HyPerLayer")

_cls("CloneVLayer", "layer", "A = the V of originalLayerName (a layer of the same size); no input of its own.", [
    P("originalLayerName", "str", doc="The layer whose V (RescaleLayer: whose A) this layer follows."),
    *_TRIGGER,
    P("triggerBehavior", "str", "updateOnlyOnTrigger", "What a trigger does (a layer without V of its "
      "own has no state to reset).", choices=("updateOnlyOnTrigger", "ignore")),
], parent="BaseLayer")

_cls("SigmoidLayer", "layer", "A = a sigmoid of the V of originalLayerName (a CloneVLayer; A starts at 0).", [
    P("Vrest", "float", -70.0, "Resting potential: with VthRest, the sigmoid's midpoint (VthRest + Vrest)/2."),
    P("VthRest", "float", -55.0, "Resting threshold."),
    P("SigmoidAlpha", "float", 0.1, "A at V = Vrest (0 to 1): sets the slope."),
    P("SigmoidFlag", "bool", True, "The logistic function; false: a linear ramp clipped to [0, 1]."),
    P("InverseFlag", "bool", False, "A = 1 - the sigmoid."),
], parent="CloneVLayer")

_cls("RescaleLayer", "layer", "A = the A of originalLayerName rescaled each update by rescaleMethod "
     "(per batch element: over the whole layer, or over the features at each position).", [
    P("rescaleMethod", "str", doc="maxmin, meanstd, l2, l2NoMean: over the whole layer; pointmeanstd, "
      "pointResponseNormalization, softmax: over the features at each position; logreg "
      "(1/(1+exp(a))), zerotonegative (0 becomes -1): each neuron.",
      choices=("maxmin", "meanstd", "pointmeanstd", "l2", "l2NoMean", "pointResponseNormalization",
               "zerotonegative", "softmax", "logreg")),
    P("targetMax", "float", 1.0, "Largest activity (maxmin)."),
    P("targetMin", "float", -1.0, "Smallest activity (maxmin)."),
    P("targetMean", "float", 0.0, "Mean of the activity (meanstd, pointmeanstd)."),
    P("targetStd", "float", 1.0, "Standard deviation of the activity (meanstd, pointmeanstd)."),
    P("patchSize", "int", 1, "l2, l2NoMean: A = a/(std*sqrt(patchSize)), std over the layer."),
], parent="CloneVLayer")

_cls("InputLayer", "layer", "Layers that read frames from files (facts §3.9).", [
    P("inputPath", "str", doc="Image, list of images (.txt) or PVP file."),
    P("displayPeriod", "float", 0.0, "Time each frame is shown; <= 0: never advance.", unit="time"),
    P("batchMethod", "str", "byFile", "How batch elements walk through the frames.",
      choices=("byFile", "byImage", "byList", "byMovie", "bySpecified", "random")),
    P("start_frame_index", "array", (), "Start frame per global batch element (0-based)."),
    P("skip_frame_index", "array", (), "Frame step per global batch element (bySpecified)."),
    P("resetToStartOnLoop", "bool", False, "On wrap go back to the start frame (bySpecified)."),
    P("randomSeed", "int", 123456789, "Seed of batchMethod random (added to the column's seed) and, "
      "alone, of the jitter."),
    P("writeFrameToTimestamp", "bool", True, "Write timestamps/<Layer>.txt at every frame change."),
    P("offsetAnchor", "str", "tl", "Anchor of the image in the layer: {t,c,b} x {l,c,r}."),
    P("offsetX", "int", 0, "Horizontal image offset.", unit="pixels"),
    P("offsetY", "int", 0, "Vertical image offset.", unit="pixels"),
    P("autoResizeFlag", "bool", False, "Rescale the image to the layer size."),
    P("aspectRatioAdjustment", "str", "crop", "With autoResizeFlag: crop or pad.", choices=("crop", "pad")),
    P("interpolationMethod", "str", "bicubic", "With autoResizeFlag (any case).",
      choices=("bicubic", "nearestNeighbor")),
    P("inverseFlag", "bool", False, "Invert the image."),
    P("normalizeLuminanceFlag", "bool", False, "Normalise each frame."),
    P("normalizeStdDev", "bool", True, "Normalise to zero mean, unit std (else to [0, 1])."),
    P("useInputBCflag", "bool", False, "Fill the halo from the image too."),
    P("padValue", "float", 0.0, "Value where the image has no data (and of the boundary halo)."),
    P("jitterChangeInterval", "int", 0, "Random shifts and flips change every this many "
      "jitterChangeIntervalUnit; 0: no jitter."),
    P("jitterChangeIntervalUnit", "str", "displayPeriod", "Unit of jitterChangeInterval (any case).",
      choices=("displayPeriod", "timestep")),
    P("maxShiftX", "int", 0, "Jitter: largest random shift in x.", unit="pixels"),
    P("maxShiftY", "int", 0, "Jitter: largest random shift in y.", unit="pixels"),
    P("xFlipEnabled", "bool", False, "Jitter: mirror the frame left-right with probability 49%."),
    P("yFlipEnabled", "bool", False, "Jitter: mirror the frame top-bottom with probability 49%."),
    P("xFlipToggle", "bool", False, "Jitter: with xFlipEnabled, alternate the left-right mirror at "
      "every change instead of drawing it."),
    P("yFlipToggle", "bool", False, "Jitter: with yFlipEnabled, alternate the top-bottom mirror at "
      "every change instead of drawing it."),
    P("jitterFlag", "bool", False, "Obsolete in OpenPV.", ignored=True),
], parent="BaseLayer", abstract=True)

_cls("Retina", "layer", "Activity from the excitatory minus the inhibitory input: a rate "
     "burst*P_stim*(exc - inh) + P_base, or spikes with that probability and refractoriness "
     "(OpenPV's per-neuron random streams); no V.", [
    *_TRIGGER,
    P("triggerBehavior", "str", "updateOnlyOnTrigger", "What a trigger does.",
      choices=("updateOnlyOnTrigger", "ignore")),
    P("spikingFlag", "bool", True, "Spikes (A = 0 or 1) instead of rates."),
    P("foregroundRate", "float", 1.0, "Stimulus rate: P_stim = foregroundRate*dt/1000 (at most 1).", unit="Hz"),
    P("backgroundRate", "float", 0.0, "Background rate: P_base = backgroundRate*dt/1000 (at most 1).", unit="Hz"),
    P("beginStim", "float", 0.0, "The stimulus acts from this time.", unit="time"),
    P("endStim", "float", FLT_MAX, "The stimulus acts before this time (< 0: forever).", unit="time"),
    P("burstFreq", "float", 1.0, "Bursts per second.", unit="Hz"),
    P("burstDuration", "float", 1000.0, "Length of each burst; <= 0: a cosine of burstFreq instead.",
      unit="ms"),
    P("refractoryPeriod", "float", 5.0, "Spiking: the refractory factor 1 - exp(-(t - abs)/refractoryPeriod).",
      unit="ms"),
    P("absRefractoryPeriod", "float", 3.0, "Spiking: no spike this long after a spike.", unit="ms"),
], parent="BaseLayer")

_cls("GapLayer", "layer", "A = the V of originalLayerName (a spiking layer), plus ampSpikelet where it "
     "spiked: what its gap junctions pass on.", [
    P("ampSpikelet", "float", 50.0, "Added to V where the original is active."),
], parent="CloneVLayer")

_cls("BackgroundLayer", "layer", "A = repFeatureNum copies of a background feature (1 where no feature of "
     "originalLayerName is active), then each of its nf features repeated repFeatureNum times: (nf + 1) * "
     "repFeatureNum features.", [
    P("repFeatureNum", "int", 1, "How many times each feature (and the background) is repeated (>= 1)."),
], parent="CloneVLayer")

_cls("InputRegionLayer", "layer", "A = 1 where originalLayerName (an input layer) shows image data, 0 where "
     "it pads; it takes the original's phase, mirrorBCflag and margins, and never updates on its own.", [
    P("originalLayerName", "str", doc="The ImageLayer or PvpLayer whose region is shown."),
    P("phase", "int", 0, "Not used: the original's phase.", ignored=True),
    P("mirrorBCflag", "bool", False, "Not used: the original's mirrorBCflag.", ignored=True),
], parent="BaseLayer")

_cls("ImageLayer", "layer", "Input layer reading PNG/JPEG images or a list of them.", parent="InputLayer")
_cls("PvpLayer", "layer", "Input layer reading frames of a PVP activity file.", parent="InputLayer")

# ---------------------------------------------------------------- connections
_cls("BaseConnection", "connection", "Parameters every connection has.", [
    P("preLayerName", "str", doc="Presynaptic layer (inferred from a name 'AToB')."),
    P("postLayerName", "str", doc="Postsynaptic layer (inferred from a name 'AToB')."),
    P("channelCode", "int", doc="0 exc, 1 inh, 2 inhB, 3 gap, 4 norm, -1 no delivery."),
    P("delay", "array", (0.0,), "Delay per arbor (one value or one per arbor).", unit="time"),
    P("receiveGpu", "bool", False, "Deliver on the GPU where the backend has one."),
    P("updateGSynFromPostPerspective", "bool", False, "Deliver by gathering at each post neuron."),
    P("pvpatchAccumulateType", "str", "convolve", "Delivery rule.", choices=("convolve",)),
    P("writeStep", "float", From("dt"), "Time between weight frames; < 0: never.", unit="time"),
    P("initialWriteTime", "float", 0.0, "Time of the first weight frame.", unit="time"),
    P("writeCompressedWeights", "bool", False, "Write weights as 8-bit."),
    P("writeCompressedCheckpoints", "bool", False, "Checkpoint weights as 8-bit."),
    P("initializeFromCheckpointFlag", "bool", False, "Load weights from initializeFromCheckpointDir."),
    P("initWeightsFile", "str", None, "PVP file of initial weights."),
], abstract=True)

_NORMALIZE = [
    P("normalizeMethod", "str", doc="Weight normalisation.",
      choices=("normalizeL2", "normalizeSum", "normalizeMax", "normalizeContrastZeroMean", "normalizeGroup",
               "none")),
    P("normalizeGroupName", "str", None, "normalizeGroup: the connection whose normaliser normalises this "
      "connection's weights together with its own (its method and parameters, patch by patch)."),
    P("strength", "float", 1.0, "Target norm."),
    P("normalizeArborsIndividually", "bool", False, "Normalise each arbor on its own."),
    P("normalizeOnInitialize", "bool", True, "Normalise at t = 0."),
    P("normalizeOnWeightUpdate", "bool", True, "Normalise after each weight update."),
    P("normalizeFromPostPerspective", "bool", False, "Scale the target by numPost/numPre."),
    P("rMinX", "float", 0.0, "Zero weights within this x radius of the patch centre."),
    P("rMinY", "float", 0.0, "Zero weights within this y radius of the patch centre."),
    P("nonnegativeConstraintFlag", "bool", False, "Clip negative weights to 0."),
    P("normalize_cutoff", "float", 0.0, "Zero |w| < cutoff * max|w|."),
    P("minL2NormTolerated", "float", 0.0, "normalizeL2 skips patches with a smaller sum of squares."),
    P("minSumTolerated", "float", 0.0, "normalizeSum skips patches with a smaller |sum|."),
    P("minMaxTolerated", "float", 0.0, "normalizeMax skips patches with a smaller max."),
]
_WEIGHTS = [
    P("nxp", "int", 1, "Patch width.", unit="post pixels"),
    P("nyp", "int", 1, "Patch height.", unit="post pixels"),
    P("nfp", "int", From("post.nf"), "Patch features: the post layer's nf (a value < 0 means it)."),
    P("sharedWeights", "bool", True, "Convolutional (shared) weights."),
    P("numAxonalArbors", "int", 1, "Number of arbors."),
    P("weightInitType", "str", doc="Weight initialisation.",
      choices=("UniformRandomWeight", "GaussianRandomWeight", "UniformWeight", "Gauss2DWeight",
               "FileWeight", "OneToOneWeights", "IdentWeight", "OneToOneWeightsWithDelays", "CoCircWeight",
               "SpreadOverArborsWeight", "SmartWeight", "DiscreteUniformRandomWeight")),
    P("frameNumber", "int", 0, "Frame of initWeightsFile."),
    P("wMinInit", "float", 0.0, "UniformRandomWeight lower bound."),
    P("wMaxInit", "float", 1.0, "UniformRandomWeight upper bound."),
    P("sparseFraction", "float", 0.0, "UniformRandomWeight: probability of a zero weight."),
    P("minNNZ", "int", 0, "UniformRandomWeight: minimum nonzeros per patch."),
    P("wGaussMean", "float", 0.0, "GaussianRandomWeight mean."),
    P("wGaussStdev", "float", 1.0, "GaussianRandomWeight standard deviation."),
    P("weightInit", "float", 0.0, "UniformWeight value; OneToOneWeights' value at the patch centre "
      "(IdentWeight and OneToOneWeightsWithDelays: 1, as OpenPV never reads it there); SpreadOverArborsWeight's "
      "total over the arbors."),
    P("wMin", "float", None, "DiscreteUniformRandomWeight (required): the smallest value."),
    P("wMax", "float", None, "DiscreteUniformRandomWeight (required): the largest value."),
    P("numValues", "int", None, "DiscreteUniformRandomWeight (required): number of equally spaced values (>= 2)."),
    P("connectOnlySameFeatures", "bool", False, "UniformWeight: only f -> f."),
    P("aspect", "float", 1.0, "Gauss2DWeight: aspect ratio (scales the rotated y distance)."),
    P("sigma", "float", 0.8, "Gauss2DWeight: width of the Gaussian.", unit="pre pixels"),
    P("rMax", "float", 1.4, "Gauss2DWeight: weights farther than rMax are 0.", unit="pre pixels"),
    P("rMin", "float", 0.0, "Gauss2DWeight: weights nearer than rMin are 0.", unit="pre pixels"),
    P("numOrientationsPost", "int", -1, "Gauss2DWeight: orientations of the post layer; <= 0: its nf."),
    P("numOrientationsPre", "int", -1, "Gauss2DWeight: orientations of the pre layer; <= 0: its nf."),
    P("deltaThetaMax", "float", 2 * 3.141592653589793, "Gauss2DWeight: no weight between orientations "
      "differing by more.", unit="radians"),
    P("thetaMax", "float", 1.0, "Gauss2DWeight: orientations span thetaMax*pi."),
    P("numFlanks", "int", 1, "Gauss2DWeight: 2 adds a second Gaussian shifted the other way."),
    P("flankShift", "float", 0.0, "Gauss2DWeight: shift of the Gaussian along the rotated y axis.",
      unit="pre pixels"),
    P("rotate", "float", 0.0, "Gauss2DWeight: orientations start at rotate times half a step."),
    P("bowtieFlag", "bool", False, "Gauss2DWeight: keep only a bowtie around the orientation axis."),
    P("bowtieAngle", "float", 2 * 3.141592653589793, "Gauss2DWeight: half-angle of the bowtie.",
      unit="radians"),
    P("sigmaCocirc", "float", 0.5 * 3.141592653589793, "CoCircWeight: width of the co-circularity Gaussian.",
      unit="radians"),
    P("cocircSelf", "bool", False, "CoCircWeight: also weight a neuron's own feature at its own position."),
    P("sigmaKurve", "float", 1.0, "CoCircWeight: width of the curvature Gaussian (several curvatures only)."),
    P("deltaRadiusCurvature", "float", 1.0, "CoCircWeight: step of the radii of curvature (several "
      "curvatures only)."),
] + _NORMALIZE + [
    P("plasticityFlag", "bool", True, "Learn (Hebbian update)."),
    P("triggerLayerName", "str", None, "Update weights when this layer updates."),
    P("triggerOffset", "float", 0.0, "Trigger when the trigger layer updates at t + offset.", unit="time"),
    P("weightUpdatePeriod", "float", None, "Time between updates (required without a trigger).",
      unit="time"),
    P("initialWeightUpdateTime", "float", 0.0, "Time of the first periodic update.", unit="time"),
    P("immediateWeightUpdate", "bool", True, "Apply dW in the step it is computed; false: one step "
      "later, overlapping the all-reduce."),
    P("dWMax", "float", None, "Learning rate (required if plastic)."),
    P("dWMaxDecayInterval", "int", 0, "Updates between dWMax decays; 0: never."),
    P("dWMaxDecayFactor", "float", 0.0, "dWMax *= 1 - factor at each decay."),
    P("normalizeDw", "bool", True, "Divide dW by the number of active (batch, pre) pairs."),
    P("combine_dW_with_W_flag", "bool", False, "Legacy mode: dW accumulates into W (not supported)."),
]
_cls("HyPerConn", "connection", "Connection with (shared) weights, delivery and Hebbian learning.",
     _WEIGHTS, parent="BaseConnection")
_cls("MomentumConn", "connection", "HyPerConn whose updates carry momentum (facts §4.6).", [
    P("momentumMethod", "str", doc="Momentum rule.", choices=("viscosity", "simple", "alex")),
    P("timeConstantTau", "float", None, "Momentum time constant; default 100 (viscosity), 0.25 "
      "(simple), 0.9 (alex)."),
    P("momentumTau", "float", None, "Deprecated form of timeConstantTau."),
    P("momentumDecay", "float", 0.0, "Weight decay coefficient."),
    P("initPrev_dWFile", "str", None, "PVP file of the initial previous dW."),
    P("prev_dWFrameNumber", "int", 0, "Frame of initPrev_dWFile."),
], parent="HyPerConn")
_cls("TransposeConn", "connection", "The adjoint of another connection's weights; follows it.", [
    P("originalConnName", "str", doc="The connection transposed (any connection with weights of its "
      "own or transposed: HyPerConn, MomentumConn, CopyConn, TransposeConn, FeedbackConn)."),
], parent="BaseConnection")
_cls("FeedbackConn", "connection", "A TransposeConn whose pre and post layers are the original's post "
     "and pre.", [
         P("preLayerName", "str", None, "Not read: the original connection's post layer.", ignored=True),
         P("postLayerName", "str", None, "Not read: the original connection's pre layer.", ignored=True),
     ], parent="TransposeConn")
_cls("CloneConn", "connection", "Delivers with another connection's weights.", [
    P("originalConnName", "str", doc="The connection whose weights are used."),
], parent="BaseConnection")
_cls("PlasticCloneConn", "connection", "A CloneConn whose pre and post activity also teach the "
     "original: the original's dW sums its own Hebbian term and each of its PlasticCloneConns'.",
     parent="CloneConn")
_cls("CopyConn", "connection", "Its own copy of another connection's weights, taken at the start and "
     "whenever the original's change, normalised by its own normalizer.", [
         P("originalConnName", "str", doc="The connection copied (one with weights of its own: "
           "HyPerConn, MomentumConn, CopyConn); its patch size, arbors and sharedWeights are taken too."),
     ] + _NORMALIZE, parent="BaseConnection")
_cls("IdentConn", "connection", "One-to-one copy: GSyn += A_pre.", parent="BaseConnection")
_cls("PoolingConn", "connection", "Pools each feature of the pre layer over patches: the largest value "
     "(maxpooling), the sum (sumpooling) or the mean (avgpooling); pre and post have the same nf.", [
    P("pvpatchAccumulateType", "str", doc="How a post neuron pools the pre neurons whose patches reach it.",
      choices=("maxpooling", "sumpooling", "avgpooling")),
    P("nxp", "int", 1, "Patch width.", unit="post pixels"),
    P("nyp", "int", 1, "Patch height.", unit="post pixels"),
    P("nfp", "int", From("post.nf"), "Patch features: the post layer's nf."),
    P("needPostIndexLayer", "bool", False, "Record which pre neuron won each max (a PoolingIndexLayer)."),
    P("postIndexLayerName", "str", None, "The PoolingIndexLayer of needPostIndexLayer."),
], parent="BaseConnection")
_cls("TransposePoolingConn", "connection", "Sends a pooled layer back through its PoolingConn: after max "
     "pooling each value to its pool's winner (the original's PoolingIndexLayer), after sum or avg pooling "
     "the largest value reaching each neuron.", [
         P("originalConnName", "str", doc="The PoolingConn (with needPostIndexLayer for max pooling)."),
     ], parent="BaseConnection")
_cls("WTAConn", "connection", "Winner take all over features: the one-feature post layer receives the "
     "largest feature of the pre layer at each position (pre and post of the same nx, ny).",
     parent="BaseConnection")
_cls("RescaleConn", "connection", "One-to-one scaled copy: GSyn += scale * A_pre.", [
    P("scale", "float", 1.0, "Factor."),
], parent="BaseConnection")

# ---------------------------------------------------------------- probes
_cls("BaseProbe", "probe", "Parameters every probe has.", [
    P("message", "str", None, "Prefix of log lines."),
    P("textOutputFlag", "bool", True, "Write text output."),
    P("probeOutputFile", "str", None, "Output file (one per batch element: name_batchElement_<g>.ext); "
      "default: the log."),
    P("triggerLayerName", "str", None, "Sample only when this layer updates."),
    P("triggerOffset", "float", 0.0, "Trigger when the trigger layer updates at t + offset.", unit="time"),
    P("energyProbe", "str", None, "ColumnEnergyProbe that sums this probe's values."),
    P("coefficient", "float", 1.0, "Coefficient of this probe in its energy probe."),
], abstract=True)
_cls("LayerProbe", "probe", "Probes of one layer's activity.", [
    P("targetLayer", "str", doc="The layer probed."),
    P("maskLayerName", "str", None, "Read and not applied, as in OpenPV (a warning says so)."),
], parent="BaseProbe", abstract=True)
_cls("L2NormProbe", "probe", "(sum of a^2)^(exponent/2) per batch element.", [
    P("exponent", "float", 1.0, "Exponent (2: sum of squares)."),
], parent="LayerProbe")
_cls("L1NormProbe", "probe", "Sum of |a| per batch element.", parent="LayerProbe")
_cls("L0NormProbe", "probe", "Number of |a| > nnzThreshold per batch element.", [
    P("nnzThreshold", "float", 0.0, "Threshold."),
], parent="LayerProbe")
_cls("L1NormLCAProbe", "probe", "L1 norm with coefficient = the target's VThresh.", parent="L1NormProbe")
_cls("L0NormLCAProbe", "probe", "L0 norm above the target's VThresh (nnzThreshold is not read), coefficient "
     "VThresh^2/2.", parent="L0NormProbe")
_cls("FirmThresholdCostFnProbe", "probe", "The firm-threshold cost function per batch element.", [
    P("VThresh", "float", 0.0, "Threshold (OpenPV's default 0, not the target's)."),
    P("VWidth", "float", 0.0, "Width (OpenPV's default 0, not the target's)."),
], parent="LayerProbe")
_cls("FirmThresholdCostFnLCAProbe", "probe", "Firm-threshold cost with the target's VThresh and VWidth; "
     "coefficient = target VThresh.", [
         P("VThresh", "float", From("target.VThresh"), "Not read: the target's VThresh.", ignored=True),
         P("VWidth", "float", From("target.VWidth"), "Not read: the target's VWidth.", ignored=True),
     ], parent="FirmThresholdCostFnProbe")
_cls("StatsProbe", "probe", "N, total, min, mean, max, sigma, nnz of A or V per batch element.", [
    P("buffer", "str", "Activity", "Activity (A) or MembranePotential (V)."),
    P("nnzThreshold", "float", 0.0, "Threshold of the nnz count."),
    P("immediateMPIAssembly", "bool", False, "Ignored: pvmpi always assembles at once.", ignored=True),
], parent="LayerProbe")
_cls("RequireAllZeroActivityProbe", "probe", "Fails the run when the target's activity is not zero.", [
    P("nnzThreshold", "float", 0.0, "|a| above this counts as nonzero."),
    P("exitOnFailure", "bool", True, "OpenPV aborts at the end of a run that found nonzero activity; "
      "either way the run exits non-zero (as in OpenPV)."),
    P("immediateExitOnFailure", "bool", True, "Exit at the first nonzero activity."),
], parent="StatsProbe")
_cls("ColumnEnergyProbe", "probe", "Sum of coefficient * value of the probes naming it.", parent="BaseProbe")
_cls("QuotientProbe", "probe", "numerator / denominator, two probes' values per batch element.", [
    P("numerator", "str", doc="Probe whose values are divided."),
    P("denominator", "str", doc="Probe whose values divide."),
], parent="BaseProbe")
_cls("AdaptiveTimeScaleProbe", "probe", "Per-batch-element LCA time scale from an energy probe.", [
    P("targetName", "str", doc="The probe followed (a ColumnEnergyProbe, QuotientProbe or norm probe)."),
    P("baseMax", "float", 1.0, "Initial maximum time scale."),
    P("baseMin", "float", 1.0, "Time scale after a reset."),
    P("tauFactor", "float", 1.0, "Scale of the energy-decay estimate."),
    P("growthFactor", "float", 1.0, "Growth of the maximum when reached."),
    P("writeTimeScaleFieldnames", "bool", True, "Output with field names."),
], parent="BaseProbe")
_cls("KneeTimeScaleProbe", "probe", "AdaptiveTimeScaleProbe whose maximum grows slower past a knee.", [
    P("kneeThresh", "float", 1.0, "Knee position."),
    P("kneeSlope", "float", 1.0, "Growth factor past the knee."),
], parent="AdaptiveTimeScaleProbe")

del P


def lineage(name):
    """Class names from `name` up to its root."""
    out = []
    while name is not None:
        out.append(name)
        name = CLASSES[name].parent
    return out


def is_a(name, ancestor):
    """True if class ``name`` is ``ancestor`` or inherits from it."""
    return ancestor in lineage(name)


def params_of(name):
    """All parameters of a class, inherited ones first; subclasses override."""
    merged = {}
    for cls in reversed(lineage(name)):
        for p in CLASSES[cls].params:
            merged[p.name] = p
    return merged


def concrete_classes(kind=None):
    """The classes a config may name (not abstract ones), optionally of one kind only."""
    return [c for c in CLASSES.values() if not c.abstract and (kind is None or c.kind == kind)]

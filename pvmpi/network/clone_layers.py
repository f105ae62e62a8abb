"""Layers that follow another layer (originalLayerName) instead of integrating input: CloneVLayer,
SigmoidLayer, GapLayer, RescaleLayer and BackgroundLayer. They have no GSyn and no V of their own (OpenPV checkpoints none for them).

Each reads the original's current buffer directly, as OpenPV does: the new one if the original
updated earlier in this step, the previous one otherwise (a later layer of the same phase).
"""
import numpy as np

from ..kernels import numpy_ref
from .layers import Layer

F32 = np.float32

#: rescaleMethod → the code of kernels.rescale_features, for the per-position and per-neuron methods
FEATURE_METHODS = {"pointmeanstd": numpy_ref.POINTMEANSTD,
                   "pointResponseNormalization": numpy_ref.POINTRESPONSENORMALIZATION,
                   "softmax": numpy_ref.SOFTMAX, "logreg": numpy_ref.LOGREG,
                   "zerotonegative": numpy_ref.ZEROTONEGATIVE}


class FollowsLayer(Layer):
    """A layer computed from originalLayerName's state at each update; no input channels."""

    def __init__(self, group, run):
        super().__init__(group, run)
        self.channels = 0

    def link(self, layers):
        """The original, and the trigger if any."""
        self.original = layers[self.group["originalLayerName"]]
        self.controller = self.trigger_controller(layers) or self.controller


class CloneVLayer(FollowsLayer):
    """A = the original's V (restricted); at InitializeState too, once the original has its V."""

    def initialize(self, seeds):
        """A = the original's initial V (the column initialises clones after their originals)."""
        self.update(0.0)

    def update(self, t):
        """A = the original's current V."""
        self.run.kernels.scale_into(self.A, self.original.V, 1.0, False, dst_lt=self.margin_x,
                                    dst_up=self.margin_y)


class SigmoidLayer(CloneVLayer):
    """A = a sigmoid of the original's V (A starts at 0, as OpenPV's SigmoidActivityBuffer)."""

    def initialize(self, seeds):
        """A stays 0 until the first update."""

    def update(self, t):
        """A = the sigmoid of the original's current V."""
        g = self.group
        self.run.kernels.sigmoid_transfer(self.original.V, self.A, self.margin_x, self.margin_y,
                                          *self.sigmoid_constants(), g["SigmoidFlag"], g["InverseFlag"])

    def sigmoid_constants(self):
        """(Vth, scale) in OpenPV's float32: Vth = (VthRest + Vrest)/2, scale = -log(1/alpha - 1)/(Vth - Vrest),
        divided by log 3 without SigmoidFlag."""
        from .random import logf

        g = self.group
        vrest, one = F32(g["Vrest"]), F32(1)
        vth = (F32(g["VthRest"]) + vrest) / F32(2)
        scale = -logf(np.array([one / F32(g["SigmoidAlpha"]) - one], F32))[0] / (vth - vrest)
        if not g["SigmoidFlag"]:
            scale = scale / logf(np.array([3], F32))[0]
        return vth, F32(scale)


class GapLayer(CloneVLayer):
    """A = the original's V, plus ampSpikelet where the original's activity is positive (it spiked):
    the activity a gap junction passes on."""

    def update(self, t):
        """A from the original's current V and activity."""
        o = self.original
        self.run.kernels.spikelet(self.A, self.margin_x, self.margin_y, o.V, o.A, o.margin_x, o.margin_y,
                                  self.group["ampSpikelet"])


class BackgroundLayer(FollowsLayer):
    """A = rep copies of "no feature of the original is active here" (1 or 0), then each of the original's
    features repeated repFeatureNum times; from the original's published activity. A starts at 0."""

    def update(self, t):
        """A from the original's last published activity."""
        o = self.original
        self.run.kernels.background(self.A, self.margin_x, self.margin_y, o.level(0), o.margin_x, o.margin_y,
                                    int(self.group["repFeatureNum"]))


class RescaleLayer(FollowsLayer):
    """A = the original's A rescaled by rescaleMethod; A starts at 0 (OpenPV's InitializeState).

    The whole-layer methods reduce [Σa, Σa², min, max] over the tiles of each batch element in
    float64, then apply OpenPV's float32 formula; the others need no communication.
    """

    def update(self, t):
        """A = the original's current A, rescaled."""
        g, k, src = self.group, self.run.kernels, self.original
        method = g["rescaleMethod"]
        args = (self.margin_x, self.margin_y, src.margin_x, src.margin_y)
        if method in FEATURE_METHODS:
            k.rescale_features(self.A, src.A, FEATURE_METHODS[method], g["targetMean"], g["targetStd"], *args)
        else:
            k.rescale_batch(self.A, src.A, self.coefficients(method), *args)

    def coefficients(self, method):
        """[nb, 4] float32 (shift, div, scale, offset) of each batch element, from the global statistics."""
        t, g, comms = self.tile, self.group, self.run.comms
        src = self.original
        local = self.run.kernels.layer_stats(src.A, src.margin_x, src.margin_y, t.ny, t.nx, 0.0)
        sums = comms.spatial_sum(np.ascontiguousarray(local[:, [0, 2]]))
        lo = comms.spatial_min(np.ascontiguousarray(local[:, 4]))
        hi = comms.spatial_max(np.ascontiguousarray(local[:, 5]))
        n = t.nx_global * t.ny_global * self.nf
        out = np.empty((t.nb, 4), F32)
        for b in range(t.nb):
            mean = F32(sums[b, 0] / n)
            if method == "maxmin":
                vmin, vmax = F32(lo[b]), F32(hi[b])
                span = vmax - vmin
                out[b] = (vmin, span, F32(g["targetMax"]) - F32(g["targetMin"]), g["targetMin"]) if span != 0 \
                    else (0, 1, 0, 0)
            elif lo[b] == hi[b] and (method != "l2NoMean" or hi[b] == 0):
                out[b] = (0, 1, 1, 0)  # no spread: OpenPV leaves the values unchanged
            elif method == "meanstd":
                std = F32(np.sqrt(max(sums[b, 1] / n - float(mean) ** 2, 0.0)))
                out[b] = (mean, 1, F32(g["targetStd"]) / std, g["targetMean"])
            elif method == "l2":
                std = F32(np.sqrt(max(sums[b, 1] / n - float(mean) ** 2, 0.0)))
                out[b] = (mean, 1, F32(1) / (std * np.sqrt(F32(g["patchSize"]))), 0)
            else:  # l2NoMean: the root mean square
                rms = F32(np.sqrt(sums[b, 1] / n))
                out[b] = (0, 1, F32(1) / (rms * np.sqrt(F32(g["patchSize"]))), 0)
        return out


CLONE_CLASSES = {"CloneVLayer": CloneVLayer, "RescaleLayer": RescaleLayer, "SigmoidLayer": SigmoidLayer,
                 "BackgroundLayer": BackgroundLayer, "GapLayer": GapLayer}

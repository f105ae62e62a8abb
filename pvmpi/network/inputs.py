"""Input layers at run time: ImageLayer and PvpLayer (facts §3.9, §3.9b), and InputRegionLayer.

Every rank reads only the frames of its own batch elements and cuts out its
own tile, so no rank is an input bottleneck. The BatchIndexer is cheap and
global: every rank advances all batch elements identically, which also lets
rank 0 write the timestamp file without communication.
"""
import os
import sys

import numpy as np

from ..errors import PvmpiError
from .batch_indexer import BatchIndexer
from .input_frames import Jitter, fill_extended, prepare_frame, tile_window
from .layers import Layer
from .schedule import UpdateController

PIPELINE_PARAMS = ("offsetAnchor", "offsetX", "offsetY", "autoResizeFlag", "aspectRatioAdjustment",
                   "interpolationMethod", "inverseFlag", "normalizeLuminanceFlag", "normalizeStdDev",
                   "useInputBCflag")


def relative_hint(path, what="inputPath"):
    """Where a missing relative path was looked for: the working directory, as OpenPV does."""
    if os.path.isabs(path):
        return None
    return f"relative {what} are taken from the working directory, {os.getcwd()}"


class ImageSource:
    """Frames from one image or a .txt list of images."""

    def __init__(self, path, group):
        from ..io.images import read_image_list

        if not os.path.exists(path):
            raise PvmpiError("input file not found", file=path, group=group, param="inputPath",
                             hint=relative_hint(path))
        if path.endswith(".txt"):
            self.files = read_image_list(path)
            if not self.files:
                raise PvmpiError("the image list is empty", file=path, group=group, param="inputPath")
        else:
            self.files = [path]
        self.single = not path.endswith(".txt")
        self.group = group

    def __len__(self):
        return len(self.files)

    def read(self, index, nf):
        """Image ``index`` as [h, w, nf], features converted to the layer's nf; an error names the
        image and the layer."""
        from ..io.images import convert_features, load_image

        try:
            img = load_image(self.files[index])
            return convert_features(img, nf) if img.shape[2] != nf else img
        except PvmpiError as e:  # name the image and the group that reads it
            e.file, e.group, e.param = self.files[index], self.group, e.param or "inputPath"
            if not os.path.exists(self.files[index]):
                e.hint = relative_hint(self.files[index], "paths in the image list")
            raise

    def description(self, index):
        """The image's path for the timestamp file ('' when inputPath is a single image)."""
        return "" if self.single else self.files[index]


class PvpSource:
    """Frames of a PVP activity file (values used as they are)."""

    def __init__(self, path, group):
        from ..io.pvp import ActivityFile

        if not os.path.exists(path):
            raise PvmpiError("input file not found", file=path, group=group, param="inputPath")
        self.file = ActivityFile(path)
        self.path = path
        self.group = group

    def __len__(self):
        return self.file.num_frames

    def read(self, index, nf):
        """Frame ``index`` of the file (wrapping past the last); the file's nf must be the layer's."""
        if self.file.nf != nf:
            raise PvmpiError(f"the file has nf = {self.file.nf} but the layer has nf = {nf}",
                             file=self.path, group=self.group, param="nf")
        return self.file.read_frame(index % self.file.num_frames)

    def description(self, index):
        """Nothing: a PVP input's timestamp lines name no file."""
        return ""

    def close(self):
        """Close the PVP file."""
        self.file.close()


class InputLayer(Layer):
    """Shows frames, changing every displayPeriod; A's halo holds padValue (or image data)."""

    def __init__(self, group, run):
        super().__init__(group, run)
        # displayPeriod <= 0: OpenPV's period is DBL_MAX, so the layer still updates once, at t = dt (its
        # initial last update time), which its triggered layers see; it never changes frames (needs_update)
        period = group["displayPeriod"] if group["displayPeriod"] > 0 else sys.float_info.max
        self.controller = UpdateController(period, run.dt)
        path = group["inputPath"]
        nbatch = run.model.column["nbatch"]
        try:
            self.source = PvpSource(path, self.name) if path.endswith(".pvp") else ImageSource(path, self.name)
            self.indexer = BatchIndexer(
                group["batchMethod"], nbatch, len(self.source),
                start_frame_index=[int(v) for v in group["start_frame_index"]] or None,
                skip_frame_index=[int(v) for v in group["skip_frame_index"]] or None,
                reset_to_start_on_loop=group["resetToStartOnLoop"],
                random_seed=(run.initial_seed + group["randomSeed"]) & 0xFFFFFFFF)
        except PvmpiError as e:
            e.group = e.group or self.name
            raise
        self.pipeline = {k: group[k] for k in PIPELINE_PARAMS}
        self.jitter = Jitter.from_params(group, nbatch, group["randomSeed"])
        self.timestamps = None
        self.region_layers = []  # InputRegionLayers showing where the frames have data

    def initialize(self, seeds):
        """Load the frames shown at t = 0 (``seeds`` is not used: the indexer and jitter have theirs)."""
        self.load(0.0)

    def open_output(self, resume=None):
        """Open the layer's outputs and, on rank 0 with writeFrameToTimestamp, timestamps/<name>.txt
        (continued from its checkpointed position on resume)."""
        from ..io.outputs import open_text

        super().open_output(resume)
        if self.run.comms.is_root and self.group["writeFrameToTimestamp"] and self.group["displayPeriod"] > 0:
            pos = None if resume is None else resume.attr(self.key, "timestamps_position")
            self.timestamps = open_text(self.run.output_file(os.path.join("timestamps", self.name + ".txt")),
                                        pos)

    def write_checkpoint(self, ck):
        """The layer's state, the frame indexer's, the timestamp file's position and the jitter."""
        super().write_checkpoint(ck)
        if self.timestamps is not None:
            self.timestamps.flush()
        ck.attrs(self.key, frame_indexer=self.indexer.state(),
                 timestamps_position=self.timestamps.tell() if self.timestamps is not None else 0)
        state = self.indexer.state()
        ck.entry(self.name, "FrameNumbers", state["indices"], "<i4")
        if state.get("batch_method") == "random":
            ck.entry(self.name, "RandomSeed", state["seed"], "<u4")
        if self.timestamps is not None:
            ck.file_position(self.name, self.timestamps.tell(), "TimestampState")
        if self.jitter.active:
            ck.attrs(self.key, jitter=self.jitter.state())

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Restore what :meth:`write_checkpoint` saved; with another nbatch, element g
        continues saved element g mod n."""
        super().read_checkpoint(rd, fresh_outputs)
        state = rd.attr(self.key, "frame_indexer")
        saved = state["indices"]
        if len(saved) != self.indexer.nbatch:  # another nbatch: element g continues saved element g mod n
            state = {**state, "indices": [saved[g % len(saved)] for g in range(self.indexer.nbatch)]}
        self.indexer.set_state(state)
        if self.jitter.active:
            jitter = rd.attr(self.key, "jitter", {})
            if jitter:  # a checkpoint written before jitter was switched on has none: keep the t = 0 draw
                self.jitter.set_state(jitter)

    def load(self, time):
        """Fill each local batch element's extended A from the frame it shows now (jitter drawn first).

        The frames are made on the host and cross to the device (if A lives there) in one copy.
        """
        t, k = self.tile, self.run.kernels
        self.jitter.load(time, self.run.dt)
        frames = self.indexer.frames()
        host = k.host_buffer(self.A)
        for b in range(t.nb):
            data = self.source.read(int(frames[t.kb0 + b]), self.nf)
            self._note_size(data, int(frames[t.kb0 + b]))
            D, R = prepare_frame(data, nx_global=t.nx_global, ny_global=t.ny_global,
                                 margin_x=self.margin_x, margin_y=self.margin_y, params=self.pipeline,
                                 **self.jitter.of(t.kb0 + b))
            where = dict(margin_x=self.margin_x, margin_y=self.margin_y, use_input_bc=self.group["useInputBCflag"],
                         x0=t.kx0, y0=t.ky0)
            fill_extended(host[b], D, R, pad_value=self.group["padValue"], **where)
            for layer in self.region_layers:
                layer.show(b, D, R, where)
        k.upload(self.A, host)
        for layer in self.region_layers:
            k.upload(layer.A, layer.region)

    def _note_size(self, data, index):
        """Say once when a frame's size differs from the layer's and nothing resizes it: it is
        cropped or padded (offsetX/offsetY, offsetAnchor), as OpenPV does without a word."""
        t = self.tile
        if self.pipeline["autoResizeFlag"] or getattr(self, "_size_noted", False) or \
                tuple(data.shape[:2]) == (t.ny_global, t.nx_global):
            return
        import warnings

        self._size_noted = True
        what = self.source.description(index) or self.group["inputPath"]
        warnings.warn(f"{self.name}: frame {index} ({what}) is "
                      f"{data.shape[1]}x{data.shape[0]}, the layer {t.nx_global}x{t.ny_global}: it is cropped "
                      f"or padded with padValue (set autoResizeFlag to resize frames to the layer)")

    def needs_update(self, t):
        """As its schedule says; with displayPeriod <= 0 never itself (its frames never change), though
        layers it triggers see the one update OpenPV's schedule makes."""
        return self.group["displayPeriod"] > 0 and super().needs_update(t)

    def update(self, t):
        """Show the next frames: load them (each batch element's index logged first with
        writeFrameToTimestamp), then advance the frame indexer."""
        if self.timestamps is not None:
            frames = self.indexer.frames()
            for g, i in enumerate(frames):
                self.timestamps.write(f"[{self.name}] time: {t:.15g}, batch element: {g}, "
                                      f"index: {int(i)},{self.source.description(int(i))}\n")
            self.timestamps.flush()
        self.load(t)
        self.indexer.advance()

    def close(self):
        """Close the outputs, the timestamp file and the input file."""
        super().close()
        if self.timestamps is not None:
            self.timestamps.close()
            self.timestamps = None
        if hasattr(self.source, "close"):
            self.source.close()


class InputRegionLayer(Layer):
    """A = 1 where its original input layer has shown image data, 0 where it padded: as in OpenPV a
    position, once covered, stays 1. It has the original's phase and margins and no update of its own."""

    def __init__(self, group, run):
        super().__init__(group, run)
        self.channels = 0

    def link(self, layers):
        """Register with the original input layer, which marks its frames' region here."""
        self.original = layers[self.group["originalLayerName"]]
        self.original.region_layers.append(self)

    def share_margins(self):
        """The original and this layer take the larger of their margins (OpenPV synchronises them)."""
        o = self.original
        for a, b in ((self, o), (o, self)):
            a.require_margin(b.margin_x, b.margin_y)

    def allocate(self):
        """Also the region on the host, zero until the original shows a frame."""
        super().allocate()
        self.region = np.zeros(self.extended_shape, np.float32)

    def needs_update(self, t):
        """Never: the original writes the region when it shows frames."""
        return False

    def show(self, b, D, R, where):
        """Mark batch element b's positions where frame mask R is positive (``where``: tile_window's keywords)."""
        dst, _, r = tile_window(self.region[b], D, R, **where)
        np.copyto(dst, r, where=r > 0)

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Also the region, from A."""
        super().read_checkpoint(rd, fresh_outputs)
        self.region = np.array(self.run.kernels.to_host(self.A), np.float32)


class ImageLayer(InputLayer):
    """OpenPV's ImageLayer: inputPath is an image or a .txt list of images."""


class PvpLayer(InputLayer):
    """OpenPV's PvpLayer: inputPath is a PVP activity file."""


INPUT_CLASSES = {"ImageLayer": ImageLayer, "PvpLayer": PvpLayer, "InputRegionLayer": InputRegionLayer}

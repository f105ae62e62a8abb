"""``python -m pvmpi plot OUTPUT_DIR [-o PLOT_DIR]``: PNG figures of what a run learned.

From the files in a run's output directory (no config needed):

* ``tableau_<conn>.png``: every shared-weights file (a dictionary) as a
  tableau of its kernels, each normalised, sorted by how often the
  presynaptic layer uses them when ``<pre>.pvp`` is there (conn named
  ``<pre>To<post>``, OpenPV's custom);
* ``recon_<recon>_t<time>.png``: a layer beside its reconstruction (files
  ``X.pvp`` and ``XRecon.pvp``) and their difference, per batch element, at
  up to ``--max-writes`` write times (the ends of display periods);
* ``probe_<name>.png``: each probe's per-batch-element files against time
  (energy, L2 error, L1, active fraction from an L0 probe, ...), and the
  values at the end of each display period;
* ``weight_change_<conn>.png``: the relative weight change between saved
  frames (and per update, from MomentumConn's ``<conn>.prevDelta.pvp``).

:func:`plot_output` does the same from Python and returns the paths.
"""
import argparse
import os
import re
import sys

import numpy as np

from pvmpi.errors import PvmpiError


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _fmt_time(t):
    return f"{t:g}".replace("+", "")


class OutputDir:
    """What a run left in its output directory: weights, activity and probe files."""

    def __init__(self, path):
        from pvmpi.io import probes, pvp

        if not os.path.isdir(path):
            raise PvmpiError("not a directory", file=str(path),
                             hint="give the run's outputPath (or -o) directory")
        self.path = str(path)
        self.weights, self.activity, self.momentum = {}, {}, {}
        for entry in sorted(os.listdir(path)):
            full = os.path.join(path, entry)
            if not entry.endswith(".pvp") or not os.path.isfile(full):
                continue
            name = entry[:-4]
            try:
                h = pvp.read_header(full)
            except PvmpiError:
                continue  # not a PVP file after all: not ours to plot
            if h["filetype"] in (pvp.PVP_WGT_FILE_TYPE, pvp.PVP_KERNEL_FILE_TYPE):
                if name.endswith(".prevDelta"):
                    self.momentum[name[:-len(".prevDelta")]] = full
                else:
                    self.weights[name] = full
            else:
                self.activity[name] = (full, h)
        self.probes = probes.probe_names(path)

    def recon_pairs(self):
        """(input name, recon name): from the network written with the outputs (a layer's excitatory
        input beside its inhibitory one, an error layer's X and its reconstruction R), and every
        ``XRecon`` file with an ``X``; both written and of one shape."""
        pairs = [p for p in self._pairs_from_network() if self._same_shape(*p)]
        for pair in self._pairs_by_name():
            if pair not in pairs:
                pairs.append(pair)
        return pairs

    def _same_shape(self, a, b):
        if a not in self.activity or b not in self.activity:
            return False
        ha, hb = self.activity[a][1], self.activity[b][1]
        return (ha["nx"], ha["ny"], ha["nf"]) == (hb["nx"], hb["ny"], hb["nf"])

    def _pairs_from_network(self):
        """(channel-0 input, channel-1 input) of every layer that receives both, from the params
        file the run wrote beside its outputs (printParamsFilename)."""
        from pvmpi.model.params import load_params

        pairs = []
        for entry in sorted(os.listdir(self.path)):
            if not entry.endswith(".params"):
                continue
            try:
                groups = load_params(os.path.join(self.path, entry)).groups
            except PvmpiError:
                continue
            into = {}
            for g in groups:
                v = g.values
                if "preLayerName" in v and "postLayerName" in v and v.get("channelCode") in (0, 1):
                    into.setdefault(v["postLayerName"], {}).setdefault(v["channelCode"], []).append(v["preLayerName"])
            for channels in into.values():
                pairs += [(x, r) for x in channels.get(0, []) for r in channels.get(1, []) if (x, r) not in pairs]
        return pairs

    def _pairs_by_name(self):
        """(X, XRecon) by their names."""
        pairs = []
        for name, (_, h) in self.activity.items():
            m = re.match(r"^(.*?)_?[Rr]econ(struction)?$", name)
            if not m or not m.group(1):
                continue
            base = m.group(1)
            other = self.activity.get(base)
            if other is None:
                continue
            ho = other[1]
            if (ho["nx"], ho["ny"], ho["nf"]) == (h["nx"], h["ny"], h["nf"]):
                pairs.append((base, name))
        return pairs

    def write_period(self, prefer=()):
        """The spacing of write times of an activity file (the display period, usually)."""
        from pvmpi.io import pvp

        names = [n for n in prefer if n in self.activity] + list(self.activity)
        for name in names:
            with pvp.ActivityFile(self.activity[name][0]) as af:
                t = np.unique(af.times)
            if len(t) >= 2:
                steps = np.unique(np.round(np.diff(t), 9))
                if len(steps) == 1 and steps[0] > 0:
                    return float(steps[0])
        return None


def kernel_usage(pre_path, num_kernels):
    """Fraction of (frame, position) where each feature of an activity file is nonzero, or None."""
    from pvmpi.io import pvp

    with pvp.ActivityFile(pre_path) as af:
        if af.nf != num_kernels or af.num_frames == 0:
            return None
        counts = np.zeros(af.nf, np.int64)
        for k in range(af.num_frames):
            idx, val = af.read_frame_sparse(k)
            keep = (val != 0) & np.isfinite(val)  # a diverged run's NaNs are not use
            counts += np.bincount(idx[keep].astype(np.int64) % af.nf, minlength=af.nf)
        return counts / float(af.num_frames * af.nx * af.ny)


def plot_output(output_dir, plot_dir=None, *, max_writes=6, max_batch=8, display_period=None,
                pairs=None, frame=-1, sort=True, log=None):
    """Write every figure for a run's output directory; returns the PNG paths."""
    from pvmpi.io import probes as probe_io
    from pvmpi.io import pvp

    from . import figures

    out = OutputDir(output_dir)
    plot_dir = str(plot_dir or os.path.join(out.path, "plots"))
    os.makedirs(plot_dir, exist_ok=True)
    written = []

    def done(path):
        written.append(path)
        if log:
            log(path)

    # dictionaries
    for name, path in out.weights.items():
        data = pvp.read(path)
        if len(data.times) == 0:
            continue
        k = frame if frame >= 0 else len(data.times) + frame
        if not 0 <= k < len(data.times):
            raise PvmpiError(f"--frame {frame}: the file has {len(data.times)} frames", file=path)
        W = data.values[k, 0]  # arbor 0: [kernels, nyp, nxp, nfp]
        order, subtitle = None, None
        pre = re.match(r"^(.+?)To[A-Z0-9_]", name)
        if sort and pre and pre.group(1) in out.activity:
            usage = kernel_usage(out.activity[pre.group(1)][0], len(W))
            if usage is not None:
                order = np.argsort(-usage, kind="stable")
                subtitle = (f"sorted by use in {pre.group(1)}.pvp, most used first "
                            f"({100 * usage.max():.3g} % .. {100 * usage.min():.3g} % of positions)")
        arbors = data.values.shape[1]
        title = (f"{name}: {len(W)} kernels of {W.shape[1]}x{W.shape[2]}x{W.shape[3]} at "
                 f"t = {data.times[k]:g}" + (f" (arbor 0 of {arbors})" if arbors > 1 else ""))
        done(figures.plot_tableau(W, os.path.join(plot_dir, f"tableau_{_safe(name)}.png"),
                                  title, order=order, subtitle=subtitle))
        rel = figures.relative_change(data.values[:, 0])
        per_update = None
        if name in out.momentum:
            delta = pvp.read(out.momentum[name])
            if delta.values.shape == data.values.shape:
                with np.errstate(all="ignore"):  # a diverged run's inf/NaN weights
                    base = np.linalg.norm(data.values[:, 0].astype(np.float64).reshape(
                        len(data.times), len(W), -1), axis=2)
                    step = np.linalg.norm(delta.values[:, 0].astype(np.float64).reshape(
                        len(delta.times), len(W), -1), axis=2)
                    rel_step = step / np.where(base > 0, base, 1)
                keep = delta.times > 0  # no update has happened at t = 0
                per_update = (delta.times[keep], rel_step[keep])
        if len(rel) or per_update is not None:
            every = np.unique(np.diff(data.times))
            every = f" (saved every {every[0]:g})" if len(every) == 1 else ""
            done(figures.plot_weight_change(
                data.times[1:], rel, os.path.join(plot_dir, f"weight_change_{_safe(name)}.png"),
                f"{name}: how much the weights change{every}", per_update))

    # inputs beside reconstructions
    pair_list = pairs if pairs is not None else out.recon_pairs()
    for base, recon in pair_list:
        for n in (base, recon):
            if n not in out.activity:
                raise PvmpiError(f"no activity file {n}.pvp", file=out.path)
        a, r = pvp.read(out.activity[base][0]), pvp.read(out.activity[recon][0])
        count = min(len(a.times), len(r.times))
        if count == 0:
            continue
        picks = np.unique(np.linspace(0, count - 1, min(count, max_writes)).round().astype(int))
        B = min(a.batch_size, r.batch_size, max_batch)
        for w in picks:
            t = a.times[w]
            title = (f"{base} (top), its reconstruction {recon} (middle) and the difference "
                     f"(bottom) at t = {t:g}")
            path = os.path.join(plot_dir, f"recon_{_safe(recon)}_t{_fmt_time(t)}.png")
            done(figures.plot_reconstructions(a.values[w, :B], r.values[w, :B], list(range(B)),
                                              path, title, names=(base, recon)))

    # probes
    period = (out.write_period(prefer=[p[0] for p in pair_list]) if display_period is None
              else display_period)  # 0: no end-of-period panels
    for name in out.probes:
        table = probe_io.read_batch(out.path, name)
        stem = os.path.splitext(name)[0]
        times, values, what, ylabel = _probe_series(table, stem)
        if values is None or values.shape[1] == 0:
            continue
        done(figures.plot_probe(times, values, table.batch_indices,
                                os.path.join(plot_dir, f"probe_{_safe(stem)}.png"),
                                f"{stem if what == stem else f'{stem} ({what})'} per batch element",
                                ylabel, period))
    return written


def _probe_series(table, stem):
    """(times, values, what, y label) of a probe table, [batch, time] arrays."""
    kind = table.kind
    if kind == "energy":
        return table["time"], table["energy"], "energy", "energy (a.u.)"
    if kind == "norm":
        if "L0" in stem:
            neurons = np.where(table["neurons"] > 0, table["neurons"], 1)
            return (table["time"], table["value"] / neurons, "active fraction = L0 norm / neurons",
                    "fraction of neurons active")
        what = "L1 norm" if "L1" in stem else "L2 norm" if "L2" in stem else "norm"
        return table["time"], table["value"], what, f"{what} (activity units)"
    if kind == "stats":
        return table["time"], table["Avg"], "mean activity (StatsProbe Avg)", "Avg (activity units)"
    if kind == "timescale":
        return table["time"], table["timeScale"], "adaptive time scale", "timeScale (dt units)"
    return None, None, None, None


def build_parser():
    """The ``python -m pvmpi plot`` command line."""
    p = argparse.ArgumentParser(
        prog="python -m pvmpi plot",
        description="PNG figures of a run: dictionary tableaux, inputs beside reconstructions, "
                    "probe curves per batch element, weight change.")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="the run's output directory")
    p.add_argument("-o", "--plot-dir", metavar="PLOT_DIR",
                   help="where the PNGs go (default OUTPUT_DIR/plots)")
    p.add_argument("--frame", type=int, default=-1,
                   help="which saved weights frame the tableau shows (default -1: the last)")
    p.add_argument("--max-writes", type=int, default=6,
                   help="reconstruction figures for at most this many write times, evenly spread "
                        "(default 6)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="batch elements per reconstruction figure (default 8)")
    p.add_argument("--display-period", type=float,
                   help="display period for the end-of-period probe panels (default: the "
                        "spacing of the layers' write times; 0: no such panels)")
    p.add_argument("--pair", action="append", metavar="INPUT:RECON",
                   help="a layer and its reconstruction to show side by side (repeatable; "
                        "default: every X.pvp with an XRecon.pvp)")
    p.add_argument("--no-sort", action="store_true",
                   help="tableau kernels in index order instead of by use")
    return p


def main(argv=None):
    """``python -m pvmpi plot OUTPUT_DIR [-o PLOTS]``: every figure a run's outputs allow."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    pairs = None
    if args.pair:
        pairs = []
        for text in args.pair:
            if text.count(":") != 1:
                return _fail(f"--pair {text!r}: expected INPUT:RECON (layer names)")
            pairs.append(tuple(text.split(":")))
    if args.max_writes < 1 or args.max_batch < 1:
        return _fail("--max-writes and --max-batch must be at least 1")
    try:
        paths = plot_output(args.output_dir, args.plot_dir, max_writes=args.max_writes,
                            max_batch=args.max_batch, display_period=args.display_period,
                            pairs=pairs, frame=args.frame, sort=not args.no_sort,
                            log=lambda p: _say(f"wrote {p}"))
    except PvmpiError as e:
        return _fail(e)
    except ImportError as e:
        return _fail(f"{e} (python -m pip install matplotlib)")
    if not paths:
        print(f"nothing to plot in {args.output_dir}: no .pvp weights or activity files and no "
              f"probe files *_batchElement_<g>.*")
    return 0


def _say(text):
    """Print a progress line; a closed pipe (``| head``) must not stop the plotting."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # later prints (and the exit flush) go nowhere


def _fail(message):
    sys.stdout.flush()
    print(f"pvmpi: error: {message}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

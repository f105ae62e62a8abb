"""Every output file of two runs, compared number by number within a relative tolerance.

Floats in ``.pvp`` files and checkpoint arrays agree within ``rtol`` of the
largest magnitude in their file (or 1, if larger), those of probe text
within ``rtol`` of their column's;
everything that is not a computed float — file names, frame counts,
timestamps, batch indices, neuron counts, headers, the text around numbers —
must be identical. Two layouts of one network differ only by float32
summation order (a tile adds its part, the spatial ranks add the parts, a
BLAS call blocks its products by the tile's size): ~1e-7 relative, which a
few steps of dynamics carry along, hence LAYOUT_RTOL = 1e-5, far below any
real difference (a wrong halo, a missing batch element or a twice-reduced
sum move values by 1e-2 and more).
"""
import re
from pathlib import Path

import numpy as np

LAYOUT_RTOL = 1e-5
IGNORED = {"timers.txt", "checksums.sha256"}  # timings, not results; checksums of values compared within rtol
_POSITION = re.compile(r"(?P<file>.+)_filepos_FileStream(Read|Write)\.(bin|txt)$")  # an output file's
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|(?<![A-Za-z])[-+]?(?:nan|inf)(?![A-Za-z])")


class Differences:
    """What differs between two output folders, and the worst relative difference per kind."""

    def __init__(self, rtol=LAYOUT_RTOL):
        self.rtol = rtol
        self.problems = []
        self.worst = {}

    def note(self, kind, rel):
        """Keep the worst relative difference seen for a kind of output."""
        self.worst[kind] = max(self.worst.get(kind, 0.0), float(rel))

    def values(self, kind, where, ref, other):
        """Compare float arrays within ``rtol`` of the largest magnitude in ``ref``."""
        ref, other = np.asarray(ref, np.float64), np.asarray(other, np.float64)
        if ref.shape != other.shape:
            self.problems.append(f"{where}: shape {other.shape} != {ref.shape}")
            return
        if not np.array_equal(np.isfinite(ref), np.isfinite(other)) or \
                not np.array_equal(ref[~np.isfinite(ref)], other[~np.isfinite(other)], equal_nan=True):
            self.problems.append(f"{where}: non-finite values differ")
            return
        fin = np.isfinite(ref)
        if not fin.any():
            return
        scale = max(1.0, float(np.abs(ref[fin]).max()))
        diff = np.abs(ref[fin] - other[fin])
        rel = float(diff.max()) / scale
        self.note(kind, rel)
        if rel > self.rtol:
            k = int(np.argmax(diff))
            self.problems.append(f"{where}: differs by {rel:.3g} of its scale {scale:.4g} "
                                 f"(value {k}: {other[fin][k]!r} instead of {ref[fin][k]!r})")


def output_files(root):
    """Relative paths of a run's output files (timings left out)."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name not in IGNORED)


def compare_runs(ref, other, rtol=LAYOUT_RTOL, files=None):
    """:class:`Differences` between the output folders ``ref`` and ``other``: of ``files``
    (relative paths; default every file, and then both folders must hold the same files)."""
    ref, other = Path(ref).resolve(), Path(other).resolve()
    d = Differences(rtol)
    a, b = output_files(ref), output_files(other)
    by_name = [_outputs_by_name(root, files) for root, files in ((ref, a), (other, b))]
    if files is None and a != b:
        d.problems.append(f"files only in the reference: {sorted(set(a) - set(b))}; "
                          f"only in the other run: {sorted(set(b) - set(a))}")
    elif files is not None:
        missing = sorted(set(files) - set(b))
        if missing:
            d.problems.append(f"files missing: {missing}")
        a = [f for f in a if f in set(files)]
    for rel in sorted(set(a) & set(b)):
        fa, fb = ref / rel, other / rel
        position = _POSITION.match(Path(rel).name)
        if position:
            _compare_file_position(d, rel, by_name, position["file"], (fa, fb))
        elif rel.endswith(".bin") and (ref / rel).with_suffix(".txt").is_file():
            continue  # an OpenPV checkpoint entry: its .txt beside it holds the same numbers
        elif rel.endswith(".pvp"):
            _compare_pvp(d, rel, fa, fb)
        elif rel.endswith(".h5"):
            _compare_h5(d, rel, fa, fb, (ref, other))
        else:
            try:
                ta, tb = fa.read_text(), fb.read_text()
            except UnicodeDecodeError:
                if fa.read_bytes() != fb.read_bytes():
                    d.problems.append(f"{rel}: bytes differ")
                continue
            _compare_text(d, rel, ta.replace(str(ref), "<out>"), tb.replace(str(other), "<out>"))
    return d


def _outputs_by_name(root, files):
    """A run's output files outside its checkpoints, by file name: {name: [paths, sorted]}."""
    index = {}
    for rel in files:
        if "Checkpoint" not in rel:
            index.setdefault(Path(rel).name, []).append(root / rel)
    return index


def _compare_pvp(d, rel, fa, fb):
    from pvmpi.io import pvp

    ha, hb = pvp.read_header(fa), pvp.read_header(fb)
    ha["nbatch"] = hb["nbatch"] = 0  # pvmpi writes the batch size there, OpenPV 1; no reader uses it
    bounds = [k for k in ("wMin", "wMax") if k in ha and k in hb]  # computed: within the tolerance
    d.values("pvp", f"{rel} (wMin, wMax)", [ha.pop(k) for k in bounds], [hb.pop(k) for k in bounds])
    if ha != hb:
        d.problems.append(f"{rel}: headers differ: {hb} instead of {ha}")
        return
    if ha["datatype"] == pvp.DATATYPE_TAUS_UINT4:  # random generator states: equal, bit for bit
        from pvmpi.io.openpv_checkpoint import read_rand_state

        sa, sb = read_rand_state(fa), read_rand_state(fb)
        if not np.array_equal(sa, sb):
            d.problems.append(f"{rel}: {int((sa != sb).any(axis=-1).sum())} generator states differ")
        return
    ra, rb = pvp.read(fa), pvp.read(fb)
    if not np.array_equal(ra.times, rb.times):
        d.problems.append(f"{rel}: timestamps {list(rb.times)} instead of {list(ra.times)}")
        return
    d.values("pvp", rel, ra.values, rb.values)


def _compare_h5(d, rel, fa, fb, roots):
    """Every dataset and attribute; the writer's layout is metadata, not a result."""
    import h5py

    with h5py.File(fa, "r") as ha, h5py.File(fb, "r") as hb:
        names_a, names_b = [], []
        ha.visit(names_a.append)
        hb.visit(names_b.append)
        if names_a != names_b:
            d.problems.append(f"{rel}: entries differ: {sorted(set(names_a) ^ set(names_b))}")
        for name in ["/"] + [n for n in names_a if n in set(names_b)]:
            oa, ob = ha[name], hb[name]
            attrs_a, attrs_b = (_attrs(o, root) for o, root in ((oa, roots[0]), (ob, roots[1])))
            if attrs_a != attrs_b:
                keys = sorted(k for k in set(attrs_a) | set(attrs_b) if attrs_a.get(k) != attrs_b.get(k))
                d.problems.append(f"{rel}:{name}: attributes {keys} differ: "
                                  f"{[attrs_b.get(k) for k in keys]} instead of {[attrs_a.get(k) for k in keys]}")
            if isinstance(oa, h5py.Dataset):
                va, vb = oa[()], ob[()]
                if np.issubdtype(np.asarray(va).dtype, np.floating):
                    d.values("checkpoint", f"{rel}:{name}", va, vb)
                elif name.endswith("/file_positions"):
                    _compare_positions(d, f"{rel}:{name}", roots, name.split("/")[-2], va, vb)
                elif not np.array_equal(va, vb):
                    d.problems.append(f"{rel}:{name}: {vb!r} instead of {va!r}")


def _compare_file_position(d, rel, by_name, name, entries):
    """An OpenPV checkpoint's position in an output file must be the same line of each run's own
    probe file (a number may print with more characters), the same frame of its own activity
    file (a sparse frame stores as many values as are nonzero), else the same byte."""
    from pvmpi.errors import PvmpiError
    from pvmpi.io import pvp

    pa, pb = (int(np.fromfile(f, "<i8")[0]) if f.suffix == ".bin" else int(f.read_text().split()[0])
              for f in entries)
    name = name if name.endswith(".txt") else name + ".pvp"
    files = [index.get(name, []) for index in by_name]
    if not all(files) or pa == pb:
        if pa != pb:
            d.problems.append(f"{rel}: byte {pb} instead of {pa}")
        return
    if name.endswith(".txt"):
        _same_line(d, rel, files[0][0], files[1][0], pa, pb)
        return
    try:
        with pvp.ActivityFile(files[0][0]) as fa, pvp.ActivityFile(files[1][0]) as fb:
            ka, kb = fa.frames_before(pa), fb.frames_before(pb)
    except PvmpiError:  # a weights file: frames of one size, so the bytes must match
        ka = kb = None
    if ka is None or ka != kb:
        d.problems.append(f"{rel}: byte {pb} instead of {pa}, not the same frame of {name}")


def _same_line(d, where, fa, fb, pa, pb):
    """Whether byte ``pa`` of ``fa`` and ``pb`` of ``fb`` both start a line, the same one."""
    la, lb = fa.read_bytes()[:int(pa)], fb.read_bytes()[:int(pb)]
    if la.count(b"\n") != lb.count(b"\n") or not (la.endswith(b"\n") or not la) \
            or not (lb.endswith(b"\n") or not lb):
        d.problems.append(f"{where}: byte {pb} instead of {pa}, not the same line of its file")


def _compare_positions(d, where, roots, probe, va, vb):
    """A probe's checkpointed byte offsets, one per batch element, must point at the same line of
    each run's own file: a value that rounds differently may print with another number of
    characters (QuotientProbe's %g), so the offsets themselves may differ."""
    for g, (pa, pb) in enumerate(zip(va, vb)):
        files = [sorted(Path(r).glob(f"{probe}_batchElement_{g}.*")) for r in roots]
        if not all(files):
            if pa != pb:
                d.problems.append(f"{where}: batch element {g} at byte {pb} instead of {pa}")
            continue
        _same_line(d, f"{where}: batch element {g}", files[0][0], files[1][0], pa, pb)


IGNORED_ATTRS = {"layout", "sha256"}  # the writing layout; checksums of values compared within tolerance


def _attrs(obj, root):
    """An HDF5 object's attributes as comparable values, the run's own folder as <out>."""
    out = {}
    for k, v in obj.attrs.items():
        if k in IGNORED_ATTRS:
            continue
        if isinstance(v, bytes):
            v = v.decode()
        out[k] = v.replace(str(root), "<out>") if isinstance(v, str) else np.asarray(v).tolist()
    return out


def _compare_text(d, rel, ta, tb):
    """Each column of numbers within rtol of its own largest magnitude, integers exact, all else identical.

    A column is the k-th number of lines with the same text before it: a probe's values are not
    measured against its neuron count or the time.
    """
    words_a, words_b = _NUMBER.split(ta), _NUMBER.split(tb)
    if words_a != words_b:
        la, lb = ta.splitlines(), tb.splitlines()
        k = next((i for i, (x, y) in enumerate(zip(la, lb)) if _NUMBER.split(x) != _NUMBER.split(y)),
                 min(len(la), len(lb)))
        d.problems.append(f"{rel}: line {k + 1} differs beyond its numbers: "
                          f"{lb[k] if k < len(lb) else '<end>'!r} instead of "
                          f"{la[k] if k < len(la) else '<end>'!r}")
        return
    kind = "timestamps" if rel.startswith("timestamps") else "probe text"
    columns = {}  # (text before the number on its line, its place): ([ref], [other])
    for la, lb in zip(ta.splitlines(), tb.splitlines()):
        words = _NUMBER.split(la)
        for k, (x, y) in enumerate(zip(_NUMBER.findall(la), _NUMBER.findall(lb))):
            if re.fullmatch(r"[-+]?\d+", x):
                if x != y:
                    d.problems.append(f"{rel}: integers (indices, counts) differ: {lb!r} instead of {la!r}")
                    return
                continue
            ref, other = columns.setdefault((words[k].strip(), k), ([], []))
            ref.append(float(x))
            other.append(float(y))
    for (_, k), (ref, other) in columns.items():
        before = len(d.problems)
        d.values(kind, f"{rel} (column {k + 1})", ref, other)
        if len(d.problems) > before:
            return

"""Probe text files into numpy columns, for analysis scripts and plots (facts §5).

:func:`read` recognises every probe output format of OpenPV (and pvmpi,
which writes the same lines):

========================  =====================================================  ==========================
kind                      line                                                   columns
========================  =====================================================  ==========================
``norm`` (L0/L1/L2, cost)  ``[message:] t, b, N, value``                           time, batch, neurons, value
``energy``                header ``time,index,energy``, then ``t, b, E``          time, batch, energy, value
``stats`` (StatsProbe)     ``[msg:]t==t b==b N==n Total==.. Min==.. Avg==.. Max==..   time, batch, N, Total, Min,
                          sigma==.. nnz==..``                                    Avg, Max, sigma, nnz
``timescale``             ``t, b, timeScale, timeScaleTrue, timeScaleMax`` or the  time, batch, timeScale,
                          field-name form ``sim_time = t`` / ``batch = b, ...``    timeScaleTrue, timeScaleMax
========================  =====================================================  ==========================

Columns are 1-D numpy arrays (``batch`` and counts are int64, the rest
float64), one entry per line, so ``pandas.DataFrame(read(path))`` works
as it is. :func:`read_batch` gathers the per-batch-element files
``<name>_batchElement_<g>.<ext>`` of one probe into ``[batch, time]`` arrays.

Lines written to the log instead of a file (``"ProbeName",`` prefix, as
OpenPV does without ``probeOutputFile``) are read too; the name goes to
``table.message``.
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np

from pvmpi.errors import PvmpiError

_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)"
_INT = r"[-+]?\d+"
_SEP = r"\s*,\s*"

_NORM = re.compile(rf"^(?:(?P<msg>.*?):)?\s*(?P<time>{_NUM}){_SEP}(?P<batch>{_INT}){_SEP}"
                   rf"(?P<neurons>{_INT}){_SEP}(?P<value>{_NUM})\s*$", re.I)
_ENERGY = re.compile(rf'^(?:"(?P<msg>[^"]*)"\s*,)?\s*(?P<time>{_NUM}){_SEP}(?P<batch>{_INT}){_SEP}'
                     rf"(?P<energy>{_NUM})\s*$", re.I)
_TIMESCALE = re.compile(rf"^\s*(?P<time>{_NUM}){_SEP}(?P<batch>{_INT}){_SEP}(?P<timeScale>{_NUM})"
                        rf"{_SEP}(?P<timeScaleTrue>{_NUM}){_SEP}(?P<timeScaleMax>{_NUM})\s*$", re.I)
_STATS = re.compile(rf"^(?:(?P<msg>.*?):)?\s*t==\s*(?P<time>{_NUM})\s+b==\s*(?P<batch>{_INT})\s+"
                    rf"N==\s*(?P<N>{_INT})\s+Total==\s*(?P<Total>{_NUM})\s+Min==\s*(?P<Min>{_NUM})\s+"
                    rf"Avg==\s*(?P<Avg>{_NUM})(?:\s+Hz \(/dt ms\))?\s+Max==\s*(?P<Max>{_NUM})\s+sigma==\s*(?P<sigma>{_NUM})"
                    rf"\s+nnz==\s*(?P<nnz>{_INT})\s*$", re.I)
_SIM_TIME = re.compile(rf"^\s*sim_time\s*=\s*(?P<time>{_NUM})\s*$", re.I)
_TS_FIELDS = re.compile(rf"^\s*batch\s*=\s*(?P<batch>{_INT})\s*,\s*timeScale\s*=\s*(?P<timeScale>{_NUM})"
                        rf"\s*,\s*timeScaleTrue\s*=\s*(?P<timeScaleTrue>{_NUM})\s*,\s*"
                        rf"timeScaleMax\s*=\s*(?P<timeScaleMax>{_NUM})\s*$", re.I)
_ENERGY_HEADER = re.compile(r"^\s*(?:Probe_name\s*,\s*)?time\s*,\s*index\s*,\s*energy\s*$", re.I)

COLUMNS = {
    "norm": ("time", "batch", "neurons", "value"),
    "energy": ("time", "batch", "energy"),
    "stats": ("time", "batch", "N", "Total", "Min", "Avg", "Max", "sigma", "nnz"),
    "timescale": ("time", "batch", "timeScale", "timeScaleTrue", "timeScaleMax"),
}
_INT_COLUMNS = {"batch", "neurons", "N", "nnz"}


class ProbeTable(dict):
    """Columns of one probe file: ``{name: 1-D array}``, plus what kind of probe wrote it.

    ``kind`` is one of ``norm``, ``energy``, ``stats``, ``timescale``;
    ``message`` is the line prefix (a probe's ``message``, or its name in
    log output), or None.
    """

    def __init__(self, columns, kind, path=None, message=None):
        super().__init__(columns)
        self.kind = kind
        self.path = path
        self.message = message

    @property
    def rows(self):
        """Number of samples (lines; the last axis of read_batch's arrays)."""
        return self["time"].shape[-1] if "time" in self else 0

    def __repr__(self):
        return (f"ProbeTable(kind={self.kind!r}, rows={self.rows}, columns={list(self.keys())}, "
                f"path={self.path!r})")


def _value(name, text):
    return int(text) if name in _INT_COLUMNS else float(text)


def _detect(lines, path):
    """The kind of a probe file from its first meaningful lines."""
    for line in lines:
        if _ENERGY_HEADER.match(line):
            return "energy"
        if _SIM_TIME.match(line) or _TS_FIELDS.match(line):
            return "timescale"
        if _STATS.match(line):
            return "stats"
        if _TIMESCALE.match(line):
            return "timescale"
        if _NORM.match(line):
            return "norm"
        if _ENERGY.match(line):
            return "energy"
        raise PvmpiError(f"not a probe output line: {line.strip()[:80]!r}", file=path,
                         hint="expected a norm, energy, stats or adaptive time-scale probe file")
    return None


def parse(text, path="<text>", kind=None):
    """Parse the contents of a probe file (see :func:`read`)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    kind = kind or _detect(lines, path)
    if kind is None:  # empty file: no rows, columns unknown
        return ProbeTable({"time": np.empty(0), "batch": np.empty(0, np.int64)}, None, path)
    if kind not in COLUMNS:
        raise ValueError(f"unknown probe kind {kind!r}; one of {sorted(COLUMNS)}")
    names = COLUMNS[kind]
    rows = {name: [] for name in names}
    message = None
    sim_time = None
    pattern = {"norm": _NORM, "energy": _ENERGY, "stats": _STATS, "timescale": _TIMESCALE}[kind]
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if kind == "energy" and _ENERGY_HEADER.match(line):
            continue
        if kind == "timescale":
            m = _SIM_TIME.match(line)
            if m:
                sim_time = float(m["time"])
                continue
            m = _TS_FIELDS.match(line)
            if m:
                if sim_time is None:
                    raise PvmpiError("'batch = ...' line before any 'sim_time = ...' line",
                                     file=path, line=lineno)
                rows["time"].append(sim_time)
                for name in names[1:]:
                    rows[name].append(_value(name, m[name]))
                continue
        m = pattern.match(line)
        if m is None:
            raise PvmpiError(f"unexpected line in a {kind} probe file: {line.strip()[:80]!r}",
                             file=path, line=lineno)
        for name in names:
            rows[name].append(_value(name, m[name]))
        if message is None and "msg" in pattern.groupindex and m["msg"]:
            message = m["msg"].strip()
    columns = {name: np.asarray(vals, np.int64 if name in _INT_COLUMNS else np.float64)
               for name, vals in rows.items()}
    if kind == "energy":
        columns["value"] = columns["energy"]  # the one value, under the common name
    return ProbeTable(columns, kind, path, message)


def read(path, kind=None):
    """Read one probe text file into a :class:`ProbeTable` of numpy columns.

    ``kind`` (``norm``, ``energy``, ``stats``, ``timescale``) forces the
    format; by default it is recognised from the lines themselves.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise PvmpiError("probe file not found", file=str(path)) from None
    except OSError as exc:
        raise PvmpiError(f"cannot read probe file: {exc.strerror}", file=str(path)) from None
    return parse(text, str(path), kind)


_BATCH_FILE = re.compile(r"^(?P<stem>.*)_batchElement_(?P<g>\d+)(?P<ext>\.[^./]*)?$")


def batch_files(dirpath, name):
    """``{g: path}`` of the files ``<name>_batchElement_<g>.<ext>`` in ``dirpath``.

    ``name`` is the probe's ``probeOutputFile`` with or without its
    extension (``energy.txt`` or ``energy``).
    """
    stem, ext = os.path.splitext(name)
    found = {}
    for path in glob.glob(os.path.join(glob.escape(str(dirpath)), f"{glob.escape(stem)}_batchElement_*")):
        m = _BATCH_FILE.match(os.path.basename(path))
        if m is None or m["stem"] != os.path.basename(stem) or (ext and (m["ext"] or "") != ext):
            continue
        found[int(m["g"])] = path
    return dict(sorted(found.items()))


def probe_names(dirpath):
    """Names (``probeOutputFile`` values) of the per-batch-element probe files in ``dirpath``."""
    names = set()
    for entry in os.listdir(dirpath):
        m = _BATCH_FILE.match(entry)
        if m and os.path.isfile(os.path.join(dirpath, entry)):
            names.add(m["stem"] + (m["ext"] or ""))
    return sorted(names)


def read_batch(dirpath, name, kind=None):
    """All batch elements of one probe as ``[batch, time]`` arrays.

    Returns a :class:`ProbeTable` whose columns are 2-D: row g holds batch
    element g (files ``<name>_batchElement_<g>.<ext>``). Files of unequal
    length (an interrupted run) are padded at the end with NaN (float
    columns) or -1 (integer columns). ``table.batch_indices`` lists the
    global batch indices found.
    """
    files = batch_files(dirpath, name)
    if not files:
        raise PvmpiError(f"no files {os.path.splitext(name)[0]}_batchElement_<g>"
                         f"{os.path.splitext(name)[1] or '.*'}", file=str(dirpath))
    tables = [read(path, kind) for path in files.values()]
    kinds = {t.kind for t in tables if t.kind is not None}
    if len(kinds) > 1:
        raise PvmpiError(f"batch-element files of '{name}' hold different probe kinds: "
                         f"{sorted(kinds)}", file=str(dirpath))
    kind = kinds.pop() if kinds else None
    template = next((t for t in tables if t.kind is not None), tables[0])
    length = max(t.rows for t in tables)
    columns = {}
    for col, first in template.items():
        fill = -1 if first.dtype.kind == "i" else np.nan
        out = np.full((len(tables), length), fill, first.dtype)
        for i, t in enumerate(tables):
            if col in t:
                out[i, :len(t[col])] = t[col]
        columns[col] = out
    if kind == "energy":
        columns["value"] = columns["energy"]
    result = ProbeTable(columns, kind, str(dirpath), template.message)
    result.batch_indices = np.array(list(files), np.int64)
    return result

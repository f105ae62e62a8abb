"""Output files that survive a crash: atomic whole files, durable streams, exact continuation.

* A file written whole (the cleaned params, timers.txt) goes to a temporary
  name, is fsync'ed and renamed over the old one (:func:`write_atomic`): a
  reader sees the old file or the new one, never half of one.
* A stream (PVP outputs, probe text files) grows by whole frames or lines and
  is registered here (:func:`track`); a checkpoint first calls
  :func:`sync_outputs`, so the frame counts and byte positions it records are
  on disk before the checkpoint itself appears.
* A restart in the checkpointed run's output directory continues every file
  exactly. Where a file is missing or shorter than the checkpoint says (a new
  output directory, another nbatch), it starts anew with a warning rather than
  failing the restart.
"""
import os
import warnings
import weakref
from collections import deque
from contextlib import contextmanager

_STREAMS = weakref.WeakSet()  # open output streams of this process; closed ones drop out
_REWINDABLE = weakref.WeakSet()  # output streams that can be cut back: PVP writers and text files
_point = 0  # restore points taken so far (see Rewindable)
_kept = 0  # the oldest restore point still needed: a stream forgets its notes of older ones


def track(f):
    """Register an open output file for :func:`sync_outputs`; returns it."""
    _STREAMS.add(f)
    return f


def rewindable(stream):
    """Register a :class:`Rewindable` output stream (a PVP writer, a text file) for :func:`cut_back`;
    returns it."""
    _REWINDABLE.add(stream)
    return stream


def restore_point():
    """A new restore point: where every output stream stands now (an int for :func:`cut_back`).

    Costs nothing per stream: each notes its place at its first write after a point.
    """
    global _point
    _point += 1
    return _point


def forget_before(point):
    """Restore points before ``point`` will not be cut back to: streams may drop their notes of them."""
    global _kept
    _kept = max(_kept, point)


def cut_back(point):
    """Cut every open stream back to where it stood at restore ``point``: the writes of a step found
    not finite, and of any after it."""
    for s in list(_REWINDABLE):
        if not s.closed:
            s.rewind(point)


class Rewindable:
    """An output stream that can be cut back to a restore point (:func:`restore_point`).

    A subclass calls :meth:`_note` before each write and has ``_place()`` (where
    it stands: bytes or frames) and ``truncate(place)``.
    """

    _noted = 0
    _notes = None

    def _note(self):
        """Before a write: the first one after a restore point notes where the stream stands."""
        if self._noted != _point:
            self._noted = _point
            if self._notes is None:
                self._notes = deque()
            notes = self._notes
            while notes and notes[0][0] < _kept:
                notes.popleft()
            notes.append((_point, self._place()))

    def rewind(self, point):
        """Cut back to where the stream stood at restore ``point`` (nothing if it has not written since)."""
        for noted, place in self._notes or ():
            if noted >= point:
                self.truncate(place)
                self._notes.clear()
                return


class TextStream(Rewindable):
    """A text output file that counts the bytes it writes, so its position costs no flush
    (``tell()`` of a Python text file flushes it, about 4 us a file)."""

    def __init__(self, f):
        self._f = f
        self.name = f.name
        self._position = f.tell()

    def write(self, text):
        """Append text (an error names the file; a try costs nothing, ``naming`` a few us a line)."""
        self._note()
        try:
            self._f.write(text)
        except OSError as e:
            _rename(e, self.name)
        self._position += len(text) if text.isascii() else len(text.encode("utf-8"))

    def tell(self):
        """Bytes written so far: where the next text goes."""
        return self._position

    _place = tell

    def truncate(self, position):
        """Cut the file back to byte ``position`` and go on writing there."""
        with naming(self.name):
            self._f.flush()
            self._f.seek(position)
            self._f.truncate()
        self._position = position

    def flush(self):
        """Flush the file (an error names it)."""
        with naming(self.name):
            self._f.flush()

    def fileno(self):
        """The file's descriptor (for fsync)."""
        return self._f.fileno()

    @property
    def closed(self):
        return self._f.closed

    def close(self):
        """Close the file (an error names it)."""
        with naming(self.name):
            self._f.close()


def _rename(e, path):
    """Raise OSError e, naming ``path`` where it names no file."""
    if e.filename is None:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    raise e


@contextmanager
def naming(path):
    """An OSError raised inside names ``path`` (a failed write on an open file names none: a full
    disk would otherwise be reported without the file it filled)."""
    try:
        yield
    except OSError as e:
        _rename(e, path)


def sync_outputs():
    """Flush and fsync every open output stream of this process."""
    for f in list(_STREAMS):
        if not f.closed:
            f.flush()
            os.fsync(f.fileno())


def fsync_path(path):
    """fsync a file or a directory by name (a directory: so that a rename in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path):
    """fsync every file under `path`, then the directories, deepest first."""
    for root, _, files in os.walk(path, topdown=False):
        for name in files:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


def write_atomic(path, text):
    """Write a text file under a temporary name, fsync it, rename it over `path`, fsync the directory."""
    path = str(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(os.path.dirname(os.path.abspath(path)))


def continue_output(writer, frames):
    """Truncate a PVP writer opened with append=True to the checkpointed frame count."""
    frames = int(frames)
    if writer.num_frames < frames:
        warnings.warn(f"{writer.path}: holds {writer.num_frames} frames, the checkpoint expects {frames}; "
                      "the file starts anew")
        frames = 0
    writer.truncate(frames)


def open_text(path, position=None):
    """A text output file (:class:`TextStream`): new, or (restart) cut back to the checkpointed byte
    position and appended."""
    if position is None:
        return _text_stream(open(path, "w", encoding="utf-8"))
    position = int(position)
    size = os.path.getsize(path) if os.path.exists(path) else -1
    if size < position:
        warnings.warn(f"{path}: holds {max(size, 0)} bytes, the checkpoint expects {position}; "
                      "the file starts anew")
        return _text_stream(open(path, "w", encoding="utf-8"))
    f = open(path, "r+", encoding="utf-8")
    f.truncate(position)
    f.seek(position)
    return _text_stream(f)


def _text_stream(f):
    track(f)
    return rewindable(TextStream(f))

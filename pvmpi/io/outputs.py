"""Continuing output files after a restart: cut back to the checkpointed position, then append.

A restart in the checkpointed run's output directory continues every file
exactly. Where a file is missing or shorter than the checkpoint says (a new
output directory, another nbatch), it starts anew with a warning rather than
failing the restart.
"""
import os
import warnings


def continue_output(writer, frames):
    """Truncate a PVP writer opened with append=True to the checkpointed frame count."""
    frames = int(frames)
    if writer.num_frames < frames:
        warnings.warn(f"{writer.path}: holds {writer.num_frames} frames, the checkpoint expects {frames}; "
                      "the file starts anew")
        frames = 0
    writer.truncate(frames)


def open_text(path, position=None):
    """A text output file: new, or (restart) cut back to the checkpointed byte position and appended."""
    if position is None:
        return open(path, "w", encoding="utf-8")
    position = int(position)
    size = os.path.getsize(path) if os.path.exists(path) else -1
    if size < position:
        warnings.warn(f"{path}: holds {max(size, 0)} bytes, the checkpoint expects {position}; "
                      "the file starts anew")
        return open(path, "w", encoding="utf-8")
    f = open(path, "r+", encoding="utf-8")
    f.truncate(position)
    f.seek(position)
    return f

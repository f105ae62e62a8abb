"""Per-batch-element probe output files (facts §5.1).

``probeOutputFile = "dir/name.ext"`` gives one file per global batch element,
``dir/name_batchElement_<g>.ext``. The spatial root of each batch slice
writes the files of its own batch elements, so probe output needs no
communication across batch slices.
"""
import os
import sys

from ..io.outputs import naming, open_text


def batch_file_name(path, g):
    """File of global batch element g: ``dir/name_batchElement_<g>.ext`` for ``dir/name.ext``."""
    stem, ext = os.path.splitext(path)
    return f"{stem}_batchElement_{g}{ext}"


class BatchFiles:
    """Text sinks for this rank's batch elements (None on ranks that do not write)."""

    def __init__(self, run, probe_output_file, name, positions=None):
        self.files = {}
        self.to_log = probe_output_file is None
        self.name = name
        comms = run.comms
        self.writes = comms.is_spatial_root
        self.kb0 = None
        if not self.writes:
            return
        tile = run.batch_slice
        self.kb0, self.nb = tile
        if not self.to_log:
            for b in range(self.nb):
                g = self.kb0 + b
                pos = None if positions is None else int(positions[b])
                self.files[g] = open_text(run.output_file(batch_file_name(probe_output_file, g)), pos)

    def write(self, b, text):
        """Write text for local batch element b."""
        if not self.writes:
            return
        if self.to_log:
            sys.stdout.write(text)
        else:
            self.files[self.kb0 + b].write(text)  # a TextStream: an error names the file

    def write_lines(self, texts):
        """Write texts[b] for each local batch element b (one line each)."""
        if not self.writes:
            return
        if self.to_log:
            sys.stdout.write("".join(texts))
            return
        files, kb0 = self.files, self.kb0
        for b, text in enumerate(texts):
            files[kb0 + b].write(text)

    def write_all(self, text):
        """Write text (e.g. a header) to every local batch element's file."""
        for b in range(self.nb if self.writes else 0):
            self.write(b, text)

    def positions(self):
        """Byte position of each local batch element's file (-1 where there is none)."""
        import numpy as np

        self.flush()
        if not self.writes:
            return None
        return np.array([self.files[self.kb0 + b].tell() if self.files else -1 for b in range(self.nb)],
                        np.int64)

    def flush(self):
        """Flush the files, or stdout when the probe writes to the log."""
        for f in self.files.values():
            with naming(f.name):
                f.flush()
        if self.to_log and self.writes:
            sys.stdout.flush()

    def close(self):
        """Close the files."""
        for f in self.files.values():
            f.close()
        self.files = {}

"""The one error type a user can cause, and its one-line message.

Every mistake in a config, an input file or a layout is raised as a
:class:`PvmpiError`; the command line prints it once (rank 0) as

    pvmpi: error: <file>:<line>: <group>.<param>: <what> (<hint>)

leaving out the parts that are unknown, and exits non-zero.
"""


class PvmpiError(Exception):
    """A user-caused error: bad config, bad input file, impossible layout."""

    def __init__(self, what, *, file=None, line=None, group=None, param=None, hint=None):
        self.what = what
        self.file = file
        self.line = line
        self.group = group
        self.param = param
        self.hint = hint
        super().__init__(self.message())

    def message(self):
        """``<file>:<line>: <group>.<param>: <what> (<hint>)``, the unknown parts left out."""
        parts = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.line}" if self.line is not None else str(self.file))
        if self.group is not None or self.param is not None:
            parts.append(".".join(p for p in (self.group, self.param) if p is not None))
        text = self.what if self.hint is None else f"{self.what} ({self.hint})"
        return ": ".join(parts + [text])

    def __str__(self):
        return self.message()

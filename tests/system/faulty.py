"""``python faulty.py step=K,rank=R[,kind=user|nospace] PVMPI-ARGS...``: pvmpi's command line with an
exception raised on rank R (or ``all``) at step K of the time loop, to test the abort path (a bug on
one rank mid-run; ``kind=user``: a user error met by one rank; ``kind=nospace``: the disk full as the
step's outputs are written)."""
import errno
import sys


def main(spec, argv):
    from pvmpi.cli import main as pvmpi_main
    from pvmpi.errors import PvmpiError
    from pvmpi.network.column import Column

    opts = dict(item.split("=", 1) for item in spec.split(","))
    step, kind, who = int(opts.get("step", "1")), opts.get("kind", "internal"), opts.get("rank", "0")
    advance = Column.advance

    def faulty_advance(column):
        rank = column.comms.rank
        if who in ("all", str(rank)) and column.step + 1 == step:
            if kind == "user":
                raise PvmpiError(f"injected user error at step {step}", file="faulty.py")
            if kind == "nospace":
                raise OSError(errno.ENOSPC, "No space left on device", "out/Err.pvp")
            raise RuntimeError(f"injected fault at step {step} on rank {rank}")
        advance(column)

    Column.advance = faulty_advance
    return pvmpi_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))

"""``python -m pvmpi bench ...``: the benchmark of one config, ``bench scaling`` over MPI layouts, ``bench model``."""
import argparse
import os


def _pin_blas_threads(argv):
    """Give BLAS (numpy's, used by the numpy reference) the rank's thread count, as Numba gets.

    Must run before numpy is imported; a user's own OPENBLAS/MKL setting wins.
    """
    from ..cli import set_threads

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-t", "--threads", type=int)
    threads = pre.parse_known_args(argv)[0].threads
    if threads is not None and threads < 1:
        return  # the bench's own parser reports it
    set_threads(threads)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, os.environ["NUMBA_NUM_THREADS"])


def main(argv):
    """Dispatch ``bench scaling`` and ``bench model``; anything else is the one-config bench, run after
    BLAS gets the rank's thread count."""
    if argv and argv[0] == "scaling":
        from .scaling import main as scaling_main

        return scaling_main(argv[1:])
    if argv and argv[0] == "model":
        from .model import main as model_main

        return model_main(argv[1:])
    _pin_blas_threads(argv)
    from .run import main as run_main

    return run_main(argv)

"""``python -m pvmpi bench ...``: the benchmark of one config, or ``bench scaling`` over MPI layouts."""


def main(argv):
    if argv and argv[0] == "scaling":
        from .scaling import main as scaling_main

        return scaling_main(argv[1:])
    from .run import main as run_main

    return run_main(argv)

"""The benchmark network's inputs, made by pvmpi: ``input/imagelist.txt`` and 8 dead-leaves images of
128x128 in ``input/images/``, the layout of OpenPV's benchmark folder (``configs/lca_bench.yaml``
reads ``input/imagelist.txt`` relative to the folder it runs in).

``python -m pvmpi.data.bench_inputs [DIR]`` makes them in DIR (default: here).
"""
import argparse
from pathlib import Path

from .dead_leaves import make_image_set

COUNT, SIZE, SEED = 8, 128, 20261206  # OpenPV's folder: 8 gray images of 128x128


def make_bench_inputs(directory="."):
    """Write ``DIR/input/images/image_*.png`` and ``DIR/input/imagelist.txt`` (paths relative to DIR,
    as OpenPV's list); an existing set made alike is kept. Returns the list's path."""
    root = Path(directory)
    images = make_image_set(root / "input" / "images", COUNT, SIZE, SEED)
    names = [Path(line).name for line in images.read_text().splitlines()]
    listfile = root / "input" / "imagelist.txt"
    listfile.write_text("".join(f"input/images/{n}\n" for n in names))
    return listfile


def main(argv=None):
    """``python -m pvmpi.data.bench_inputs [DIR]``: print the list's path."""
    parser = argparse.ArgumentParser(prog="python -m pvmpi.data.bench_inputs",
                                     description="Write the benchmark network's input images.")
    parser.add_argument("directory", nargs="?", default=".")
    print(make_bench_inputs(parser.parse_args(argv).directory))


if __name__ == "__main__":
    main()

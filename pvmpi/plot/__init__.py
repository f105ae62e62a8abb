"""Figures of a run's outputs (``python -m pvmpi plot``): matplotlib, imported only when plotting.

``plot_output(OUTPUT_DIR)`` writes every figure; :mod:`pvmpi.plot.figures`
has one function per figure for use in analysis scripts.
"""


def plot_output(output_dir, plot_dir=None, **options):
    """Write the PNG figures of a run's output directory; returns their paths."""
    from .cli import plot_output as _plot_output

    return _plot_output(output_dir, plot_dir, **options)

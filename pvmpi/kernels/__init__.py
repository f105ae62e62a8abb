"""pvmpi.kernels."""

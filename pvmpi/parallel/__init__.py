"""pvmpi.parallel."""

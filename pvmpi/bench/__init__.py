"""pvmpi.bench."""

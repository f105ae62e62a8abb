"""pvmpi.io."""

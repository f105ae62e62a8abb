"""pvmpi.network."""

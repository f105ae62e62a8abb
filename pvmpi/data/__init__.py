"""pvmpi.data."""

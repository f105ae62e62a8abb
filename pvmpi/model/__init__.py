"""pvmpi.model."""

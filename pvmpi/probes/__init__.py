"""pvmpi.probes."""

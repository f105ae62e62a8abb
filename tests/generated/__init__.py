"""Hypothesis strategies that draw whole pvmpi networks, and the comparison of their outputs."""

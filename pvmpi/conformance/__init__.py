"""Comparing runs file by file: a run against another layout of itself, or against OpenPV.

``compare`` compares two output folders within a tolerance; ``oracle`` runs a
params file through OpenPV (``PVMPI_OPENPV``, the path of a ``pvrun``) and
through pvmpi in scratch copies of its folder; ``suite`` walks a folder of
OpenPV params files and classifies each (``python -m pvmpi conformance DIR``).
"""

"""pip and setuptools read everything from pyproject.toml; this file only lets older tools find it."""
from setuptools import setup

setup()

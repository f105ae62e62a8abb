"""Entry point of ``python -m pvmpi``."""
import sys

from .cli import main

sys.exit(main())

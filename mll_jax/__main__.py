"""`python -m mll_jax ...` runs the command line."""

import sys

from mll_jax.cli import main

sys.exit(main())

"""`python -m evolution.cli`: the same as the `evolve` command."""

import sys

from evolution.cli import main

sys.exit(main())

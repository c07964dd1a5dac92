"""``python -m lcamlab.paper extract|show``: the same as ``lcamlab paper extract|show``."""

import sys

from lcamlab.cli import main

raise SystemExit(main(["paper", *sys.argv[1:]]))

"""``python -m lcamlab``: the same command line as the ``lcamlab`` console script."""

from lcamlab.cli import main

raise SystemExit(main())

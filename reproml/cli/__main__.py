"""`python -m reproml.cli ...`: the same as the `reproml` console script."""

import sys

from reproml.cli.main import main

sys.exit(main())

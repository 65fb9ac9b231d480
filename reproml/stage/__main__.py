"""`python -m reproml.stage NOTEBOOK ...`: what every pipeline spec's transform runs."""

import sys

from reproml.stage.runner import main

sys.exit(main())

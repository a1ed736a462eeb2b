"""`python -m liftledger` runs the command line."""

import sys

from liftledger.cli import main

sys.exit(main())

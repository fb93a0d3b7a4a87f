"""`python -m dvsnet ...` runs the `dvsnet` command (dvsnet.cli.main)."""
import sys

from dvsnet.cli import main

sys.exit(main())

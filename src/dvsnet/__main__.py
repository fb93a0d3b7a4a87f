import sys

from dvsnet.cli import main

sys.exit(main())

"""`python -m switchboard.cli`: the `switchboard` command without its installed script."""

import sys

from switchboard.cli import main

sys.exit(main())

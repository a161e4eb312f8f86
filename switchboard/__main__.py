"""`python -m switchboard`: the same command as `switchboard` and `python -m switchboard.cli`."""

import sys

from switchboard.cli import main

sys.exit(main())

"""`switchboard schema`: the published JSON Schemas, printed from the models that define
them."""

from __future__ import annotations

import argparse
import sys

from switchboard.settings import Settings


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    """Print a JSON Schema: the message event, or with --outbound the commands and results."""
    from switchboard.commands import json_schemas
    from switchboard.events import json_schema

    sys.stdout.buffer.write(json_schemas() if args.outbound else json_schema())
    return 0

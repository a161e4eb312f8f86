"""What `switchboard run` says to whoever started it: the banner once everything is ready
(where things are, and commands to paste) and the warning before its workers join the groups
of a cluster named by KAFKA_BOOTSTRAP_SERVERS. Kept apart from starting the parts
(switchboard.cli.run), which decides when each is said.
"""

from __future__ import annotations

import sys
from pathlib import Path

from switchboard.cli.startup import DEMO_ACCOUNTS
from switchboard.settings import Settings


def run_banner(*, base: str, sim: str, bootstrap: str, accounts: int, accounts_file: Path,
               rules_file: Path | None, program: str, name_prefix: str = "") -> str:
    """What `run` prints: where things are, and commands to paste (tested as shell input; the
    README shows it), `program` being how to start `switchboard` here (invoked_as). The
    examples use the demo accounts' credentials, so they are shown only for those. `tail`
    comes first: it starts at the newest record, so started after the requests it would show
    nothing of them. No `#` comments after a command: zsh, macOS's shell, passes them to the
    command when pasted."""
    prefix_env = f"SWITCHBOARD_KAFKA_NAME_PREFIX={name_prefix} " if name_prefix else ""
    examples = f"""Send a delivery report as a provider would:
  curl -u infobip:demo-infobip-password -H 'content-type: application/json' \\
       -d @examples/webhooks/infobip-delivery.json {base}/webhooks/infobip/demo-infobip
Make an end user text HELP to the demo Infobip number; the keyword bot answers through the
sender, and the last command shows what the simulated provider was asked to send:
  curl -H 'content-type: application/json' \\
       -d '{{"account": "demo-infobip", "from": "+41790000001", "text": "HELP"}}' \\
       {sim}/_sim/inbound
  curl '{sim}/_sim/sends?account=demo-infobip'""" if accounts_file == DEMO_ACCOUNTS else \
        f"""Providers call {base}/webhooks/<provider>/<account> with the account's credentials
(README: Receiving webhooks). Make an end user text one of your accounts:
  curl -H 'content-type: application/json' \\
       -d '{{"account": "<account>", "from": "+41790000001", "text": "HELP"}}' \\
       {sim}/_sim/inbound"""
    return f"""Ingest:    {base}/webhooks/<provider>/<account>  ({accounts} \
account{'' if accounts == 1 else 's'} from {accounts_file})
Simulator: {sim}  (the accounts' providers; it calls ingest back)
Workers:   sender, keywords (rules: {rules_file or 'none: STOP/START/HELP only'})

In a second terminal, first, watch the events as they arrive (tail starts at the newest
record; --all shows the earlier ones too):
  KAFKA_BOOTSTRAP_SERVERS={bootstrap} {prefix_env}{program} tail
{examples}
Ctrl-C stops everything."""


def warn_of_shared_groups(settings: Settings) -> None:
    """On a cluster named by KAFKA_BOOTSTRAP_SERVERS (one left exported, say), the workers
    join the groups of any install there without a prefix, and take partitions from them."""
    if settings.kafka_bootstrap_servers and not settings.kafka_name_prefix:
        print(f"warning: run's sender and keyword bot join the groups switchboard-sender and "
              f"switchboard-keywords on {settings.kafka_bootstrap_servers}: beside another "
              "install's workers they take their share of its commands (failed as unknown "
              "accounts) and messages (answered by these rules); set "
              "SWITCHBOARD_KAFKA_NAME_PREFIX to keep apart", file=sys.stderr, flush=True)

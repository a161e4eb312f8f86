"""Loading the per-provider outbound fixtures: tests/fixtures/<provider>/outbound/*.json for the
clients, and (at the end) tests/fixtures/<provider>/simulator/*.json for the provider simulator.

`account.json` is what the shared client suite needs to know about the provider:

    {
      "description": "the account it describes",
      "config": {...the account's outbound table...},
      "send_path": "/where/sends/go",
      "ok_reply": <reply>,                     # a success answer to a send
      "ok_id": "the provider_message_id that answer yields",
      "token": {"path": "...", "reply": <reply>}   # only for a client that fetches a token first
    }

Every other file there is one case: a command in, the HTTP requests out, and what the send
returns. The fake provider answers the token path with the token reply and anything else
with the case's `reply` (default: `ok_reply`):

    {
      "description": "what this case shows",
      "config": {...},              # optional, merged over account.json's config
      "context": {"webhook_url": ..., "plain_webhook_url": ...},   # optional SendContext fields
                                    # (default: webhook_url WEBHOOK, plain_webhook_url null)
      "command": {...},             # optional, merged over COMMAND
      "reply": <reply>,             # optional
      "requests": [{"method": "POST", "url": "...", "headers": {...}, "json": <JSON>}],
                                    # optional: every request made, in order ([]: none at all);
                                    # only the headers named are checked, null meaning absent
      "receipt": {"provider_message_id": ..., "provider_status": ...}    # or
      "error": {"retryable": ..., "code": ..., "maybe_sent": ..., "description": "exact",
                "description_has": "a fragment"}    # the SendError: the keys given are checked
    }

A <reply> is {"status": 200, "body": <JSON>} or {"status": 200, "text": "..."}, optionally with
"headers".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.fixtures import FIXTURES, Fixture

WEBHOOK = "https://switchboard.test/webhooks/acme"
COMMAND: dict[str, Any] = {"id": "cmd-1", "account": "acme", "to": "+38761222333",
                           "text": "Hello"}
ACCOUNT_FILE = "account.json"


def _read(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = orjson.loads(path.read_bytes())
    return spec


@dataclass(frozen=True)
class OutboundAccount:
    provider: str
    config: dict[str, Any]
    send_path: str
    ok_reply: dict[str, Any]
    ok_id: str
    token: dict[str, Any] | None


def load_outbound_account(provider: str) -> OutboundAccount:
    spec = _read(FIXTURES / provider / "outbound" / ACCOUNT_FILE)
    return OutboundAccount(provider, spec["config"], spec["send_path"], spec["ok_reply"],
                           spec["ok_id"], spec.get("token"))


def _cases(provider: str, folder: str, setup_file: str) -> list[Fixture]:
    """The files in <provider>/<folder>/ but its setup file, as `Fixture`s (their `id` is
    <provider>/<case>; `request()` is for webhooks only)."""
    return [Fixture(path.parent.parent.name, path.stem, path, _read(path))
            for path in sorted(FIXTURES.glob(f"{provider}/{folder}/*.json"))
            if path.name != setup_file]


def load_outbound_cases(provider: str = "*") -> list[Fixture]:
    return _cases(provider, "outbound", ACCOUNT_FILE)


# The provider simulator's side (tests/fixtures/<provider>/simulator/*.json). `accounts.json`:
#
#     {"description": "...", "accounts": {<name>: <account table>, ...},
#      "postbacks": {<name>: "a postback its inbound webhooks can carry", ...},
#      "refuses_postbacks": [<names whose inbound webhooks cannot>]}
#
# Every other file is one send to the simulator (`send.json`: the valid send every shared test
# makes; its "bad_request" is how the provider answers when the http_400 fault fires):
#
#     {"description": "...", "account": "the account the send is recorded for",
#      "token": {"path": "...", "json": <JSON>},   # optional: fetch one first; "{token}" in the
#                                                  # request's headers is replaced by it
#      "request": {"path": "...", "headers": {...}, "json": <JSON>},
#      "answer": {"status": 200, "json": <JSON the answer contains>},  # dict keys: a subset
#      "events": [{<field>: <value>, ...}, ...]}   # optional: the status webhooks it makes, as
#                                                  # normalized events, the fields named checked


SIMULATOR_ACCOUNTS_FILE = "accounts.json"


def load_simulator_accounts(provider: str) -> dict[str, Any]:
    return _read(FIXTURES / provider / "simulator" / SIMULATOR_ACCOUNTS_FILE)


def load_simulator_sends(provider: str = "*") -> list[Fixture]:
    return _cases(provider, "simulator", SIMULATOR_ACCOUNTS_FILE)

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

A file with a key its format does not name, or without one it needs, does not load
(FixtureFormatError): a misspelt key would otherwise be ignored, and its case check less than
it says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from tests.fixtures import FIXTURES, Fixture, Shape

WEBHOOK = "https://switchboard.test/webhooks/acme"
COMMAND: dict[str, Any] = {"id": "cmd-1", "account": "acme", "to": "+38761222333",
                           "text": "Hello"}
ACCOUNT_FILE = "account.json"


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


REPLY = Shape(_keys("status"), _keys("body", "text", "headers"))
OUTBOUND_ACCOUNT = Shape(
    _keys("description", "config", "send_path", "ok_reply", "ok_id"), _keys("token"),
    {"ok_reply": REPLY, "token": Shape(_keys("path", "reply"), nested={"reply": REPLY})})
OUTBOUND_CASE = Shape(
    _keys("description"),
    _keys("config", "context", "command", "reply", "requests", "receipt", "error"),
    {"reply": REPLY, "requests": Shape(_keys("method", "url", "headers", "json"))})


def _read(path: Path, shape: Shape) -> dict[str, Any]:
    spec: dict[str, Any] = orjson.loads(path.read_bytes())
    shape.check(spec, str(path.relative_to(FIXTURES)))
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
    spec = _read(FIXTURES / provider / "outbound" / ACCOUNT_FILE, OUTBOUND_ACCOUNT)
    return OutboundAccount(provider, spec["config"], spec["send_path"], spec["ok_reply"],
                           spec["ok_id"], spec.get("token"))


def _cases(provider: str, folder: str, setup_file: str,
           shape_of: Callable[[Path], Shape]) -> list[Fixture]:
    """The files in <provider>/<folder>/ but its setup file, as `Fixture`s (their `id` is
    <provider>/<case>; `request()` is for webhooks only)."""
    return [Fixture(path.parent.parent.name, path.stem, path, _read(path, shape_of(path)))
            for path in sorted(FIXTURES.glob(f"{provider}/{folder}/*.json"))
            if path.name != setup_file]


def load_outbound_cases(provider: str = "*") -> list[Fixture]:
    return _cases(provider, "outbound", ACCOUNT_FILE, lambda path: OUTBOUND_CASE)


# The provider simulator's side (tests/fixtures/<provider>/simulator/*.json). `accounts.json`:
#
#     {"description": "...", "accounts": {<name>: <account table>, ...},
#      "postbacks": {<name>: "a postback its inbound webhooks can carry", ...},
#      "refuses_postbacks": [<names whose inbound webhooks cannot>]}
#
# Every other file is one send to the simulator (`send.json`: the valid send every shared test
# makes; its "bad_request" is how the provider answers when the http_400 fault fires, its
# "rejected" the 2xx answer that says the message was not taken, as the rejected fault gives
# it; the http_500 and http_503 faults are those statuses for every provider):
#
#     {"description": "...", "account": "the account the send is recorded for",
#      "token": {"path": "...", "json": <JSON>},   # optional: fetch one first; "{token}" in the
#                                                  # request's headers is replaced by it
#      "request": {"path": "...", "headers": {...}, "json": <JSON>},
#      "answer": {"status": 200, "json": <JSON the answer contains>},  # dict keys: a subset
#      "events": [{<field>: <value>, ...}, ...]}   # optional: the status webhooks it makes, as
#                                                  # normalized events, the fields named checked


SIMULATOR_ACCOUNTS_FILE = "accounts.json"
SIMULATOR_SEND_FILE = "send.json"
SIMULATOR_ACCOUNTS = Shape(_keys("description", "accounts", "postbacks", "refuses_postbacks"))
SIMULATOR_ANSWER = Shape(_keys("status"), _keys("json"))
SIMULATOR_CASE = Shape(
    _keys("description", "account", "request", "answer"), _keys("token", "events"),
    {"request": Shape(_keys("path", "headers", "json")), "token": Shape(_keys("path", "json")),
     "answer": SIMULATOR_ANSWER})
SIMULATOR_SEND = replace(
    SIMULATOR_CASE, required=SIMULATOR_CASE.required | {"bad_request", "rejected"},
    nested={**SIMULATOR_CASE.nested, "bad_request": SIMULATOR_ANSWER,
            "rejected": SIMULATOR_ANSWER})


def load_simulator_accounts(provider: str) -> dict[str, Any]:
    return _read(FIXTURES / provider / "simulator" / SIMULATOR_ACCOUNTS_FILE, SIMULATOR_ACCOUNTS)


def load_simulator_sends(provider: str = "*") -> list[Fixture]:
    return _cases(provider, "simulator", SIMULATOR_ACCOUNTS_FILE,
                  lambda path: SIMULATOR_SEND if path.name == SIMULATOR_SEND_FILE
                  else SIMULATOR_CASE)

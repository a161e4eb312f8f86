"""Faults on demand: the next N sends of an account or provider fail the way asked.

Tests of the sender's retry and classification logic need failures they can count on, not
random ones: a fault affects exactly `count` upcoming matching sends, then is used up.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The http_* modes are that HTTP status on the wire from every provider (each provider's
# `failure`), as is timeout's 504: a client must read them as it reads the real ones.
# "rejected": the provider's 2xx answer that says it did not take the message (each provider's
# `rejected`), the refusal a client could mistake for an acceptance. "undeliverable", "expired":
# a 2xx whose message already has that final status group, so it will not be delivered (only
# Infobip's send answers carry a status group). "internal_error_2xx": the provider's internal
# error in a 2xx, which may come after it took the message (Webex: code 7006 in an HTTP 200).
FaultMode = Literal["http_500", "http_503", "http_429", "http_400", "rejected", "undeliverable",
                    "expired", "internal_error_2xx", "slow", "timeout"]
# Answers only some providers give (each provider's `answer_2xx`): a fault of these that could
# reach another provider is refused.
PROVIDER_2XX_MODES: frozenset[FaultMode] = frozenset({"undeliverable", "expired",
                                                      "internal_error_2xx"})

HTTP_STATUS: dict[str, int] = {"http_500": 500, "http_503": 503, "http_429": 429, "http_400": 400}
DEFAULT_RETRY_AFTER_S = 1.0
DEFAULT_SLOW_S = 2.0
# Longer than any sane client timeout; the handler stays cancellable all along.
DEFAULT_TIMEOUT_S = 60.0


class FaultSpec(BaseModel):
    """The body of POST /_sim/faults."""

    # Finite only: "inf" was taken, listed as null in GET /_sim/faults, sent as "Retry-After: inf".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    account: str | None = None
    provider: str | None = None
    mode: FaultMode
    count: int = Field(default=1, ge=1)
    retry_after_s: float | None = Field(default=None, ge=0)
    delay_s: float | None = Field(default=None, ge=0)

    def matches(self, provider: str, account: str) -> bool:
        return (self.account in (None, account)) and (self.provider in (None, provider))


class Fault:
    """An active fault and how many sends it still affects."""

    _ids = itertools.count(1)

    def __init__(self, spec: FaultSpec) -> None:
        self.id = next(self._ids)
        self.spec = spec
        self.remaining = spec.count

    @property
    def mode(self) -> FaultMode:
        return self.spec.mode

    @property
    def retry_after_s(self) -> float:
        return self.spec.retry_after_s if self.spec.retry_after_s is not None \
            else DEFAULT_RETRY_AFTER_S

    @property
    def delay_s(self) -> float:
        if self.spec.delay_s is not None:
            return self.spec.delay_s
        return DEFAULT_TIMEOUT_S if self.mode == "timeout" else DEFAULT_SLOW_S

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, **self.spec.model_dump(), "remaining": self.remaining}


class FaultBook:
    """Active faults, oldest first: the first one matching a send is the one used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(spec)
        self._faults.append(fault)
        return fault

    def take(self, provider: str, account: str) -> Fault | None:
        """Use up one send of the first matching fault, if any."""
        for fault in self._faults:
            if fault.spec.matches(provider, account):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def active(self) -> list[Fault]:
        return list(self._faults)

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count

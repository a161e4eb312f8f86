"""The one error of the local broker, whichever step failed."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """The local broker could not be fetched or started; the message says what to do."""

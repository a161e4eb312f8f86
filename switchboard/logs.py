"""structlog set up once for every process: JSON lines in production, readable in a terminal.

Secrets are kept out of logs twice over: values under secret-looking keys are masked, and in
any string a registered secret value (account secrets, tokens, and the tokens a process fetches
as it runs) of at least MIN_MASKED_CHARS characters, a JWT, or a URL's password is masked
wherever it appears, including in messages from libraries that log through the standard library.
A shorter secret value is masked where it stands as a word of its own.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote, quote_plus

import structlog

from switchboard.tasklog import add_task_fields

MASK = "***"
# Shorter values are masked only as words of their own: anywhere, they would mask parts of
# ordinary words (account secrets have at least 8 characters; a Kafka password or a provider's
# key has no minimum, and a short one was logged as it was).
MIN_MASKED_CHARS = 6
# Shorter still, not masked at all (the warning at start says so): a password "1" masked as a
# word made every "1" in every line and send failure's description "***".
MIN_MASKED_WORD_CHARS = 3
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|authorization|signature|api[_-]?key|access[_-]?key|credential)",
    re.IGNORECASE,
)
# A JWT (its header always starts `{"`): a bearer token a client fetched, such as Ubiqio's, is
# no configured secret, yet a provider may quote it back with the Authorization header.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# The password of a URL's user info (https://user:password@host): a provider's base_url or
# SWITCHBOARD_PUBLIC_URL may carry Basic credentials so, and httpx logs request URLs as they are.
_URL_PASSWORD = re.compile(r"(://[^\s/?#@:]*:)[^\s/?#@]+@")
_secret_values: set[str] = set()
# Secrets a process obtains as it runs (fetched tokens), by name: the current value and the one
# before it (requests still in flight carry it). A renewed token takes the place of the old, so
# renewing one hourly for months does not grow what `scrub` checks on every line.
_held_secrets: dict[str, tuple[str, ...]] = {}
# What `scrub` checks: rebuilt on each change, never changed in place, as a line may be scrubbed
# in another thread meanwhile (a set changed while it is iterated raises).
_masked: tuple[str, ...] = ()
# The shorter ones, as words: `k3y` is masked in `pw=k3y` and `:k3y@`, not in `monk3y`.
_masked_words: re.Pattern[str] | None = None
_registering = threading.Lock()
_configured = False


def masked_contact(contact: str) -> str:
    """Enough of an address to tell contacts apart in a log, not to text them (the README:
    contact numbers are masked in logs)."""
    return contact[:4] + MASK + contact[-2:] if len(contact) >= 9 else MASK


def secret_key(name: str) -> bool:
    """Whether values under this key are masked in logs (and in settings errors)."""
    return _SECRET_KEY.search(name) is not None


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so they are masked in every later log line, also %-encoded: a
    token goes into webhook URLs so. A value shorter than MIN_MASKED_CHARS is masked only as
    a word of its own (not at all below MIN_MASKED_WORD_CHARS), and is warned about once."""
    with _registering:
        short = 0
        for value in values:
            if value and len(value) < MIN_MASKED_CHARS and value not in _secret_values:
                short += 1
            _secret_values.update(_forms(value))
        _remask()
    if short:  # after the lock: the line is scrubbed with the value masked already
        get_logger(__name__).warning(
            f"a configured secret has fewer than {MIN_MASKED_CHARS} characters: so short a "
            "secret is easily guessed, and log lines mask it only where it stands as a word of "
            f"its own (not at all below {MIN_MASKED_WORD_CHARS}); use a longer one", count=short)


def replace_secret(name: str, value: str) -> None:
    """Mask `value`, a secret obtained at run time (a fetched token, which no setting holds),
    in place of the one held under `name` before, which stays masked until the next renewal."""
    with _registering:
        held = _held_secrets.get(name, ())
        if held[:1] != (value,):
            _held_secrets[name] = (value, *held[:1])
            _remask()


def _forms(value: str | None) -> set[str]:
    """`value` as it is and %-encoded (nothing for an empty one)."""
    if not value:
        return set()
    return {value, quote_plus(value), quote(value, safe="")}


def _remask() -> None:
    global _masked, _masked_words
    held = {form for values in _held_secrets.values() for value in values
            for form in _forms(value)}
    # Longest first: a secret inside another (a password inside the token built from it) would
    # otherwise be masked first, leaving the rest of the longer one in the line.
    forms = sorted(_secret_values | held, key=len, reverse=True)
    _masked = tuple(form for form in forms if len(form) >= MIN_MASKED_CHARS)
    words = [re.escape(form) for form in forms
             if MIN_MASKED_WORD_CHARS <= len(form) < MIN_MASKED_CHARS]
    _masked_words = re.compile(rf"(?<!\w)(?:{'|'.join(words)})(?!\w)") if words else None


def scrub(value: str) -> str:
    """`value` with every registered secret value, every JWT and URL password masked."""
    if "eyJ" in value:
        value = _JWT.sub(MASK, value)
    if "@" in value:
        value = _URL_PASSWORD.sub(rf"\1{MASK}@", value)
    for secret in _masked:
        if secret in value:
            value = value.replace(secret, MASK)
    if _masked_words is not None:
        value = _masked_words.sub(MASK, value)
    return value


# Values a renderer writes as they are; any other object it writes as its repr().
_PLAIN = (int, float, type(None))
# What structlog's ProcessorFormatter keeps in a library record's event for itself.
_FORMATTER_KEYS = frozenset({"_record", "_from_structlog"})


def _scrub_any(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: MASK if _SECRET_KEY.search(str(k)) else _scrub_any(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_any(v) for v in value]
    if isinstance(value, _PLAIN):
        return value
    # An exception, a URL object, a path: both renderers would write its repr() unmasked
    # (`error=exc` quoting a token, `url=request.url` with user:password@).
    return scrub(repr(value))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret keys and registered secret values."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEY.search(key):
            event_dict[key] = MASK
        elif key not in _FORMATTER_KEYS:
            event_dict[key] = _scrub_any(value)
    return event_dict


class _Escaped:
    """A string holding control characters, as the console shows it: escaped (`\\n`,
    `\\x1b`), so a value from a request (an account name with a %0A, an ANSI sequence) cannot
    start a forged line in the log nor move or colour the terminal. The renderer writes an
    ordinary value as its repr() and the event as its str()."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return repr(self.text)

    def __str__(self) -> str:
        return repr(self.text)[1:-1]


# What the console renderer writes on lines of their own, after the event's.
_MULTILINE = frozenset({"exception", "stack"})
_INDENT = "    "


def escape_for_console(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor, before the console renderer: structlog's writes a string as it is
    unless it holds a space, a quote or a line break, and the event always as it is (JSON lines
    escape both already). Non-printable characters: control characters, line and paragraph
    separators, bidirectional overrides.

    A traceback (and a stack) keeps its lines, each indented: a log line starts at the first
    column, and a line break in an exception's message (request data quoted in an error)
    would otherwise start one of the caller's making. The renderer wants a str there."""
    for key, value in event_dict.items():
        if key in _MULTILINE and isinstance(value, str):
            event_dict[key] = "\n".join(
                _INDENT + (line if line.isprintable() else repr(line)[1:-1])
                for line in value.split("\n"))
        elif isinstance(value, str) and not value.isprintable():
            event_dict[key] = _Escaped(value)
    return event_dict


class RepeatFilter(logging.Filter):
    """Lets a library's line through once per window and kind, then says how often it came.

    While Kafka is away, aiokafka retries every 100 ms and logs each retry; a commit it cannot
    make (a topic deleted) or a group coordinator it cannot find, it retries and logs so without
    end: ten identical error lines a second per client would bury everything else. A kind is
    the logger, the level and the line as written (its arguments filled in), so another error,
    node or topic in the same words is a line of its own. The first of a kind is always shown;
    the next one shown after the window says how many were held back. At most `max_kinds`
    kinds are kept: past that, and once those whose window ended are forgotten, lines are told
    apart by their template only (the text before its arguments), which the code bounds.
    """

    def __init__(self, prefixes: tuple[str, ...], window_s: float = 60.0,
                 max_kinds: int = 200, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window_s = window_s
        self.max_kinds = max_kinds
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes) or not isinstance(record.msg, str):
            return True
        now = (self._clock or time.monotonic)()
        key = self._kind(record, now)
        shown_at, suppressed = self._seen.get(key, (-self.window_s, 0))
        if now - shown_at < self.window_s:
            self._seen[key] = (shown_at, suppressed + 1)
            return False
        self._seen[key] = (now, 0)
        if suppressed:
            record.msg += f" (and {suppressed} more like it in the {now - shown_at:.0f}s before)"
        return True

    def _kind(self, record: logging.LogRecord, now: float) -> tuple[str, int, str]:
        try:
            written = record.getMessage()
        except Exception:  # noqa: BLE001 - arguments that do not fit: the handler says so
            written = record.msg  # raising here would raise in the library's own code
        key = (record.name, record.levelno, written)
        if key in self._seen or len(self._seen) < self.max_kinds:
            return key
        self._seen = {kind: seen for kind, seen in self._seen.items()
                      if now - seen[0] < self.window_s}
        return key if len(self._seen) < self.max_kinds else (
            record.name, record.levelno, record.msg)


class NamelessErrorFilter(logging.Filter):
    """A library's log line that quotes an error with no text names its type instead.

    aiokafka logs a failed connection as `Unable connect to "host:port": <error>`, and a
    timeout's text is empty: a broker that never answers (a firewall dropping packets, a port
    that is not Kafka's) left a line ending in a colon, and nothing saying why."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_nameless(arg) for arg in record.args):
            record.args = tuple(type(arg).__name__ if _nameless(arg) else arg
                                for arg in record.args)
        return True


def _nameless(value: object) -> bool:
    return isinstance(value, BaseException) and not str(value)


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog and the standard library's root logger (idempotent)."""
    global _configured
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_task_fields,  # a worker's record's event_id, in its handler's lines
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter(("aiokafka",), window_s=60.0))
    handler.addFilter(NamelessErrorFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        *(() if use_json else (escape_for_console,)), renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about every (re)connection; warnings still come through.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO: a line per provider call (and its CPU) at any volume,
    # while failed sends are logged by the sender itself. Kept at DEBUG for troubleshooting.
    logging.getLogger("httpx").setLevel(logging.WARNING if root.level >= logging.INFO
                                        else root.level)
    _configured = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    if not _configured:
        configure_logging()
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger

"""The rules file's schema, per account: rules, fallback, auto-reply, compliance texts and
the reply limit (pydantic models, validated whole at load; rules.py loads them).
"""

from __future__ import annotations

import re

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from consumers.bots.words import fold
from normalizers.channels import channel as event_channel
from switchboard.events import CHANNEL_PATTERN


def compile_rule_regex(pattern: str) -> regex.Pattern[str]:
    """A rule's regex as the bots match it: in any case, and by the regex module (in its
    re-compatible VERSION0), not re: a search of re cannot be stopped, and one account's
    pattern that backtracks without end ((a|aa)+$) on a contact's text would hold the bot's
    event loop, every account's STOPs and replies, for minutes (decide.py sets the limit)."""
    return regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """One rule: exactly one of keyword, prefix, regex or postback; first match wins."""

    keyword: str | None = None
    prefix: str | None = None
    regex: str | None = None
    postback: str | None = None
    channel: str | None = None
    reply: str

    @model_validator(mode="after")
    def _one_matcher(self) -> Rule:
        given = [m for m in ("keyword", "prefix", "regex", "postback") if getattr(self, m)]
        if len(given) != 1:
            raise ValueError("give exactly one of keyword, prefix, regex, postback "
                             f"(got {', '.join(given) or 'none'})")
        for matcher in ("keyword", "prefix"):
            written = getattr(self, matcher)
            if written and not fold(written):
                raise ValueError(f"{matcher} {written!r} is only accents or marks: it would "
                                 "match every message")
        if self.regex is not None:
            # Written in re's syntax, as rules always were (regex's own extensions are
            # refused as before); matched by the regex module, whose search can be stopped.
            try:
                re.compile(self.regex)
                compile_rule_regex(self.regex)
            except (re.error, regex.error, OverflowError) as exc:  # Overflow: a{99999999999}
                raise ValueError(f"regex {self.regex!r} is invalid: {exc}") from None
            except RecursionError:  # re's parser recurses into each group
                raise ValueError(f"regex {self.regex!r} is invalid: groups nested too "
                                 "deeply") from None
        return self

    @field_validator("keyword", "prefix")
    @classmethod
    def _without_spaces_before(cls, written: str | None, info: ValidationInfo) -> str | None:
        """A message is read without the spaces before it, and a keyword is a first word,
        without spaces after it too: " price " (copied with its spaces) matched no message.
        A prefix keeps a space after it: "order " does not answer "orders"."""
        if not written:
            return written
        if not written.strip():
            raise ValueError(f"{info.field_name} {written!r} is blank: it would match no "
                             "message")
        return written.strip() if info.field_name == "keyword" else written.lstrip()

    @field_validator("channel")
    @classmethod
    def _a_channel_events_have(cls, channel: str | None) -> str | None:
        """Events name channels in lower case ("whatsapp"): "WhatsApp" would never match."""
        if channel is not None and re.fullmatch(CHANNEL_PATTERN, channel) is None:
            raise ValueError(f"channel {channel!r} matches no event: channels are written "
                             f"as events write them, in lower case ({channel.lower()!r})")
        # A provider's label of it ("facebook", "viber_bm"): events name it as the
        # normalizers do ("messenger", "viber"), and the rule loaded to answer nothing.
        if channel is not None and (named := event_channel(channel)) != channel:
            raise ValueError(f"channel {channel!r} matches no event: events call it {named!r}")
        return channel


class AutoReply(_Strict):
    text: str
    cooldown_s: float = Field(default=3600, gt=0)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        """Refused as a blank keyword is: it can only answer nothing (an account's section
        without auto_reply already has none, "*"'s included), and it loaded silently,
        counted as configured, so `worker autoreply` ran answering no one."""
        if not text.strip():
            raise ValueError(f"text {text!r} is blank: it would answer no message; to have "
                             "no auto-reply, leave auto_reply out")
        return text


class AccountRules(_Strict):
    help_text: str = "Reply STOP to opt out, START to opt back in."
    stop_confirmation: str = "You have been unsubscribed and will receive no more messages. " \
                             "Reply START to subscribe again."
    start_confirmation: str = "You are subscribed again. Reply STOP to opt out."
    fallback: str | None = None
    extra_stop_keywords: list[str] = Field(default_factory=list)
    own_numbers: list[str] = Field(default_factory=list, description="never reply to these")
    auto_reply: AutoReply | None = None
    # Automated replies (all but compliance's) per contact per sliding window: a sender not in
    # own_numbers (an "I'm driving" responder, another bot) and ours would otherwise answer
    # each other without end, each SMS paid for. 0: the default.
    reply_limit: int = Field(default=0, ge=0)
    reply_limit_window_s: float = Field(default=0, ge=0)
    # Compliance replies that change nothing (HELP, INFO, a STOP from a contact already out, a
    # START from one not out) per contact in the same window: an automated sender whose text
    # begins "HELP:" or "STOP" would otherwise get one each time. Opt-ins' confirmations too,
    # counted apart (limits.py). 0: the default; not none at all, as carriers require HELP
    # answered.
    compliance_reply_limit: int = Field(default=0, ge=0)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("fallback")
    @classmethod
    def _fallback_not_blank(cls, fallback: str | None) -> str | None:
        """Refused as a blank auto-reply is: only spaces, it loaded as a fallback and answered
        every message no rule does with nothing. "" stays what it always was: no fallback,
        as leaving it out is (refusing it would stop a file that works as meant)."""
        if fallback and not fallback.strip():
            raise ValueError(f"fallback {fallback!r} is blank: it would answer no message; "
                             "to have no fallback, leave it out")
        return fallback

    @field_validator("extra_stop_keywords")
    @classmethod
    def _single_words(cls, words: list[str]) -> list[str]:
        """Each without the spaces around it: a contact's word is read without them, and
        " ARRET" (copied with its space) loaded and opted no one out."""
        for word in words:
            if not word.strip() or len(word.split()) != 1:
                raise ValueError(f"stop keyword {word!r} must be one word")
            # Of the word without its spaces (" \u0301" folds to a space): "\u0301" would opt
            # out everyone who sends only an emoji.
            if not fold(word.strip()):
                raise ValueError(f"stop keyword {word!r} is only accents or marks")
        return [word.strip() for word in words]

"""Input problems said in one line, for whatever reads its own input: the settings, the
accounts and rules files, the bots' opt-outs, the sender's commands, `send`, the simulator.
pydantic's validation errors as `field.path: message; ...`, and why a file that exists cannot be
read. Kept apart from the settings, which are only one of their users.
"""

from __future__ import annotations

from pydantic import ValidationError


def validation_problems(exc: ValidationError, whole: str, limit: int | None = None) -> str:
    """pydantic's errors in one line, `field.path: message; ...` (`whole` when an error is
    about the whole object), at most `limit` of them. Our validators' messages lose the
    "Value error, " pydantic puts before them, as in the settings' own errors."""
    return "; ".join(f"{'.'.join(str(p) for p in error['loc']) or whole}: "
                     f"{error['msg'].removeprefix('Value error, ')}"
                     for error in exc.errors()[:limit])


def unreadable(exc: OSError | UnicodeDecodeError) -> str:
    """Why a file that exists cannot be read, without repeating its name."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
    return exc.strerror or str(exc)

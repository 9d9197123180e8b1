"""Field rules of Elastic intake: keyword fields hold at most 1024 characters, label and context
keys may not contain ``.``, ``*`` or ``"``."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

KEYWORD_MAX_LENGTH = 1024

_INVALID_KEY_CHARS = str.maketrans('.*"', "___")


def keyword_field(value: Any) -> str:
    """``str(value)``, cut to 1023 characters and ``…`` when longer than 1024, as Elastic cuts."""
    text = str(value)
    return text if len(text) <= KEYWORD_MAX_LENGTH else text[: KEYWORD_MAX_LENGTH - 1] + "\u2026"


def sanitize_key(key: Any) -> str:
    return str(key).translate(_INVALID_KEY_CHARS)

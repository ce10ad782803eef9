"""Sensitive words: plain words and regexes, matched in linear time (google-re2).

Python's `re` backtracks: `^(a+)+$` against a 28-byte prompt held the relay's event loop for
seconds. RE2 guarantees time linear in the text, and refuses what it cannot do that way
(back-references, look-around): such a pattern is refused when the option is saved.
Text is compared after NFKC normalisation, zero-width characters removed and case folded,
so full-width letters or a zero-width space inside a word do not slip past.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import re2

MAX_PATTERN_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern
# Zero-width and invisible format characters people put inside words to dodge a filter.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
             "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068"
             "\u2069\u3164\ufeff\uffa0"),
    None,
)  # fmt: skip


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # a refused pattern is reported to the admin, not to stderr
    options.max_mem = MAX_PATTERN_MEMORY
    return options


def normalise(text: str) -> str:
    """NFKC, invisible characters removed, case folded: what words are compared against."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold()


def regex_source(line: str) -> str | None:
    """The pattern of a `regex:...` or `/.../` line; None for a plain word."""
    if line.startswith("regex:"):
        return line[6:]
    if len(line) > 2 and line.startswith("/") and line.endswith("/"):
        return line[1:-1]
    return None


def compile_pattern(source: str) -> Any:
    """The compiled pattern; re2.error when RE2 cannot match it in linear time."""
    return re2.compile(source, _options())


def invalid_patterns(text: str) -> list[str]:
    """The regex lines of an option value that RE2 refuses."""
    bad: list[str] = []
    for raw in text.splitlines():
        source = regex_source(raw.strip())
        if source is None:
            continue
        try:
            compile_pattern(source)
        except re2.error:
            bad.append(source)
    return bad


# Fields that name things rather than carry text a user wrote.
NOT_TEXT_FIELDS = frozenset({"model", "role", "type"})


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if not value.startswith("data:"):  # inline media
            out.append(value)
    elif isinstance(value, dict):
        for name, item in value.items():
            if name not in NOT_TEXT_FIELDS:
                _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)


def text_fields(payload: Any) -> list[str]:
    """Every text field of a request body: message contents and names, tool arguments and
    descriptions, the Responses API's input lists... (the sensitive-word check reads them all,
    each on its own, as upstream checks each message)."""
    parts: list[str] = []
    _strings(payload, parts)
    return parts


@dataclass(frozen=True, slots=True)
class SensitiveMatcher:
    """Plain words (substring after normalise) and RE2 regexes (`regex:` or `/.../` lines)."""

    words: tuple[str, ...] = ()
    patterns: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SensitiveMatcher:
        """Lines RE2 refuses are dropped (accounts refuses to store them)."""
        words: list[str] = []
        patterns: list[Any] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            source = regex_source(line)
            if source is None:
                words.append(normalise(line))
                continue
            try:
                patterns.append(compile_pattern(source))
            except re2.error:
                continue
        return cls(tuple(word for word in words if word), tuple(patterns))

    def __bool__(self) -> bool:
        return bool(self.words or self.patterns)

    def find_in(self, texts: list[str]) -> str | None:
        """The first hit in any of `texts`, or None."""
        for text in texts:
            hit = self.find(text)
            if hit is not None:
                return hit
        return None

    def find(self, text: str) -> str | None:
        """The first hit in `text` (regexes first), or None."""
        normal = normalise(text)
        for pattern in self.patterns:
            hit = pattern.search(normal)
            if hit is not None:
                return str(hit.group(0))
        for word in self.words:
            if word in normal:
                return word
        return None

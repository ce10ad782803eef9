"""Typed environment parsing: settings objects are built once, immutable, and fail fast."""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(RuntimeError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string that never shows its value in logs or reprs."""

    value: str

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"


class Env:
    """Reads typed values from an environment mapping, collecting every problem at once."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._errors: list[builtins.str] = []

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        value = self._environ.get(name)
        if value is None or value == "":
            if default is None:
                self._errors.append(f"{name} is required")
                return ""
            return default
        return value

    def secret(self, name: builtins.str, default: builtins.str | None = None) -> Secret:
        return Secret(self.str(name, default))

    def int(self, name: builtins.str, default: builtins.int) -> builtins.int:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return builtins.int(raw.strip())
        except ValueError:
            self._errors.append(f"{name} must be an integer, got {raw!r}")
            return default

    def float(self, name: builtins.str, default: builtins.float) -> builtins.float:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return builtins.float(raw.strip())
        except ValueError:
            self._errors.append(f"{name} must be a number, got {raw!r}")
            return default

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        self._errors.append(f"{name} must be true or false, got {raw!r}")
        return default

    def fail(self, problem: builtins.str) -> None:
        """Record a problem found by a caller's own validation (reported by `check`)."""
        self._errors.append(problem)

    def check(self, *, service: builtins.str) -> None:
        """Raise one ConfigError naming every problem found so far."""
        if self._errors:
            problems = "; ".join(self._errors)
            raise ConfigError(f"{service}: invalid configuration: {problems}")

"""Which product and schema generation a source database is, from its tables and columns."""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED_TABLES = ("users", "tokens", "channels")

# (table, column) markers, checked in order; the first product with a marker wins.
_VELOERA_MARKERS = (
    ("redemption_logs", ""),
    ("users", "idc_flare_id"),
    ("users", "subscription_quota"),
    ("channels", "model_prefix"),
    ("redemptions", "is_gift"),
)
_NEW_API_MARKERS = (
    ("setups", ""),
    ("channels", "tag"),
    ("channels", "param_override"),
    ("users", "setting"),
    ("logs", "other"),
)
# Features worth naming in the report: they tell which generation of the schema this is.
_FEATURES = (
    ("tokens", "model_limits"),
    ("tokens", "models"),
    ("tokens", "subnet"),
    ("tokens", "allow_ips"),
    ("tokens", "group"),
    ("tokens", "rate_limit_enabled"),
    ("channels", "tag"),
    ("channels", "setting"),
    ("channels", "param_override"),
    ("channels", "system_prompt"),
    ("channels", "config"),
    ("logs", "other"),
    ("logs", "ip"),
    ("logs", "client_ip"),
    ("redemptions", "expired_time"),
    ("midjourneys", ""),
    ("tasks", ""),
)


class NotUpstreamDatabase(ValueError):
    """The source lacks the tables every new-api, one-api and Veloera database has."""


@dataclass(frozen=True, slots=True)
class Product:
    name: str  # "veloera", "new-api" or "one-api"
    version: str  # from setups.version when the source records it, else ""
    features: tuple[str, ...]

    def describe(self) -> str:
        version = f" {self.version}" if self.version else ""
        return f"{self.name}{version} ({', '.join(self.features) or 'base schema'})"


def _has(schema: dict[str, set[str]], table: str, column: str) -> bool:
    return table in schema and (not column or column in schema[table])


def detect(schema: dict[str, set[str]], *, version: str = "") -> Product:
    missing = [t for t in REQUIRED_TABLES if t not in schema]
    if missing:
        raise NotUpstreamDatabase(
            f"not a new-api, one-api or Veloera database: no table {', '.join(missing)}"
        )
    features = tuple(f"{t}.{c}" if c else t for t, c in _FEATURES if _has(schema, t, c))
    if any(_has(schema, t, c) for t, c in _VELOERA_MARKERS):
        name = "veloera"
    elif any(_has(schema, t, c) for t, c in _NEW_API_MARKERS):
        name = "new-api"
    else:
        name = "one-api"
    return Product(name=name, version=version, features=features)

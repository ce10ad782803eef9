"""Type aliases shared by the accounts modules."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection as repositories receive it: acquired from the pool or opened directly.
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

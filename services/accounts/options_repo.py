"""Options as the services use them (secrets decrypted; the SQL is in channels_repo) and the
SQL of the option change audit."""

from __future__ import annotations

from services.accounts import channels_repo
from services.accounts.records import OptionAuditRecord
from services.accounts.types import Conn
from services.shared.crypto import SecretBox
from services.shared.option_secrets import plaintext_secrets, seal, unsealed

AUDIT_COLUMNS = "id, actor_id, key, old_value, new_value, created_at"
INSERT_AUDIT = """
INSERT INTO option_audit (actor_id, key, old_value, new_value, created_at)
VALUES ($1, $2, $3, $4, $5)
"""
_AUDIT_FILTER = "FROM option_audit WHERE ($1 = '' OR key = $1)"
LIST_AUDIT = f"SELECT {AUDIT_COLUMNS} {_AUDIT_FILTER} ORDER BY id DESC LIMIT $2 OFFSET $3"
COUNT_AUDIT = f"SELECT count(*) {_AUDIT_FILTER}"


async def insert_audit(
    conn: Conn, *, actor_id: int, key: str, old_value: str, new_value: str, now: int
) -> None:
    await conn.execute(INSERT_AUDIT, actor_id, key, old_value, new_value, now)


async def list_audit(
    conn: Conn, *, key: str, limit: int, offset: int
) -> tuple[list[OptionAuditRecord], int]:
    rows = await conn.fetch(LIST_AUDIT, key, limit, offset)
    total: int = await conn.fetchval(COUNT_AUDIT, key)
    return [OptionAuditRecord.of(row) for row in rows], total


async def load_options(conn: Conn, box: SecretBox) -> dict[str, str]:
    """Every stored option, secrets decrypted."""
    return unsealed(box, await channels_repo.all_options(conn))


async def store_option(conn: Conn, box: SecretBox, *, key: str, value: str) -> None:
    """Store one option, encrypted when it is a secret."""
    await channels_repo.upsert_option(conn, key=key, value=seal(box, key, value))


async def seal_plaintext_secrets(conn: Conn, box: SecretBox) -> list[str]:
    """Encrypt secrets stored in plaintext before encryption at rest (run at start; a no-op
    once done). Returns the keys encrypted."""
    found = plaintext_secrets(await channels_repo.all_options(conn))
    for key, value in found.items():
        await channels_repo.upsert_option(conn, key=key, value=seal(box, key, value))
    return sorted(found)

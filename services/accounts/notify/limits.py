"""The per-user, per-type notification limit, counted in PostgreSQL (replica-safe), and each
recipient's outcome for an event, so a redelivered event resumes where it stopped."""

from __future__ import annotations

from services.accounts.types import Conn

PENDING, DELIVERED, FAILED, LIMITED = "pending", "delivered", "failed", "limited"
_PURGE_AFTER = "1 day"


async def claim(
    conn: Conn, *, event_seq: int, user_id: int, kind: str, limit: int, minutes: int
) -> str:
    """The recipient's outcome for this event: the stored one when the event was seen before,
    else PENDING (admitted: counts toward the limit) or LIMITED (the window is full).

    A transaction-scoped advisory lock per (user, type) serialises concurrent claims, so two
    replicas cannot both take the last slot."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('notify:' || $1 || ':' || $2, 0))",
            str(user_id),
            kind,
        )
        stored = await conn.fetchval(
            "SELECT outcome FROM notifications WHERE event_seq = $1 AND user_id = $2",
            event_seq,
            user_id,
        )
        if stored is not None:
            return str(stored)
        sent = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND type = $2"
            " AND outcome <> 'limited' AND created_at > now() - make_interval(mins => $3)",
            user_id,
            kind,
            minutes,
        )
        outcome = PENDING if sent < limit else LIMITED
        await conn.execute(
            "INSERT INTO notifications (event_seq, user_id, type, outcome) VALUES ($1, $2, $3, $4)",
            event_seq,
            user_id,
            kind,
            outcome,
        )
        return outcome


async def finish(conn: Conn, *, event_seq: int, user_id: int, outcome: str) -> None:
    """Record DELIVERED or FAILED for a recipient of an event."""
    await conn.execute(
        "UPDATE notifications SET outcome = $3 WHERE event_seq = $1 AND user_id = $2",
        event_seq,
        user_id,
        outcome,
    )


async def purge(conn: Conn) -> int:
    """Forget outcomes older than a day (far past any limit window or redelivery); returns
    how many rows went."""
    status = await conn.execute(
        f"DELETE FROM notifications WHERE created_at < now() - interval '{_PURGE_AFTER}'"
    )
    return int(status.rsplit(" ", 1)[-1])

"""Role and permission rules for acting on users (upstream `router/api-router.go` user management,
`model/user.go`).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.shared.statuses import Role, UserStatus

COMMON, ADMIN, ROOT = Role.COMMON, Role.ADMIN, Role.ROOT
VALID_ROLES = frozenset({COMMON, ADMIN, ROOT})

ENABLED, DISABLED = UserStatus.ENABLED, UserStatus.DISABLED

MANAGE_ACTIONS = frozenset({"disable", "enable", "delete", "promote", "demote"})


@dataclass(frozen=True, slots=True)
class Change:
    """What a manage action does to the target: new role/status, or a soft delete."""

    role: int | None = None
    status: int | None = None
    delete: bool = False


def require_admin(actor_role: int) -> None:
    if actor_role < ADMIN:
        raise PermissionDenied("administrator role required")


def require_root(actor_role: int) -> None:
    if actor_role < ROOT:
        raise PermissionDenied("only the root user may do this")


def require_outranks(actor_role: int, target_role: int) -> None:
    """An actor acts only on users of a lower role, unless the actor is root."""
    if actor_role != ROOT and target_role >= actor_role:
        raise PermissionDenied("no permission to act on a user of equal or higher role")


def check_new_role(actor_role: int, new_role: int) -> None:
    if new_role not in VALID_ROLES:
        raise InvalidArgument(f"unknown role {new_role}")
    if actor_role != ROOT and new_role >= actor_role:
        raise PermissionDenied("cannot create a user with a role equal to or above your own")
    if new_role == ROOT:
        raise PermissionDenied("there is only one root user")


def plan_manage(action: str, *, actor_role: int, target_role: int) -> Change:
    """Validate a manage action against the roles and return the change to apply."""
    if action not in MANAGE_ACTIONS:
        raise InvalidArgument(f"unknown action {action!r}")
    require_admin(actor_role)
    require_outranks(actor_role, target_role)
    if target_role == ROOT and action in {"disable", "delete", "demote", "promote"}:
        raise FailedPrecondition(f"the root user cannot be {_past(action)}")
    if action == "disable":
        return Change(status=DISABLED)
    if action == "enable":
        return Change(status=ENABLED)
    if action == "delete":
        return Change(delete=True)
    if action == "promote":
        require_root(actor_role)
        if target_role >= ADMIN:
            raise FailedPrecondition("user is already an administrator")
        return Change(role=ADMIN)
    if target_role == COMMON:
        raise FailedPrecondition("user is already a common user")
    return Change(role=COMMON)


def _past(action: str) -> str:
    return {"disable": "disabled", "delete": "deleted", "demote": "demoted"}.get(action, "promoted")

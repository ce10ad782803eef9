"""The AccountsService servicer: one class composed of the per-area RPC groups."""

from __future__ import annotations

import asyncio

from veloera.accounts.v1 import accounts_pb2_grpc

from services.accounts.deps import Deps
from services.accounts.rpc_auth import AuthRpcs
from services.accounts.rpc_channel_bulk import ChannelBulkRpcs
from services.accounts.rpc_channel_health import ChannelHealthRpcs
from services.accounts.rpc_channels import ChannelRpcs
from services.accounts.rpc_email import EmailRpcs
from services.accounts.rpc_identity import IdentityRpcs
from services.accounts.rpc_inbox import InboxRpcs
from services.accounts.rpc_oauth import OAuthRpcs
from services.accounts.rpc_options import OptionRpcs
from services.accounts.rpc_rate_limits import RateLimitRpcs
from services.accounts.rpc_tokens import TokenRpcs
from services.accounts.rpc_two_factor import TwoFactorRpcs
from services.accounts.rpc_users import UserRpcs


class AccountsServicer(
    IdentityRpcs,
    AuthRpcs,
    OAuthRpcs,
    TwoFactorRpcs,
    UserRpcs,
    TokenRpcs,
    ChannelRpcs,
    ChannelBulkRpcs,
    ChannelHealthRpcs,
    OptionRpcs,
    InboxRpcs,
    EmailRpcs,
    RateLimitRpcs,
    accounts_pb2_grpc.AccountsServiceServicer,
):
    """Thin handlers: proto -> validation (domain rules) -> repository -> proto."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._touched: dict[int, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def drain(self) -> None:
        """Wait for background writes (access times) before the pool closes."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

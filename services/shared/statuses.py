"""Roles and statuses as enums whose values are the proto enums' (accounts.v1 Role, UserStatus,
TokenStatus, ChannelStatus): the numbers upstream Veloera stores, spelled once."""

from __future__ import annotations

from enum import IntEnum

from veloera.accounts.v1 import accounts_pb2 as pb


class Role(IntEnum):
    GUEST = pb.ROLE_UNSPECIFIED
    COMMON = pb.ROLE_COMMON
    ADMIN = pb.ROLE_ADMIN
    ROOT = pb.ROLE_ROOT


class UserStatus(IntEnum):
    ENABLED = pb.USER_STATUS_ENABLED
    DISABLED = pb.USER_STATUS_DISABLED


class TokenStatus(IntEnum):
    ENABLED = pb.TOKEN_STATUS_ENABLED
    DISABLED = pb.TOKEN_STATUS_DISABLED
    EXPIRED = pb.TOKEN_STATUS_EXPIRED
    EXHAUSTED = pb.TOKEN_STATUS_EXHAUSTED


class ChannelStatus(IntEnum):
    ENABLED = pb.CHANNEL_STATUS_ENABLED
    MANUALLY_DISABLED = pb.CHANNEL_STATUS_MANUALLY_DISABLED
    AUTO_DISABLED = pb.CHANNEL_STATUS_AUTO_DISABLED

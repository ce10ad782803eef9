"""Database rows to protobuf messages."""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts.records import (
    AbilityRecord,
    ChannelKeyRecord,
    ChannelRecord,
    TokenRecord,
    UserRecord,
)
from services.shared.crypto import SecretBox, mask_key


def user(row: UserRecord) -> pb.User:
    return pb.User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        email=row.email,
        role=pb.Role.ValueType(row.role),
        status=pb.UserStatus.ValueType(row.status),
        group=row.group,
        aff_code=row.aff_code,
        aff_count=row.aff_count,
        inviter_id=row.inviter_id,
        setting=row.setting,
        created_time=row.created_at,
        deleted=row.deleted_at is not None,
        github_id=row.github_id,
        oidc_id=row.oidc_id,
        wechat_id=row.wechat_id,
        telegram_id=row.telegram_id,
        linux_do_id=row.linux_do_id,
        idc_flare_id=row.idc_flare_id,
    )


def token(row: TokenRecord, *, key: str = "") -> pb.Token:
    return pb.Token(
        id=row.id,
        user_id=row.user_id,
        key=key,
        name=row.name,
        status=pb.TokenStatus.ValueType(row.status),
        created_time=row.created_time,
        accessed_time=row.accessed_time,
        expired_time=row.expired_time,
        unlimited_quota=row.unlimited_quota,
        model_limits_enabled=row.model_limits_enabled,
        model_limits=list(row.model_limits),
        allow_ips=list(row.allow_ips),
        group=row.group,
        rate_limit=pb.RateLimit(
            enabled=row.rate_limit_enabled,
            period_ms=row.rate_limit_period * 1000,
            count=row.rate_limit_count,
            success=row.rate_limit_success,
        ),
    )


def channel_key(row: ChannelKeyRecord, *, key: str = "") -> pb.ChannelKey:
    return pb.ChannelKey(
        id=row.id,
        index=row.idx,
        key=key,
        status=pb.ChannelStatus.ValueType(row.status),
        last_error=row.last_error,
        used_quota=row.used_quota,
        request_count=row.request_count,
        failure_count=row.failure_count,
    )


def channel(
    row: ChannelRecord, keys: list[ChannelKeyRecord], *, box: SecretBox, reveal: str
) -> pb.Channel:
    """reveal: "plain" decrypts the keys, "masked" masks them, "none" leaves them empty."""
    texts = [_key_text(box, key_row, reveal) for key_row in keys]
    message = pb.Channel(
        id=row.id,
        type=row.type,
        name=row.name,
        key="\n".join(texts) if reveal != "none" else "",
        base_url=row.base_url,
        models=list(row.models),
        groups=list(row.groups),
        priority=row.priority,
        weight=row.weight,
        status=pb.ChannelStatus.ValueType(row.status),
        model_mapping=row.model_mapping,
        status_code_mapping=row.status_code_mapping,
        model_prefix=row.model_prefix,
        system_prompt=row.system_prompt,
        tag=row.tag,
        test_model=row.test_model,
        openai_organization=row.openai_organization,
        other=row.other,
        setting=row.setting,
        param_override=row.param_override,
        auto_ban=row.auto_ban,
        created_time=row.created_time,
        test_time=row.test_time,
        response_ms=row.response_time,
        balance=row.balance,
        balance_updated_time=row.balance_updated_time,
        used_quota=row.used_quota,
        status_reason=row.status_reason,
        status_time=row.status_time,
    )
    message.keys.extend(
        channel_key(key_row, key=text) for key_row, text in zip(keys, texts, strict=True)
    )
    return message


def _key_text(box: SecretBox, row: ChannelKeyRecord, reveal: str) -> str:
    if reveal == "none":
        return ""
    plain = box.decrypt(row.key_enc)
    return plain if reveal == "plain" else mask_key(plain)


def ability(row: AbilityRecord) -> pb.RoutingAbility:
    return pb.RoutingAbility(
        group=row.group,
        model=row.model,
        channel_id=row.channel_id,
        priority=row.priority,
        weight=row.weight,
        enabled=row.enabled,
        tag=row.tag,
    )

"""The AccountsService and RelayAccountsService servicers: each RPC is one call to its use case
(services/accounts/usecases/, one module per concern: plain functions taking the dependencies
and the request)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from veloera.accounts.v1 import accounts_pb2 as pb
from veloera.accounts.v1 import accounts_pb2_grpc

from services.accounts.deps import Deps
from services.accounts.usecases import (
    auth,
    channel_bulk,
    channel_health,
    channels,
    email,
    identity,
    inbox,
    oauth,
    options,
    rate_limits,
    tokens,
    two_factor,
    users,
)

Context = grpc.aio.ServicerContext[Any, Any]


class AccountsServicer(accounts_pb2_grpc.AccountsServiceServicer):
    """Thin handlers: proto in, the use case, proto out (validation and rules live in the use
    cases and the *_rules modules, SQL in the *_repo modules)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def drain(self) -> None:
        """Wait for background writes (key access times) before the pool closes."""
        background = self._deps.access.background
        if background:
            await asyncio.gather(*background, return_exceptions=True)

    # identity

    async def GetSetupStatus(
        self, request: pb.GetSetupStatusRequest, context: Context
    ) -> pb.SetupStatus:
        return await identity.get_setup_status(self._deps, request)

    async def Setup(self, request: pb.SetupRequest, context: Context) -> pb.User:
        return await identity.setup(self._deps, request)

    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.LoginResponse:
        return await identity.login(self._deps, request)

    async def Logout(self, request: pb.LogoutRequest, context: Context) -> pb.LogoutResponse:
        return await identity.logout(self._deps, request)

    async def ResolvePrincipal(
        self, request: pb.ResolvePrincipalRequest, context: Context
    ) -> pb.User:
        return await identity.resolve_principal(self._deps, request)

    async def IssueAccessToken(
        self, request: pb.IssueAccessTokenRequest, context: Context
    ) -> pb.IssueAccessTokenResponse:
        return await identity.issue_access_token(self._deps, request)

    # auth

    async def Register(self, request: pb.RegisterRequest, context: Context) -> pb.RegisterResponse:
        return await auth.register(self._deps, request)

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        return await auth.list_sessions(self._deps, request)

    async def RevokeSession(
        self, request: pb.RevokeSessionRequest, context: Context
    ) -> pb.RevokeSessionResponse:
        return await auth.revoke_session(self._deps, request)

    async def GetUsableGroups(
        self, request: pb.GetUsableGroupsRequest, context: Context
    ) -> pb.UsableGroups:
        return await auth.get_usable_groups(self._deps, request)

    # oauth

    async def SignInWithIdentity(
        self, request: pb.SignInWithIdentityRequest, context: Context
    ) -> pb.SignInWithIdentityResponse:
        return await oauth.sign_in_with_identity(self._deps, request)

    async def BindIdentity(self, request: pb.BindIdentityRequest, context: Context) -> pb.User:
        return await oauth.bind_identity(self._deps, request)

    async def UnbindIdentity(self, request: pb.UnbindIdentityRequest, context: Context) -> pb.User:
        return await oauth.unbind_identity(self._deps, request)

    # two factor

    async def GetTwoFactorStatus(
        self, request: pb.GetTwoFactorStatusRequest, context: Context
    ) -> pb.TwoFactorStatus:
        return await two_factor.get_two_factor_status(self._deps, request)

    async def BeginTwoFactorSetup(
        self, request: pb.BeginTwoFactorSetupRequest, context: Context
    ) -> pb.TwoFactorSetup:
        return await two_factor.begin_two_factor_setup(self._deps, request)

    async def EnableTwoFactor(
        self, request: pb.EnableTwoFactorRequest, context: Context
    ) -> pb.TwoFactorBackupCodes:
        return await two_factor.enable_two_factor(self._deps, request)

    async def DisableTwoFactor(
        self, request: pb.DisableTwoFactorRequest, context: Context
    ) -> pb.TwoFactorStatus:
        return await two_factor.disable_two_factor(self._deps, request)

    async def RegenerateBackupCodes(
        self, request: pb.RegenerateBackupCodesRequest, context: Context
    ) -> pb.TwoFactorBackupCodes:
        return await two_factor.regenerate_backup_codes(self._deps, request)

    async def ResetTwoFactor(
        self, request: pb.ResetTwoFactorRequest, context: Context
    ) -> pb.TwoFactorStatus:
        return await two_factor.reset_two_factor(self._deps, request)

    async def CompleteTwoFactorLogin(
        self, request: pb.CompleteTwoFactorLoginRequest, context: Context
    ) -> pb.LoginResponse:
        return await two_factor.complete_two_factor_login(self._deps, request)

    async def ListPasskeys(
        self, request: pb.ListPasskeysRequest, context: Context
    ) -> pb.ListPasskeysResponse:
        return await two_factor.list_passkeys(self._deps, request)

    async def AddPasskey(self, request: pb.AddPasskeyRequest, context: Context) -> pb.Passkey:
        return await two_factor.add_passkey(self._deps, request)

    async def DeletePasskey(
        self, request: pb.DeletePasskeyRequest, context: Context
    ) -> pb.DeletePasskeyResponse:
        return await two_factor.delete_passkey(self._deps, request)

    async def GetPasskey(self, request: pb.GetPasskeyRequest, context: Context) -> pb.Passkey:
        return await two_factor.get_passkey(self._deps, request)

    async def SignInWithPasskey(
        self, request: pb.SignInWithPasskeyRequest, context: Context
    ) -> pb.LoginResponse:
        return await two_factor.sign_in_with_passkey(self._deps, request)

    # users

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.User:
        return await users.get_user(self._deps, request)

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        return await users.list_users(self._deps, request)

    async def CreateUser(self, request: pb.CreateUserRequest, context: Context) -> pb.User:
        return await users.create_user(self._deps, request)

    async def UpdateUser(self, request: pb.UpdateUserRequest, context: Context) -> pb.User:
        return await users.update_user(self._deps, request)

    async def ManageUser(self, request: pb.ManageUserRequest, context: Context) -> pb.User:
        return await users.manage_user(self._deps, request)

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Context
    ) -> pb.DeleteUserResponse:
        return await users.delete_user(self._deps, request)

    # tokens

    async def CreateToken(self, request: pb.CreateTokenRequest, context: Context) -> pb.Token:
        return await tokens.create_token(self._deps, request)

    async def UpdateToken(self, request: pb.UpdateTokenRequest, context: Context) -> pb.Token:
        return await tokens.update_token(self._deps, request)

    async def GetToken(self, request: pb.GetTokenRequest, context: Context) -> pb.Token:
        return await tokens.get_token(self._deps, request)

    async def ListTokens(
        self, request: pb.ListTokensRequest, context: Context
    ) -> pb.ListTokensResponse:
        return await tokens.list_tokens(self._deps, request)

    async def DeleteTokens(
        self, request: pb.DeleteTokensRequest, context: Context
    ) -> pb.DeleteTokenResponse:
        return await tokens.delete_tokens(self._deps, request)

    # channels

    async def SaveChannel(self, request: pb.SaveChannelRequest, context: Context) -> pb.Channel:
        return await channels.save_channel(self._deps, request)

    async def GetChannel(self, request: pb.GetChannelRequest, context: Context) -> pb.Channel:
        return await channels.get_channel(self._deps, request)

    async def ListChannels(
        self, request: pb.ListChannelsRequest, context: Context
    ) -> pb.ListChannelsResponse:
        return await channels.list_channels(self._deps, request)

    async def DeleteChannels(
        self, request: pb.DeleteChannelsRequest, context: Context
    ) -> pb.DeleteChannelsResponse:
        return await channels.delete_channels(self._deps, request)

    # channel bulk

    async def RevealChannelKey(
        self, request: pb.RevealChannelKeyRequest, context: Context
    ) -> pb.RevealChannelKeyResponse:
        return await channel_bulk.reveal_channel_key(self._deps, request)

    async def UpdateChannelsByTag(
        self, request: pb.UpdateChannelsByTagRequest, context: Context
    ) -> pb.ChannelsChanged:
        return await channel_bulk.update_channels_by_tag(self._deps, request)

    async def SetChannelsStatusByTag(
        self, request: pb.SetChannelsStatusByTagRequest, context: Context
    ) -> pb.ChannelsChanged:
        return await channel_bulk.set_channels_status_by_tag(self._deps, request)

    async def SetChannelsTag(
        self, request: pb.SetChannelsTagRequest, context: Context
    ) -> pb.ChannelsChanged:
        return await channel_bulk.set_channels_tag(self._deps, request)

    async def FixAbilities(
        self, request: pb.FixAbilitiesRequest, context: Context
    ) -> pb.ChannelsChanged:
        return await channel_bulk.fix_abilities(self._deps, request)

    async def ListChannelTags(
        self, request: pb.ListChannelTagsRequest, context: Context
    ) -> pb.ListChannelTagsResponse:
        return await channel_bulk.list_channel_tags(self._deps, request)

    # options

    async def ListOptions(
        self, request: pb.ListOptionsRequest, context: Context
    ) -> pb.ListOptionsResponse:
        return await options.list_options(self._deps, request)

    async def UpdateOption(self, request: pb.UpdateOptionRequest, context: Context) -> pb.Option:
        return await options.update_option(self._deps, request)

    async def ListOptionAudit(
        self, request: pb.ListOptionAuditRequest, context: Context
    ) -> pb.ListOptionAuditResponse:
        return await options.list_option_audit(self._deps, request)

    # inbox

    async def SaveMessage(
        self, request: pb.SaveMessageRequest, context: Context
    ) -> pb.InboxMessage:
        return await inbox.save_message(self._deps, request)

    async def DeleteMessage(
        self, request: pb.DeleteMessageRequest, context: Context
    ) -> pb.DeleteMessageResponse:
        return await inbox.delete_message(self._deps, request)

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Context
    ) -> pb.ListMessagesResponse:
        return await inbox.list_messages(self._deps, request)

    async def GetMessage(self, request: pb.GetMessageRequest, context: Context) -> pb.InboxMessage:
        return await inbox.get_message(self._deps, request)

    async def ListUserMessages(
        self, request: pb.ListUserMessagesRequest, context: Context
    ) -> pb.ListMessagesResponse:
        return await inbox.list_user_messages(self._deps, request)

    async def MarkMessageRead(
        self, request: pb.MarkMessageReadRequest, context: Context
    ) -> pb.MarkMessageReadResponse:
        return await inbox.mark_message_read(self._deps, request)

    # email

    async def SendEmailCode(
        self, request: pb.SendEmailCodeRequest, context: Context
    ) -> pb.SendEmailCodeResponse:
        return await email.send_email_code(self._deps, request)

    async def BindEmail(self, request: pb.BindEmailRequest, context: Context) -> pb.User:
        return await email.bind_email(self._deps, request)

    async def SendPasswordReset(
        self, request: pb.SendPasswordResetRequest, context: Context
    ) -> pb.SendPasswordResetResponse:
        return await email.send_password_reset(self._deps, request)

    async def ResetPassword(
        self, request: pb.ResetPasswordRequest, context: Context
    ) -> pb.ResetPasswordResponse:
        return await email.reset_password(self._deps, request)

    # rate limits

    async def HitRateLimit(
        self, request: pb.HitRateLimitRequest, context: Context
    ) -> pb.HitRateLimitResponse:
        return await rate_limits.hit_rate_limit(self._deps, request)


class RelayAccountsServicer(accounts_pb2_grpc.RelayAccountsServiceServicer):
    """The relays' RPCs (RelayAccountsService): API keys and routing on the request path,
    channel results, channel probes."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: Context
    ) -> pb.AuthenticateResponse:
        return await tokens.authenticate(self._deps, request)

    async def GetRoutingSnapshot(
        self, request: pb.GetRoutingSnapshotRequest, context: Context
    ) -> pb.RoutingSnapshot:
        return await options.get_routing_snapshot(self._deps, request)

    async def GetRoutingDelta(
        self, request: pb.GetRoutingDeltaRequest, context: Context
    ) -> pb.RoutingDelta:
        return await options.get_routing_delta(self._deps, request)

    async def ReportChannelResult(
        self, request: pb.ReportChannelResultRequest, context: Context
    ) -> pb.ReportChannelResultResponse:
        return await channels.report_channel_result(self._deps, request)

    async def GetProbeChannels(
        self, request: pb.GetProbeChannelsRequest, context: Context
    ) -> pb.ProbeChannels:
        return await channel_health.get_probe_channels(self._deps, request)

    async def RecordChannelTest(
        self, request: pb.RecordChannelTestRequest, context: Context
    ) -> pb.RecordChannelTestResponse:
        return await channel_health.record_channel_test(self._deps, request)

    async def RecordChannelBalance(
        self, request: pb.RecordChannelBalanceRequest, context: Context
    ) -> pb.RecordChannelBalanceResponse:
        return await channel_health.record_channel_balance(self._deps, request)

"""The caller -> RPC and NATS user -> subject tables, and the NATS configuration shipped for
compose/Kubernetes (generated from the table; a stale copy would let the tables drift)."""

from __future__ import annotations

from pathlib import Path

from services.shared import internal_auth, nats_auth, subjects

ACCOUNTS = "/veloera.accounts.v1.AccountsService/"
BILLING = "/veloera.billing.v1.BillingService/"
RELAY_ACCOUNTS = "/veloera.accounts.v1.RelayAccountsService/"
RELAY_BILLING = "/veloera.billing.v1.RelayBillingService/"


def test_the_relay_reaches_its_request_path_and_nothing_that_acts_for_an_admin() -> None:
    relay = internal_auth.PERMISSIONS[internal_auth.RELAY]
    for path in (
        f"{RELAY_BILLING}Reserve",
        f"{RELAY_BILLING}SettleBatch",
        f"{RELAY_ACCOUNTS}Authenticate",
        f"{BILLING}GetPricingOptions",  # the /v1/dashboard billing pages
    ):
        assert path in relay
    for path in (f"{BILLING}AdjustQuota", f"{ACCOUNTS}RevealChannelKey", f"{ACCOUNTS}ListOptions",
                 f"{ACCOUNTS}UpdateOption", f"{BILLING}CreateRedemptions"):  # fmt: skip
        assert path not in relay


def test_web_acts_for_admins_but_never_moves_money_on_the_request_path() -> None:
    web = internal_auth.PERMISSIONS[internal_auth.WEB]
    assert f"{BILLING}AdjustQuota" in web and f"{ACCOUNTS}RevealChannelKey" in web
    for path in (
        f"{RELAY_BILLING}Reserve",
        f"{RELAY_BILLING}SettleBatch",
        f"{RELAY_ACCOUNTS}GetRoutingSnapshot",
        f"{BILLING}CheckLedger",
    ):
        assert path not in web


def test_the_relays_services_are_theirs_alone() -> None:
    """The split services: whatever the relays' services hold, only the relay (and operator
    tools) may call; the console's services are the console's."""
    relay_only = {
        path
        for path in internal_auth.ALL_RPCS
        if path.startswith(("/veloera.accounts.v1.Relay", "/veloera.billing.v1.Relay"))
    }
    assert relay_only and relay_only <= internal_auth.PERMISSIONS[internal_auth.RELAY]
    for caller in (internal_auth.WEB, internal_auth.TASKS):
        assert not relay_only & internal_auth.PERMISSIONS[caller], caller
    console = internal_auth.ALL_RPCS - relay_only
    assert internal_auth.PERMISSIONS[internal_auth.RELAY] & console == {
        f"{BILLING}GetPricingOptions",
        f"{BILLING}GetTokenBudgets",
    }


def test_tasks_lists_channels_for_health_checks_and_nothing_else() -> None:
    assert internal_auth.PERMISSIONS[internal_auth.TASKS] == {f"{ACCOUNTS}ListChannels"}


def test_only_the_relay_makes_and_records_channel_probes() -> None:
    probe_rpcs = {
        f"{RELAY_ACCOUNTS}GetProbeChannels",
        f"{RELAY_ACCOUNTS}RecordChannelTest",
        f"{RELAY_ACCOUNTS}RecordChannelBalance",
    }
    assert probe_rpcs <= internal_auth.PERMISSIONS[internal_auth.RELAY]
    for caller in (internal_auth.WEB, internal_auth.TASKS):
        assert not probe_rpcs & internal_auth.PERMISSIONS[caller], caller
    for user in (nats_auth.WEB, nats_auth.TASKS):
        allowed = nats_auth.PERMISSIONS[user]
        assert allowed is not None and subjects.CHANNEL_PROBE in allowed[0], user
    relay = nats_auth.PERMISSIONS[nats_auth.RELAY]
    assert relay is not None and subjects.CHANNEL_PROBE in relay[1]


def test_the_relay_nats_user_publishes_settlements_only() -> None:
    allowed = nats_auth.PERMISSIONS[nats_auth.RELAY]
    assert allowed is not None
    publish, _subscribe = allowed
    assert subjects.SETTLE_BATCHES_SUBJECT in publish
    for subject in (subjects.ACCOUNTS_CHANGED, subjects.PRICES_CHANGED, subjects.USAGE_SUBJECT):
        assert subject not in publish


def test_the_shipped_nats_configuration_matches_the_table() -> None:
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "nats.conf"
    assert shipped.read_text() == nats_auth.deploy_config()

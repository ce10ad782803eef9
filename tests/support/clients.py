"""The suite's gRPC clients of accounts and billing: each server's two services (the console's
and the relays') on one channel, as an operator tool calls them (the suite calls as the admin
caller, which may call every RPC; tests of the permission table call as the others)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from veloera.accounts.v1 import accounts_pb2_grpc
from veloera.billing.v1 import billing_pb2_grpc

if TYPE_CHECKING:
    import grpc

    class AccountsClient(
        accounts_pb2_grpc.AccountsServiceAsyncStub,
        accounts_pb2_grpc.RelayAccountsServiceAsyncStub,
    ):
        def __init__(self, channel: grpc.aio.Channel) -> None: ...

    class BillingClient(
        billing_pb2_grpc.BillingServiceAsyncStub,
        billing_pb2_grpc.RelayBillingServiceAsyncStub,
    ):
        def __init__(self, channel: grpc.aio.Channel) -> None: ...

else:

    class AccountsClient(
        accounts_pb2_grpc.AccountsServiceStub, accounts_pb2_grpc.RelayAccountsServiceStub
    ):
        def __init__(self, channel):
            accounts_pb2_grpc.AccountsServiceStub.__init__(self, channel)
            accounts_pb2_grpc.RelayAccountsServiceStub.__init__(self, channel)

    class BillingClient(
        billing_pb2_grpc.BillingServiceStub, billing_pb2_grpc.RelayBillingServiceStub
    ):
        def __init__(self, channel):
            billing_pb2_grpc.BillingServiceStub.__init__(self, channel)
            billing_pb2_grpc.RelayBillingServiceStub.__init__(self, channel)

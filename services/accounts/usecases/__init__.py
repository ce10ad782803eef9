"""Accounts' use cases, one module per concern: plain async functions `(deps, request) ->
response` that the gRPC servicer (servicer.py) delegates to."""

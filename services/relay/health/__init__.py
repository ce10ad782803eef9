"""Channel health probes: a channel test, a balance query and a model list sent to a channel's
upstream through the relay's own adaptors, and their recording in accounts.

The relay owns the knowledge of how to talk to each provider (adaptors, upstream HTTP); the
console (manual tests) and the tasks service (scheduled ones) import this package, and only
this package, of the relay (an exception the import contracts in pyproject.toml name), so a
test sends exactly what a relayed request would.
"""

"""Channel health probes: a channel test, a balance query and a model list sent to a channel's
upstream through the relay's own adaptors, and their recording in accounts.

The relay owns the knowledge of how to talk to each provider (adaptors, upstream HTTP), so it
makes the probes, for the console's manual runs and the tasks service's scheduled ones, when
they ask over NATS (responder.py; the asking side is services/shared/channel_probes.py): a test
sends exactly what a relayed request would, and channel keys stay in accounts and the relays.
"""

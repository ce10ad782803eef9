"""The relay's side of the money: holds against quota leases (or per-request reserves),
one settle or release per request, batched to billing and deferred to JetStream when billing
does not answer in time."""

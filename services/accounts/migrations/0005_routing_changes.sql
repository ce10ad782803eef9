-- What each routing version changed, so a relay fetches only that (GetRoutingDelta) instead of
-- the whole snapshot. Written in the transaction that bumps routing_state.version; the oldest
-- rows are pruned (a relay that far behind takes a full snapshot).
CREATE TABLE routing_changes (
    version bigint PRIMARY KEY,
    channel_ids bigint[] NOT NULL DEFAULT '{}',
    options boolean NOT NULL DEFAULT false,
    everything boolean NOT NULL DEFAULT false
);

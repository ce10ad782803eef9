"""How requests reach billing: the gRPC servicer (one class, each RPC one use case), the
JetStream consumer of deferred settlements, and the protobuf <-> domain conversions."""

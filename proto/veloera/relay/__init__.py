"""Generated protobuf stubs (make proto)."""

"""`veloera import`: move a new-api, one-api or Veloera (Go) database into this system."""

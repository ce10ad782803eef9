"""Route tables of the web service, one module per API area."""

"""Billing's SQL: each module holds the statements of a few tables and the functions that run
them on the caller's connection (the caller owns the transaction). No money rules here."""

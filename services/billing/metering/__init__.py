"""The money path: Reserve holds, quota leases, settlement (one path: batch.apply, with the
pure rules in settle_rules.py), releases, the reaper, adjustments and balances as users see
them. See NOTES.md for the rules."""

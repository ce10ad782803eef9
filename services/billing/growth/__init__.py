"""Quota coming in: redemption and gift codes, daily check-in, invite rewards, online top-ups
(EPay). Every credit goes through metering/adjust.py, idempotent by its key."""

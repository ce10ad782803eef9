"""Notifications (upstream `service/user_notify.go`, `notify-limit.go`, `webhook.go`): quota
warnings, channel state changes and any service's user notifications, consumed from JetStream
and delivered by email or webhook per the user's settings, within a per-user limit.

They live in accounts rather than tasks because accounts owns everything a delivery needs:
the users and their notification settings (webhook secrets included), who the admins are, the
SMTP options (the SMTP password sealed with CRYPTO_SECRET) and the mailer. Delivering from tasks
would ship those secrets over a new RPC for every notification.
"""

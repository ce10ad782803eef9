-- Third-party identities (GitHub, OIDC, and later WeChat, Telegram, LinuxDO, IDC Flare) stay in
-- the users columns upstream has (github_id, oidc_id, ...), now each bound to one user only.
-- Soft-deleted users keep theirs, as upstream's "already taken" checks include deleted users.
CREATE UNIQUE INDEX users_github_id_key ON users (github_id) WHERE github_id <> '';
CREATE UNIQUE INDEX users_oidc_id_key ON users (oidc_id) WHERE oidc_id <> '';
CREATE UNIQUE INDEX users_wechat_id_key ON users (wechat_id) WHERE wechat_id <> '';
CREATE UNIQUE INDEX users_telegram_id_key ON users (telegram_id) WHERE telegram_id <> '';
CREATE UNIQUE INDEX users_linux_do_id_key ON users (linux_do_id) WHERE linux_do_id <> '';
CREATE UNIQUE INDEX users_idc_flare_id_key ON users (idc_flare_id) WHERE idc_flare_id <> '';

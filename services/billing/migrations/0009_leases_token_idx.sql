-- Leases are on by default (issue 6): token budgets shown to users add what active leases of
-- the token still hold, so find them by token.
CREATE INDEX leases_token_active_idx ON leases (token_id) WHERE status = 'active';

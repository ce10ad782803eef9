-- Reserve in one round trip (issue 6): rate limits, hold claim (idempotent by request id),
-- token budget, wallet debit (subscription quota first), ledger row, all in one function,
-- called as one statement in its own implicit transaction. The rules are those of
-- services/billing/accounting.py and ratelimit.py; locks are taken in the same order
-- (rate-limit subject -> hold -> token budget -> wallet).
--
-- A refusal raises (SQLSTATE P0001) with MESSAGE the error code (insufficient_user_quota,
-- token_quota_exhausted, rate_limited) and DETAIL a JSON object, so nothing is written.
CREATE FUNCTION reserve_hold(
    p_request_id text,
    p_user_id bigint,
    p_token_id bigint,
    p_model text,
    p_group text,
    p_price jsonb,
    p_amount bigint,
    p_ttl_seconds double precision,
    l_scope text[],
    l_subject bigint[],
    l_period bigint[],
    l_max_requests bigint[],
    l_max_success bigint[]
) RETURNS TABLE (
    created boolean,
    reserved_quota bigint,
    reserved_subscription bigint,
    reserved_token bigint,
    created_at timestamptz,
    expires_at timestamptz,
    price text,
    balance bigint
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i integer;
    v_total bigint;
    v_succeeded bigint;
    v_now double precision;
    v_oldest double precision;
    v_oldest_success double precision;
    v_remain bigint;
    v_unlimited boolean;
    v_token bigint := 0;
    v_quota bigint;
    v_sub bigint;
    v_from_sub bigint := 0;
    v_from_quota bigint := 0;
    v_created timestamptz;
    v_expires timestamptz;
BEGIN
    FOR i IN 1 .. coalesce(array_length(l_scope, 1), 0) LOOP
        CONTINUE WHEN l_period[i] <= 0 OR (l_max_requests[i] <= 0 AND l_max_success[i] <= 0);
        PERFORM pg_advisory_xact_lock(hashtextextended(l_scope[i] || ':' || l_subject[i], 7));
        INSERT INTO rate_events AS e (scope, subject, request_id)
        VALUES (l_scope[i], l_subject[i], p_request_id)
        ON CONFLICT (scope, subject, request_id) DO NOTHING;
        CONTINUE WHEN NOT FOUND;  -- a repeated request id is neither counted nor refused
        SELECT count(*), count(*) FILTER (WHERE r.success),
               extract(epoch FROM clock_timestamp()), extract(epoch FROM min(r.at)),
               extract(epoch FROM min(r.at) FILTER (WHERE r.success))
        INTO v_total, v_succeeded, v_now, v_oldest, v_oldest_success
        FROM rate_events r
        WHERE r.scope = l_scope[i] AND r.subject = l_subject[i]
          AND r.at > clock_timestamp() - make_interval(secs => l_period[i]::double precision)
          AND r.request_id <> p_request_id;
        IF l_max_requests[i] > 0 AND v_total >= l_max_requests[i] THEN
            RAISE EXCEPTION 'rate_limited' USING DETAIL = json_build_object(
                'index', i - 1, 'now', v_now, 'oldest', v_oldest, 'what', 'requests')::text;
        END IF;
        IF l_max_success[i] > 0 AND v_succeeded >= l_max_success[i] THEN
            RAISE EXCEPTION 'rate_limited' USING DETAIL = json_build_object(
                'index', i - 1, 'now', v_now, 'oldest', v_oldest_success,
                'what', 'successes')::text;
        END IF;
    END LOOP;

    -- ON CONFLICT DO NOTHING: a concurrent Reserve with the same id waits for ours, then
    -- returns the existing hold instead of charging again.
    INSERT INTO holds AS h (request_id, user_id, token_id, model, "group", price, expires_at)
    VALUES (p_request_id, p_user_id, p_token_id, p_model, p_group, p_price,
            now() + make_interval(secs => p_ttl_seconds))
    ON CONFLICT (request_id) DO NOTHING
    RETURNING h.created_at, h.expires_at INTO v_created, v_expires;
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT false, h.reserved_quota, h.reserved_subscription, h.reserved_token,
                   h.created_at, h.expires_at, h.price::text,
                   coalesce((SELECT w.quota + w.subscription_quota FROM wallets w
                             WHERE w.user_id = h.user_id), 0)
            FROM holds h WHERE h.request_id = p_request_id;
        RETURN;
    END IF;

    IF p_token_id > 0 THEN  -- playground and internal calls have no token
        SELECT b.remain_quota, b.unlimited INTO v_remain, v_unlimited
        FROM token_budgets b WHERE b.token_id = p_token_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'token_quota_exhausted' USING DETAIL = '{}';
        END IF;
        IF NOT v_unlimited THEN
            IF v_remain <= 0 OR v_remain < p_amount THEN
                RAISE EXCEPTION 'token_quota_exhausted' USING DETAIL = '{}';
            END IF;
            IF p_amount > 0 THEN
                UPDATE token_budgets SET remain_quota = remain_quota - p_amount,
                    updated_at = now()
                WHERE token_id = p_token_id;
                v_token := p_amount;
            END IF;
        END IF;
    END IF;

    SELECT w.quota, w.subscription_quota INTO v_quota, v_sub
    FROM wallets w WHERE w.user_id = p_user_id FOR UPDATE;
    IF NOT FOUND OR v_quota + v_sub <= 0 OR v_quota + v_sub < p_amount THEN
        RAISE EXCEPTION 'insufficient_user_quota' USING DETAIL = '{}';
    END IF;
    IF p_amount > 0 THEN
        v_from_sub := least(v_sub, p_amount);
        v_from_quota := p_amount - v_from_sub;
        UPDATE wallets w SET subscription_quota = w.subscription_quota - v_from_sub,
            quota = w.quota - v_from_quota, updated_at = now()
        WHERE w.user_id = p_user_id
        RETURNING w.quota, w.subscription_quota INTO v_quota, v_sub;
        INSERT INTO ledger (user_id, idempotency_key, kind, delta_quota, delta_subscription,
                            balance_after, subscription_after, request_id, reason)
        VALUES (p_user_id, 'hold:' || p_request_id, 'hold', -v_from_quota, -v_from_sub,
                v_quota, v_sub, p_request_id, 'hold for ' || p_model);
        UPDATE holds SET reserved_quota = v_from_quota, reserved_subscription = v_from_sub,
            reserved_token = v_token
        WHERE holds.request_id = p_request_id;
    ELSIF v_token > 0 THEN
        UPDATE holds SET reserved_token = v_token WHERE holds.request_id = p_request_id;
    END IF;
    RETURN QUERY SELECT true, v_from_quota, v_from_sub, v_token, v_created, v_expires,
        NULL::text, v_quota + v_sub;
END;
$$;

-- RequestCalls that found no taxi, remembered per idempotency key so that a
-- retried request records its unmet demand (CallRejected) only once; and the
-- sweeper's retry schedule for the effects a committed transition owes.

CREATE TABLE rejections (
    customer_id     UUID NOT NULL,
    idempotency_key TEXT NOT NULL,
    -- The id the CallRejected event was recorded under; no call has it.
    call_id         UUID NOT NULL,
    rejected_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, idempotency_key)
);

-- effect_attempts counts the sweeper's attempts at the owed effects since a
-- transition recorded them. effect_next_at is when the sweeper may take them
-- next (a lease while an attempt runs, then the back-off after it failed); it
-- is NULL until the first attempt, made by the request that committed the
-- transition, has failed, and the sweeper then takes the effects over only
-- once they are stale (that request is assumed to have crashed).
ALTER TABLE calls
    ADD COLUMN effect_attempts INT NOT NULL DEFAULT 0 CHECK (effect_attempts >= 0),
    ADD COLUMN effect_next_at  TIMESTAMPTZ;

DROP INDEX calls_effects_owed;
CREATE INDEX calls_effects_owed ON calls (effect_next_at NULLS FIRST)
    WHERE effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL;

-- The Call aggregate and its saga bookkeeping (schema `call`; the outbox is
-- the outbox crate's migration).

CREATE TABLE calls (
    call_id                UUID PRIMARY KEY,
    customer_id            UUID NOT NULL,
    idempotency_key        TEXT NOT NULL,
    driver_id              UUID,
    taxi_type              TEXT NOT NULL,
    status                 TEXT NOT NULL
        CHECK (status IN ('REQUESTED', 'ACCEPTED', 'IN_TRIP', 'COMPLETED', 'CANCELED')),
    cancel_reason          TEXT CHECK (cancel_reason IN ('CUSTOMER', 'EXPIRED', 'PAYMENT_DECLINED')),
    pickup_lat             DOUBLE PRECISION NOT NULL,
    pickup_lng             DOUBLE PRECISION NOT NULL,
    dropoff_lat            DOUBLE PRECISION NOT NULL,
    dropoff_lng            DOUBLE PRECISION NOT NULL,
    payment_method         TEXT NOT NULL,
    quoted_fare_krw        BIGINT NOT NULL CHECK (quoted_fare_krw >= 0),
    estimated_distance_m   BIGINT NOT NULL CHECK (estimated_distance_m >= 0),
    advance_krw            BIGINT NOT NULL DEFAULT 0 CHECK (advance_krw >= 0),
    distance_m             BIGINT CHECK (distance_m >= 0),
    final_fare_krw         BIGINT CHECK (final_fare_krw >= 0),
    cancel_fee_krw         BIGINT NOT NULL DEFAULT 0 CHECK (cancel_fee_krw >= 0),
    availability_unchecked BOOLEAN NOT NULL,
    version                BIGINT NOT NULL,
    requested_at           TIMESTAMPTZ NOT NULL,
    accepted_at            TIMESTAMPTZ,
    started_at             TIMESTAMPTZ,
    completed_at           TIMESTAMPTZ,
    canceled_at            TIMESTAMPTZ,
    -- A driver's accept in progress (assign, then charge).
    claim_driver_id        UUID,
    claim_since            TIMESTAMPTZ,
    -- Effects owed to other services after a committed transition.
    effect_settle_krw      BIGINT CHECK (effect_settle_krw >= 0),
    effect_release_driver  UUID,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (customer_id, idempotency_key)
);

CREATE INDEX calls_expiry ON calls (requested_at)
    WHERE status = 'REQUESTED' AND claim_driver_id IS NULL;
CREATE INDEX calls_claimed ON calls (claim_since)
    WHERE claim_driver_id IS NOT NULL;
CREATE INDEX calls_effects_owed ON calls (updated_at)
    WHERE effect_settle_krw IS NOT NULL OR effect_release_driver IS NOT NULL;

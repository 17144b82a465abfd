-- Offers of requested calls to nearby drivers, and what dispatch knows of each
-- call's round of offers (schema `dispatch`).

-- One row per call seen on the event stream: when its offers went out and when
-- it closed (accepted, canceled or finished). The row is also the call's lock:
-- a CallRequested and a closing event of the same call, handled by two
-- replicas at once, serialize on it. A closed round never offers again, so a
-- late or redelivered CallRequested cannot resurrect offers.
CREATE TABLE offer_rounds (
    call_id    UUID PRIMARY KEY,
    offered_at TIMESTAMPTZ,
    closed_at  TIMESTAMPTZ,
    CHECK (offered_at IS NOT NULL OR closed_at IS NOT NULL)
);

-- Rounds are forgotten after a retention period (see the cleanup).
CREATE INDEX offer_rounds_age_idx ON offer_rounds ((coalesce(closed_at, offered_at)));

-- A call offered to a driver. The call's details are copied so that a driver's
-- open offers are read with one query. `notified_at` and `withdrawn_at` make
-- notifications at-least-once: a row is published after it commits and marked
-- (or, when withdrawn, deleted) only after the publish, so a redelivered event
-- finishes what a crash interrupted.
CREATE TABLE offers (
    call_id              UUID NOT NULL,
    driver_id            UUID NOT NULL,
    -- The proto enum's name, e.g. TAXI_TYPE_NORMAL.
    taxi_type            TEXT NOT NULL,
    pickup_lat           DOUBLE PRECISION NOT NULL,
    pickup_lng           DOUBLE PRECISION NOT NULL,
    dropoff_lat          DOUBLE PRECISION,
    dropoff_lng          DOUBLE PRECISION,
    quoted_fare_krw      BIGINT NOT NULL,
    distance_to_pickup_m INTEGER NOT NULL,
    offered_at           TIMESTAMPTZ NOT NULL,
    expires_at           TIMESTAMPTZ NOT NULL,
    notified_at          TIMESTAMPTZ,
    withdrawn_at         TIMESTAMPTZ,
    PRIMARY KEY (call_id, driver_id),
    CHECK ((dropoff_lat IS NULL) = (dropoff_lng IS NULL)),
    CHECK (expires_at > offered_at)
);

-- WatchOffers: a driver's open offers.
CREATE INDEX offers_driver_idx ON offers (driver_id, expires_at);
-- The cleanup of expired offers.
CREATE INDEX offers_expiry_idx ON offers (expires_at);

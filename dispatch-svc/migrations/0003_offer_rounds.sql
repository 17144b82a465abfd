-- Rounds of offers (schema `dispatch`). A call's row in offer_rounds now
-- follows its search: the round it is in, when that round ends, how far it
-- searches, and the call's details, so that a driver who comes online or
-- moves near a waiting call is offered it without another event. Rows of
-- calls seen before this migration have no details and are never offered
-- that way.

ALTER TABLE offer_rounds
    ADD COLUMN round            INT NOT NULL DEFAULT 1 CHECK (round >= 1),
    ADD COLUMN round_expires_at TIMESTAMPTZ,
    ADD COLUMN radius_m         INT,
    -- The proto enum's name, e.g. TAXI_TYPE_NORMAL.
    ADD COLUMN taxi_type        TEXT,
    ADD COLUMN pickup_lat       DOUBLE PRECISION,
    ADD COLUMN pickup_lng       DOUBLE PRECISION,
    ADD COLUMN dropoff_lat      DOUBLE PRECISION,
    ADD COLUMN dropoff_lng      DOUBLE PRECISION,
    ADD COLUMN quoted_fare_krw  BIGINT;

-- Open rounds a driver may be offered on the way (online, moving).
CREATE INDEX offer_rounds_open_idx ON offer_rounds (taxi_type, round_expires_at)
    WHERE closed_at IS NULL;

-- Every driver a call was ever offered to, so that a later round goes to the
-- next nearest drivers instead of the same ones (offers themselves are
-- deleted once they expire). Forgotten with the call's round row.
CREATE TABLE offered_drivers (
    call_id   UUID NOT NULL REFERENCES offer_rounds (call_id) ON DELETE CASCADE,
    driver_id UUID NOT NULL,
    round     INT NOT NULL,
    PRIMARY KEY (call_id, driver_id)
);

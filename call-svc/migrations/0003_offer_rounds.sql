-- The search for a driver: the round of offers a REQUESTED call is in, when
-- that round ends (the sweeper then starts the next one), and when the call
-- expires. Calls made before rounds existed keep NULL times: their search
-- goes on as one round until they expire.

ALTER TABLE calls
    ADD COLUMN offer_round      INT NOT NULL DEFAULT 1 CHECK (offer_round >= 1),
    ADD COLUMN round_expires_at TIMESTAMPTZ,
    ADD COLUMN expires_at       TIMESTAMPTZ;

-- The sweeper's search for rounds that ended unaccepted.
CREATE INDEX calls_round_due ON calls (round_expires_at) WHERE status = 'REQUESTED';

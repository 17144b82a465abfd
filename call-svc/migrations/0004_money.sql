-- What the customer paid, was refunded and still owes for a call, as the
-- ledger last answered call-svc, and how many times they gave another card
-- for what is owed (each such settlement has an idempotency key of its own).
-- Calls from before start from their advance: an estimate that the next
-- settlement answer corrects.

ALTER TABLE calls
    ADD COLUMN paid_krw       BIGINT NOT NULL DEFAULT 0 CHECK (paid_krw >= 0),
    ADD COLUMN refunded_krw   BIGINT NOT NULL DEFAULT 0 CHECK (refunded_krw >= 0),
    ADD COLUMN owed_krw       BIGINT NOT NULL DEFAULT 0 CHECK (owed_krw >= 0),
    ADD COLUMN settle_attempt INT NOT NULL DEFAULT 0 CHECK (settle_attempt >= 0);

UPDATE calls SET paid_krw = advance_krw;

-- The payment ledger (one row per money movement), the record of every final
-- settlement and per-call event versions (the outbox is the outbox crate's
-- migration).

CREATE TABLE entries (
    -- Insertion order: the ledger lists entries oldest first by it.
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    entry_id             UUID PRIMARY KEY,
    call_id              UUID NOT NULL,
    customer_id          UUID NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('ADVANCE', 'FINAL_CHARGE', 'REFUND')),
    status               TEXT NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'DECLINED')),
    amount_krw           BIGINT NOT NULL CHECK (amount_krw > 0),
    payment_method       TEXT NOT NULL,
    idempotency_key      TEXT NOT NULL UNIQUE,
    -- The provider's reference when approved, its reason when declined.
    provider_reference   TEXT,
    -- The request that created the entry, so a retried key can be told from a
    -- reused one: the command and the amount it named (for SETTLE_FINAL, the
    -- final amount); customer and payment method are the columns above.
    command              TEXT NOT NULL CHECK (command IN ('CHARGE_ADVANCE', 'SETTLE_FINAL', 'REFUND')),
    requested_amount_krw BIGINT NOT NULL CHECK (requested_amount_krw >= 0),
    reason               TEXT NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX entries_by_call ON entries (call_id, seq);

-- At most one advance per call that is in flight or taken; a declined one
-- may be followed by another attempt.
CREATE UNIQUE INDEX entries_one_live_advance ON entries (call_id)
    WHERE kind = 'ADVANCE' AND status IN ('PENDING', 'APPROVED');

-- Every SettleFinal, including those that needed no entry, so that repeating
-- its key gives the same answer and its event is written once.
CREATE TABLE settlements (
    idempotency_key  TEXT PRIMARY KEY,
    call_id          UUID NOT NULL,
    final_amount_krw BIGINT NOT NULL CHECK (final_amount_krw >= 0),
    entry_id         UUID REFERENCES entries (entry_id),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The version of the "payment" aggregate of each call, for its events.
CREATE TABLE call_versions (
    call_id UUID PRIMARY KEY,
    version BIGINT NOT NULL
);

-- The outbox of one service's schema: the events its transactions committed,
-- in commit order, until the relay has published them.

CREATE TABLE outbox (
    seq               BIGSERIAL PRIMARY KEY,   -- commit order for the relay
    event_id          UUID NOT NULL UNIQUE,
    aggregate_type    TEXT NOT NULL,
    aggregate_id      UUID NOT NULL,
    aggregate_version BIGINT NOT NULL,
    event_type        TEXT NOT NULL,           -- e.g. call.requested; the subject's middle
    payload           BYTEA NOT NULL,          -- an encoded taxi.events.v1.EventEnvelope
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at      TIMESTAMPTZ
);

-- The relay reads only unpublished rows, oldest first.
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

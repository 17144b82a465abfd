-- The outbox shape every write service migrates (see svc_kit::outbox).

CREATE TABLE outbox (
    seq               BIGSERIAL PRIMARY KEY,
    event_id          UUID NOT NULL UNIQUE,
    aggregate_type    TEXT NOT NULL,
    aggregate_id      UUID NOT NULL,
    aggregate_version BIGINT NOT NULL,
    event_type        TEXT NOT NULL,
    payload           BYTEA NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at      TIMESTAMPTZ
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

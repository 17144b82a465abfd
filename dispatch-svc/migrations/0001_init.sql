-- Drivers and their assignments to calls (schema `dispatch`; the outbox is
-- the outbox crate's migration).

CREATE TABLE drivers (
    driver_id           UUID PRIMARY KEY,
    name                TEXT NOT NULL,
    license_plate       TEXT NOT NULL,
    -- The proto enum's name, e.g. TAXI_TYPE_NORMAL.
    taxi_type           TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'OFFLINE'
                        CHECK (status IN ('OFFLINE', 'AVAILABLE', 'ON_CALL')),
    lat                 DOUBLE PRECISION,
    lng                 DOUBLE PRECISION,
    location_updated_at TIMESTAMPTZ,
    current_call_id     UUID,
    -- The aggregate version carried by the driver's events.
    version             BIGINT NOT NULL DEFAULT 1,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'ON_CALL') = (current_call_id IS NOT NULL)),
    CHECK ((lat IS NULL) = (lng IS NULL))
);

-- CheckAvailability: equality on status and taxi type, then a latitude range.
CREATE INDEX drivers_availability_idx ON drivers (status, taxi_type, lat, lng);

-- One row per call, ever: the primary key is what makes a call's assignment
-- single-winner across replicas. A row with assigned_at NULL is a tombstone
-- left by a ReleaseDriver that arrived before any assignment.
CREATE TABLE assignments (
    call_id     UUID PRIMARY KEY,
    driver_id   UUID NOT NULL,
    assigned_at TIMESTAMPTZ,
    released_at TIMESTAMPTZ,
    CHECK (assigned_at IS NOT NULL OR released_at IS NOT NULL)
);

CREATE INDEX assignments_driver_idx ON assignments (driver_id);

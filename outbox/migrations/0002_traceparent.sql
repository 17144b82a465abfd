-- The W3C trace context of the span that appended the row (NULL while
-- tracing is off), so the relay's publish continues the same trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;

-- The request an audit row was made in: its request id (X-Request-Id, a traceparent's trace id,
-- or the hub's own), so an entry can be found in the logs. NULL for what no request did (the
-- watcher, the hub's start).
ALTER TABLE hub_audit ADD COLUMN IF NOT EXISTS request_id text;

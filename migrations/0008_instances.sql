-- The hubs on this database: each registers itself and beats every HUB_FLEET_HEARTBEAT_SECS
-- with the version and state of each of its modules; one that stops beating is shown as gone
-- after HUB_FLEET_GONE_SECS. A hub that stops cleanly marks itself stopped.
CREATE TABLE IF NOT EXISTS hub_instances (
    -- host:pid:start (unique per process).
    id          text        PRIMARY KEY,
    -- Where it serves (HUB_PUBLIC_URL, or its bind address).
    address     text        NOT NULL,
    version     text        NOT NULL,
    plugin_api  text        NOT NULL,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    stopped_at  timestamptz,
    -- name → {"version", "state"}
    modules     jsonb       NOT NULL DEFAULT '{}'
);

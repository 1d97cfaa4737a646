-- Usage analytics: what each module route counted per hour, added to by every hub of the
-- fleet (one row per module, route and hour). `buckets` counts calls per duration bucket
-- (bounds 1 ms, 2.5 ms, 5 ms, 10 ms, 25 ms, 50 ms, 100 ms, 250 ms, 500 ms, 1 s, 2.5 s, 10 s,
-- then slower), so percentiles can be read for any span of hours.
CREATE TABLE IF NOT EXISTS hub_usage (
    module text NOT NULL,
    route text NOT NULL,
    hour timestamptz NOT NULL,
    calls bigint NOT NULL,
    client_errors bigint NOT NULL,
    errors bigint NOT NULL,
    anonymous_calls bigint NOT NULL,
    duration_seconds double precision NOT NULL,
    buckets bigint[] NOT NULL,
    PRIMARY KEY (module, hour, route)
);

-- Who called a route in an hour: a set, so that callers seen by several hubs, or in several
-- flushes of the hour, count once.
CREATE TABLE IF NOT EXISTS hub_usage_callers (
    module text NOT NULL,
    route text NOT NULL,
    hour timestamptz NOT NULL,
    caller text NOT NULL,
    PRIMARY KEY (module, hour, route, caller)
);

CREATE INDEX IF NOT EXISTS hub_usage_hour ON hub_usage (hour);
CREATE INDEX IF NOT EXISTS hub_usage_callers_hour ON hub_usage_callers (hour);

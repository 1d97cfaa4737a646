-- Fleet mode (HUB_FLEET=true): the desired state of every module of the fleet. The management
-- API, the console and package installs change a row in a transaction and notify channel
-- hub_fleet with the module's name; every hub applies the row (materializing the package from
-- hub_packages) and reports what it runs in hub_instances.
CREATE TABLE IF NOT EXISTS hub_module_state (
    name        text        PRIMARY KEY,
    -- The package installed: hub_packages (module, version) with this SHA-256.
    version     text        NOT NULL,
    sha256      text        NOT NULL,
    -- The module.json every hub writes: the package's, with what the operator set.
    manifest    jsonb       NOT NULL,
    -- The package's own module.json (for carrying the operator's settings to the next version).
    shipped     jsonb       NOT NULL,
    -- 'all' (every hub at once) or 'rolling' (one hub at a time).
    rollout     text        NOT NULL DEFAULT 'all',
    -- 'pending': the version's contract migrations wait until every live hub serves it.
    contract    text        NOT NULL DEFAULT 'done',
    -- A rolling upgrade stopped because a hub failed to start the version: why.
    halted      text,
    -- Grows by one with every reload asked of the fleet: each hub restarts the module.
    reloads     bigint      NOT NULL DEFAULT 0,
    -- Grows by one with every change; hubs report the generation they applied.
    generation  bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);

-- A change of users, tokens, sessions or roles is also notified on hub_fleet (payload
-- '*identity'): hubs in fleet mode read the directory again at once instead of at their next
-- second's look at hub_identity_changes.
CREATE OR REPLACE FUNCTION hub_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('hub_identity_changes');
    PERFORM pg_notify('hub_fleet', '*identity');
    RETURN NULL;
END
$$;

-- The hub's record of applied migrations, its own (module 'hub') and every module's.
CREATE TABLE IF NOT EXISTS module_migrations (
    module      text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer     NOT NULL,
    -- Tables and views the migration created: the module's status shows them present or missing.
    relations   text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (module, version)
);

-- Facts about this database's hub: the prefix of the PostgreSQL roles it creates for modules.
-- Roles are cluster-wide and databases are not: the prefix carries an id of this database's own,
-- so two databases (two deployments, or tests) on one cluster never share a role.
CREATE TABLE IF NOT EXISTS hub_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO hub_meta (key, value)
VALUES ('role_prefix', 'hub_mod_' || substr(md5(random()::text || clock_timestamp()::text), 1, 8) || '_')
ON CONFLICT (key) DO NOTHING;

-- The roles this database's hub created, one pair per module: the hub drops only these.
CREATE TABLE IF NOT EXISTS hub_module_roles (
    module     text PRIMARY KEY,
    writer     text NOT NULL UNIQUE,
    reader     text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

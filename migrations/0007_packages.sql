-- Installed module packages: every kept version of each module, with its bytes, so that a
-- rollback (and another hub) can install the same bytes again.
CREATE TABLE IF NOT EXISTS hub_packages (
    module       text        NOT NULL,
    version      text        NOT NULL,
    -- SHA-256 of the package, lowercase hex.
    sha256       text        NOT NULL,
    size         bigint      NOT NULL,
    -- The id of the key that signed it; NULL for an unsigned package.
    signer       text,
    installed_at timestamptz NOT NULL DEFAULT now(),
    -- Who installed it, as the audit log names callers.
    installed_by text        NOT NULL,
    -- The migrations this version declares: [{"version", "name", "expand"}].
    migrations   jsonb       NOT NULL DEFAULT '[]',
    bytes        bytea       NOT NULL,
    PRIMARY KEY (module, version)
);

-- Written so that it can run again over its own objects (as 0002 can).
--
-- Who may use the hub: users (people signed in through the identity provider, service users for
-- other systems, and the bootstrap administrator), roles and their permissions, API tokens,
-- browser sessions, pending sign-ins, and the audit log.
--
-- Hubs keep users, roles, tokens and sessions in memory and read them again when
-- hub_identity_changes moves: every change to them moves it (a trigger per table), so a
-- revocation on one hub takes effect on every hub within a second.
CREATE SEQUENCE IF NOT EXISTS hub_identity_changes;

CREATE OR REPLACE FUNCTION hub_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('hub_identity_changes');
    RETURN NULL;
END
$$;

CREATE TABLE IF NOT EXISTS hub_users (
    id            bigserial PRIMARY KEY,
    -- `oidc:<issuer>#<sub>` for people, `service:<name>` for service users, `hub:admin` for the
    -- bootstrap administrator.
    subject       text NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('person', 'service', 'admin')),
    name          text NOT NULL,
    email         text,
    -- The identity provider's groups at the last sign-in.
    groups        text[] NOT NULL DEFAULT '{}',
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

CREATE TABLE IF NOT EXISTS hub_roles (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    -- Hub permissions (`modules.read`) and module permissions (`<module>:<permission>`,
    -- `<module>:*`); `*` is every permission.
    permissions text[] NOT NULL DEFAULT '{}',
    builtin     boolean NOT NULL DEFAULT false
);

INSERT INTO hub_roles (name, description, permissions, builtin) VALUES
    ('admin', 'Everything, every module''s permissions included', '{*}', true),
    ('operator', 'Runs the modules: list, enable, disable, reload; reads the audit log',
        '{modules.read,modules.manage,audit.read}', true),
    ('viewer', 'Sees the modules and their state', '{modules.read}', true)
ON CONFLICT (name) DO NOTHING;

CREATE TABLE IF NOT EXISTS hub_user_roles (
    user_id bigint NOT NULL REFERENCES hub_users (id) ON DELETE CASCADE,
    role    text NOT NULL REFERENCES hub_roles (name) ON DELETE CASCADE ON UPDATE CASCADE,
    PRIMARY KEY (user_id, role)
);

INSERT INTO hub_users (subject, kind, name) VALUES ('hub:admin', 'admin', 'admin')
ON CONFLICT (subject) DO NOTHING;
INSERT INTO hub_user_roles (user_id, role)
SELECT id, 'admin' FROM hub_users WHERE subject = 'hub:admin'
ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS hub_tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES hub_users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    hash         bytea NOT NULL UNIQUE,
    -- What the token may do: a subset of its user's permissions (both are checked on use).
    permissions  text[] NOT NULL,
    created_by   bigint REFERENCES hub_users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE IF NOT EXISTS hub_sessions (
    -- SHA-256 of the cookie's value.
    hash         bytea PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES hub_users (id) ON DELETE CASCADE,
    -- A session opened with an API token carries that token's permissions.
    token_id     bigint REFERENCES hub_tokens (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Sign-ins on their way through the identity provider, by `state`: used once.
CREATE TABLE IF NOT EXISTS hub_logins (
    state         text PRIMARY KEY,
    nonce         text NOT NULL,
    pkce_verifier text NOT NULL,
    next          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS hub_audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    -- `user:<id>`, `token:<id>`, `admin`, `watcher`, `hub`, `anonymous`.
    actor    text NOT NULL,
    actor_name text,
    address  text,
    action   text NOT NULL,
    module   text,
    target   text,
    outcome  text NOT NULL,
    details  jsonb
);
CREATE INDEX IF NOT EXISTS hub_audit_at ON hub_audit (at);
CREATE INDEX IF NOT EXISTS hub_audit_actor ON hub_audit (actor, at);
CREATE INDEX IF NOT EXISTS hub_audit_module ON hub_audit (module, at);

CREATE OR REPLACE TRIGGER hub_users_changed AFTER INSERT OR UPDATE OR DELETE ON hub_users
    FOR EACH STATEMENT EXECUTE FUNCTION hub_identity_changed();
CREATE OR REPLACE TRIGGER hub_roles_changed AFTER INSERT OR UPDATE OR DELETE ON hub_roles
    FOR EACH STATEMENT EXECUTE FUNCTION hub_identity_changed();
CREATE OR REPLACE TRIGGER hub_user_roles_changed AFTER INSERT OR UPDATE OR DELETE ON hub_user_roles
    FOR EACH STATEMENT EXECUTE FUNCTION hub_identity_changed();
-- Not on last_used_at: hubs write it in batches, and it changes no one's rights.
CREATE OR REPLACE TRIGGER hub_tokens_changed AFTER INSERT OR DELETE OR UPDATE OF revoked_at, expires_at, permissions, user_id
    ON hub_tokens FOR EACH STATEMENT EXECUTE FUNCTION hub_identity_changed();
CREATE OR REPLACE TRIGGER hub_sessions_changed AFTER INSERT OR DELETE OR UPDATE OF expires_at, user_id, token_id
    ON hub_sessions FOR EACH STATEMENT EXECUTE FUNCTION hub_identity_changed();

-- Migration 001 of tmplmod: its items. Every table, index and type a module creates must start
-- with its table prefix (tmplmod_); the hub refuses the migration otherwise.
CREATE TABLE tmplmod_items (
    id          serial      PRIMARY KEY,
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '',
    done        boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The customer register. Every object starts with the module's prefix, customers_.
CREATE TABLE customers_customers (
    id         serial      PRIMARY KEY,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email      text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX customers_customers_name ON customers_customers (lower(name));

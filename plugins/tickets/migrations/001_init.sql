-- Support tickets. A ticket belongs to a customer of the customers module (it needs customers
-- ^0.1: the hub starts customers first and keeps tickets stopped while customers is not there).
CREATE TABLE tickets_tickets (
    id          serial      PRIMARY KEY,
    customer_id integer     NOT NULL,
    subject     text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tickets_tickets_customer ON tickets_tickets (customer_id);

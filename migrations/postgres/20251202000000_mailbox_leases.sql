-- Several instances on one (PostgreSQL) database share the mailboxes: each
-- mailbox is read by the instance holding its lease, renewed while it reads;
-- a dead instance's mailboxes are taken over when their leases run out.
CREATE TABLE instances (
    name    TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

CREATE TABLE mailbox_leases (
    mailbox     TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);

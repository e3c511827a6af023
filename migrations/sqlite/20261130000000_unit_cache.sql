-- A counter bumped by every change to stored submissions other than a new
-- one (reprocess, assign): what an instance kept of a unit's mails is read
-- again when it moved (src/store/units.rs).
CREATE TABLE store_revision (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO store_revision (id, n) VALUES (1, 0);

-- A unit's submissions to a deadline in arrival order: the newest one a
-- new mail supersedes is found without reading the others.
CREATE INDEX submissions_unit_arrival
    ON submissions (campaign, deadline, org_id, arrived_at, id);

-- The hourly cap on acks counts those queued since an hour ago.
CREATE INDEX outbox_kind_created ON outbox (kind, created_at);

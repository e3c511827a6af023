-- How many submissions each unit has for a deadline, and the highest id:
-- the stamp that tells whether the unit's kept mails are still current
-- (src/store/units.rs). Counting them at every ack read every submission
-- of the unit; kept here by triggers, so no code path can forget it.
CREATE TABLE unit_tallies (
    campaign TEXT NOT NULL,
    deadline TEXT NOT NULL,
    org_id   TEXT NOT NULL,
    n        INTEGER NOT NULL,
    max_id   INTEGER NOT NULL,
    PRIMARY KEY (campaign, deadline, org_id)
);

INSERT INTO unit_tallies (campaign, deadline, org_id, n, max_id)
SELECT campaign, deadline, org_id, COUNT(*), MAX(id) FROM submissions
WHERE campaign IS NOT NULL AND deadline IS NOT NULL AND org_id IS NOT NULL
GROUP BY campaign, deadline, org_id;

CREATE TRIGGER unit_tallies_insert AFTER INSERT ON submissions
WHEN NEW.campaign IS NOT NULL AND NEW.deadline IS NOT NULL AND NEW.org_id IS NOT NULL
BEGIN
    INSERT INTO unit_tallies (campaign, deadline, org_id, n, max_id)
    VALUES (NEW.campaign, NEW.deadline, NEW.org_id, 1, NEW.id)
    ON CONFLICT (campaign, deadline, org_id)
    DO UPDATE SET n = n + 1, max_id = MAX(max_id, excluded.max_id);
END;

-- A submission moved to another unit (assign, reprocess), or deleted: the
-- units it left and joined are counted again. Rare, so a recount.
CREATE TRIGGER unit_tallies_update AFTER UPDATE OF org_id, campaign, deadline ON submissions
WHEN OLD.org_id IS NOT NEW.org_id OR OLD.campaign IS NOT NEW.campaign
  OR OLD.deadline IS NOT NEW.deadline
BEGIN
    DELETE FROM unit_tallies
    WHERE (campaign = OLD.campaign AND deadline = OLD.deadline AND org_id = OLD.org_id)
       OR (campaign = NEW.campaign AND deadline = NEW.deadline AND org_id = NEW.org_id);
    INSERT INTO unit_tallies (campaign, deadline, org_id, n, max_id)
    SELECT campaign, deadline, org_id, COUNT(*), MAX(id) FROM submissions
    WHERE (campaign = OLD.campaign AND deadline = OLD.deadline AND org_id = OLD.org_id)
       OR (campaign = NEW.campaign AND deadline = NEW.deadline AND org_id = NEW.org_id)
    GROUP BY campaign, deadline, org_id;
END;

CREATE TRIGGER unit_tallies_delete AFTER DELETE ON submissions
WHEN OLD.campaign IS NOT NULL AND OLD.deadline IS NOT NULL AND OLD.org_id IS NOT NULL
BEGIN
    DELETE FROM unit_tallies
    WHERE campaign = OLD.campaign AND deadline = OLD.deadline AND org_id = OLD.org_id;
    INSERT INTO unit_tallies (campaign, deadline, org_id, n, max_id)
    SELECT campaign, deadline, org_id, COUNT(*), MAX(id) FROM submissions
    WHERE campaign = OLD.campaign AND deadline = OLD.deadline AND org_id = OLD.org_id
    GROUP BY campaign, deadline, org_id;
END;

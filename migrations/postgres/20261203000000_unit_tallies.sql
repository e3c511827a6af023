-- How many submissions each unit has for a deadline, and the highest id:
-- the stamp that tells whether the unit's kept mails are still current
-- (src/store/units.rs). Counting them at every ack read every submission
-- of the unit, and on PostgreSQL each one's heap tuple while the page was
-- not yet all-visible: a unit's k-th mail cost O(k). Kept here by
-- triggers, so no code path can forget it.
CREATE TABLE unit_tallies (
    campaign TEXT NOT NULL,
    deadline TEXT NOT NULL,
    org_id   TEXT NOT NULL,
    n        BIGINT NOT NULL,
    max_id   BIGINT NOT NULL,
    PRIMARY KEY (campaign, deadline, org_id)
);

INSERT INTO unit_tallies (campaign, deadline, org_id, n, max_id)
SELECT campaign, deadline, org_id, COUNT(*), MAX(id) FROM submissions
WHERE campaign IS NOT NULL AND deadline IS NOT NULL AND org_id IS NOT NULL
GROUP BY campaign, deadline, org_id;

-- Counts one unit again. The caller holds the unit's lock.
CREATE FUNCTION unit_tally(c TEXT, d TEXT, o TEXT) RETURNS void LANGUAGE sql AS $$
    DELETE FROM unit_tallies WHERE campaign = c AND deadline = d AND org_id = o;
    INSERT INTO unit_tallies (campaign, deadline, org_id, n, max_id)
    SELECT c, d, o, COUNT(*), MAX(id) FROM submissions
    WHERE campaign = c AND deadline = d AND org_id = o
    HAVING COUNT(*) > 0;
$$;

-- The same lock as the supersede chain's (unit_lock_key in
-- src/store/record.rs): an insert takes it before its row, so a recount
-- never misses a concurrent insert nor is overwritten by one.
CREATE FUNCTION unit_lock(c TEXT, d TEXT, o TEXT) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(
        hashtextextended('supersede' || chr(31) || c || chr(31) || d || chr(31) || o, 0));
$$;

CREATE FUNCTION unit_tallies_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_unit BOOLEAN := false;
    new_unit BOOLEAN := false;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.campaign IS NOT NULL AND NEW.deadline IS NOT NULL AND NEW.org_id IS NOT NULL THEN
            INSERT INTO unit_tallies (campaign, deadline, org_id, n, max_id)
            VALUES (NEW.campaign, NEW.deadline, NEW.org_id, 1, NEW.id)
            ON CONFLICT (campaign, deadline, org_id) DO UPDATE
            SET n = unit_tallies.n + 1, max_id = GREATEST(unit_tallies.max_id, excluded.max_id);
        END IF;
        RETURN NULL;
    END IF;
    -- Moved to another unit (assign, reprocess) or deleted: rare, so the
    -- units it left and joined are counted again, locked in one order.
    old_unit := OLD.campaign IS NOT NULL AND OLD.deadline IS NOT NULL AND OLD.org_id IS NOT NULL;
    IF TG_OP = 'UPDATE' THEN
        new_unit := NEW.campaign IS NOT NULL AND NEW.deadline IS NOT NULL
            AND NEW.org_id IS NOT NULL;
    END IF;
    IF old_unit AND new_unit
       AND (NEW.campaign, NEW.deadline, NEW.org_id) < (OLD.campaign, OLD.deadline, OLD.org_id) THEN
        PERFORM unit_lock(NEW.campaign, NEW.deadline, NEW.org_id);
    END IF;
    IF old_unit THEN
        PERFORM unit_lock(OLD.campaign, OLD.deadline, OLD.org_id);
    END IF;
    IF new_unit THEN
        PERFORM unit_lock(NEW.campaign, NEW.deadline, NEW.org_id);
    END IF;
    IF old_unit THEN
        PERFORM unit_tally(OLD.campaign, OLD.deadline, OLD.org_id);
    END IF;
    IF new_unit THEN
        PERFORM unit_tally(NEW.campaign, NEW.deadline, NEW.org_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER unit_tallies_insert AFTER INSERT ON submissions
FOR EACH ROW EXECUTE FUNCTION unit_tallies_track();
CREATE TRIGGER unit_tallies_update AFTER UPDATE OF org_id, campaign, deadline ON submissions
FOR EACH ROW
WHEN (OLD.org_id IS DISTINCT FROM NEW.org_id OR OLD.campaign IS DISTINCT FROM NEW.campaign
      OR OLD.deadline IS DISTINCT FROM NEW.deadline)
EXECUTE FUNCTION unit_tallies_track();
CREATE TRIGGER unit_tallies_delete AFTER DELETE ON submissions
FOR EACH ROW EXECUTE FUNCTION unit_tallies_track();

-- One row that Store::sync changes: the synced commit that puts deferred
-- commits on disk must write something (src/store/mod.rs).
CREATE TABLE sync_point (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO sync_point (id, n) VALUES (1, 0);

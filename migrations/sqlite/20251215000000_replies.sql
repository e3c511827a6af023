-- Coordinators act by replying to the digest. Keep the logical schema
-- identical to migrations/postgres.

-- The answer to a coordinator's command reply is a fourth kind of outgoing
-- mail. SQLite cannot change a CHECK constraint in place: the table is
-- rebuilt with the same columns, ids and indexes (nothing references it).
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('ack', 'reminder', 'digest', 'reply')),
    message_id      TEXT NOT NULL UNIQUE,
    to_addrs        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    envelope_from   TEXT NOT NULL,
    raw             BLOB NOT NULL,
    related_message INTEGER REFERENCES messages (id),
    dedupe_key      TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
INSERT INTO outbox_new (id, kind, message_id, to_addrs, subject, envelope_from, raw,
    related_message, dedupe_key, status, attempts, next_attempt_at, lease_owner,
    lease_until, last_error, created_at, sent_at)
SELECT id, kind, message_id, to_addrs, subject, envelope_from, raw,
    related_message, dedupe_key, status, attempts, next_attempt_at, lease_owner,
    lease_until, last_error, created_at, sent_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_lease ON outbox (status, lease_until);
CREATE INDEX outbox_rate ON outbox (kind, to_addrs, created_at);
CREATE INDEX outbox_related ON outbox (related_message);

-- Every digest as it was enqueued: its Message-ID, when, and what it said
-- about each unit (JSON), so the next one can say what changed.
CREATE TABLE digests (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL UNIQUE,
    made_at     INTEGER NOT NULL,
    snapshot    TEXT NOT NULL
);
CREATE INDEX digests_made ON digests (made_at);

-- Every coordinator command, by mail or on the command line: who, when,
-- which mail carried it (and which of its commands), what it asked and what
-- was done or why not. A mail's command is done at most once.
CREATE TABLE command_log (
    id       INTEGER PRIMARY KEY,
    done_at  INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    via      TEXT NOT NULL CHECK (via IN ('mail', 'cli')),
    mail_id  INTEGER REFERENCES messages (id),
    seq      INTEGER,
    line     TEXT NOT NULL,
    verb     TEXT NOT NULL,
    target   TEXT,
    ok       SMALLINT NOT NULL,
    said     TEXT NOT NULL
);
CREATE UNIQUE INDEX command_log_mail ON command_log (mail_id, seq);
CREATE INDEX command_log_done ON command_log (done_at);

-- Failed sends a coordinator no longer wants listed (忽略 #S3).
CREATE TABLE dismissed_sends (
    outbox_id    INTEGER PRIMARY KEY REFERENCES outbox (id),
    dismissed_by TEXT NOT NULL,
    dismissed_at INTEGER NOT NULL
);

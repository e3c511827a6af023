-- baosong store, SQLite flavour. Keep the logical schema identical to
-- migrations/postgres: one set of queries runs on both through sqlx Any.
-- Times are unix seconds (INTEGER); booleans are SMALLINT 0/1.

-- Where the IMAP poller stands in each mailbox.
CREATE TABLE mailbox_state (
    mailbox     TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    sha256         TEXT NOT NULL UNIQUE,
    size           INTEGER NOT NULL,
    -- Relative to the archive directory: ab/cd/<sha256>.eml
    archive_path   TEXT NOT NULL,
    -- JSON of the origin's identity; re-reading the same origin is a duplicate.
    origin_key     TEXT NOT NULL UNIQUE,
    origin_kind    TEXT NOT NULL CHECK (origin_kind IN ('imap', 'maildir', 'file')),
    mailbox        TEXT,
    uidvalidity    INTEGER,
    uid            INTEGER,
    maildir_key    TEXT,
    file_path      TEXT,
    file_index     INTEGER,
    header_message_id TEXT,
    from_addr      TEXT,
    from_name      TEXT,
    subject        TEXT,
    -- The sender's Date header, RFC 3339 with its own offset.
    date_header    TEXT,
    -- When the source says the message reached the mailbox (INTERNALDATE).
    received_at    INTEGER,
    -- What lateness was judged on (received_at, else Received, else Date).
    arrived_at     INTEGER,
    auto_generated TEXT,
    parse_status   TEXT NOT NULL CHECK (parse_status IN ('ok', 'problems')),
    ack_reason     TEXT NOT NULL,
    body_excerpt   TEXT NOT NULL,
    stored_at      INTEGER NOT NULL
);
CREATE INDEX messages_from ON messages (from_addr);

CREATE TABLE submissions (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL UNIQUE REFERENCES messages (id),
    org_id      TEXT,
    org_name    TEXT,
    matched_by  TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    campaign    TEXT,
    deadline    TEXT,
    -- Ordering key among a unit's submissions: arrived_at, else stored_at.
    arrived_at  INTEGER NOT NULL,
    late        SMALLINT,
    supersedes  INTEGER REFERENCES submissions (id),
    state       TEXT NOT NULL CHECK (state IN ('current', 'superseded'))
);
CREATE INDEX submissions_deadline ON submissions (campaign, deadline, org_id);
CREATE INDEX submissions_org ON submissions (org_id);

CREATE TABLE documents (
    id              INTEGER PRIMARY KEY,
    submission_id   INTEGER NOT NULL REFERENCES submissions (id),
    seq             INTEGER NOT NULL,
    filename        TEXT NOT NULL,
    path            TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    form            TEXT NOT NULL,
    sealed          SMALLINT,
    seal_confidence REAL,
    form_id         TEXT,
    form_name       TEXT
);
CREATE INDEX documents_submission ON documents (submission_id);
CREATE INDEX documents_form ON documents (form_id);

-- One value of a form: row_index is NULL for a `fields` layout.
CREATE TABLE records (
    id          INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents (id),
    row_index   INTEGER,
    key         TEXT NOT NULL,
    value_num   REAL,
    value_text  TEXT,
    original    TEXT NOT NULL
);
CREATE INDEX records_document ON records (document_id);

CREATE TABLE problems (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id),
    document_id INTEGER REFERENCES documents (id),
    code        TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX problems_message ON problems (message_id);
CREATE INDEX problems_document ON problems (document_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('ack', 'reminder', 'digest')),
    -- Fixed at enqueue, so a retry after a crash sends the same Message-ID.
    message_id      TEXT NOT NULL UNIQUE,
    -- Comma-separated, lower case.
    to_addrs        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    envelope_from   TEXT NOT NULL,
    -- The whole message as composed at enqueue (headers, Date, Message-ID
    -- included): a retry sends exactly these bytes.
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
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_lease ON outbox (status, lease_until);
CREATE INDEX outbox_rate ON outbox (kind, to_addrs, created_at);
CREATE INDEX outbox_related ON outbox (related_message);

CREATE TABLE assignments (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id),
    org_id      TEXT NOT NULL,
    assigned_by TEXT NOT NULL,
    assigned_at INTEGER NOT NULL
);
CREATE INDEX assignments_message ON assignments (message_id);

CREATE TABLE learned_addresses (
    address      TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    learned_from INTEGER REFERENCES messages (id),
    learned_at   INTEGER NOT NULL
);

CREATE TABLE reminder_pauses (
    org_id    TEXT PRIMARY KEY,
    paused_at INTEGER NOT NULL
);

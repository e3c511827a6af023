-- Copies of one mail that reached two of a campaign's mailboxes (To one,
-- Cc the other): same Message-ID, sender and attachments, different
-- delivery headers. Each copy is kept; only the first is a submission.
ALTER TABLE messages ADD COLUMN content_key TEXT;
ALTER TABLE messages ADD COLUMN copy_of BIGINT REFERENCES messages (id);
-- One original per content key, even with two instances recording at once.
CREATE UNIQUE INDEX messages_content_original ON messages (content_key)
    WHERE copy_of IS NULL AND content_key IS NOT NULL;

-- Why a person must look at a message (unknown sender, ack held back,
-- unreadable, could not be processed); cleared when someone has.
ALTER TABLE messages ADD COLUMN attention TEXT;
ALTER TABLE messages ADD COLUMN attention_cleared_at BIGINT;
-- The ack was held back (unknown sender, failed DMARC): it goes out when a
-- coordinator assigns the message.
ALTER TABLE messages ADD COLUMN ack_held SMALLINT NOT NULL DEFAULT 0;
CREATE INDEX messages_attention ON messages (attention_cleared_at)
    WHERE attention IS NOT NULL;

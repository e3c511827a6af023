-- Whether anyone still supersedes a submission, looked up when a mail
-- older than stored ones takes a later mail's pointer (src/store/record.rs).
CREATE INDEX submissions_supersedes ON submissions (supersedes);

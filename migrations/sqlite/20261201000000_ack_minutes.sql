-- Acks queued per minute. The global hourly cap adds up at most 61 minutes
-- here instead of counting every ack of the hour in the outbox, which grew
-- with the hour's acks (src/store/outbox.rs). A minute is spread over a few
-- rows (`shard`, the outbox row's id modulo 4) so that instances queuing
-- acks at once seldom wait on one row's lock.
CREATE TABLE ack_minutes (
    minute BIGINT NOT NULL,
    shard  SMALLINT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (minute, shard)
);
INSERT INTO ack_minutes (minute, shard, n)
    SELECT created_at / 60, 0, COUNT(*) FROM outbox
    WHERE kind = 'ack' GROUP BY created_at / 60;

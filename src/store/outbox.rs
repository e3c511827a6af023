//! The outbox: every outgoing mail is a row first. Workers lease rows
//! (`claim_outbox`, or an ack stored already leased by
//! `record_leasing_ack`), send, and mark them; a lease that runs out (a
//! worker died) makes the row claimable again; a sent row is never claimed
//! again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::{
    Backend, Durability, MessageId, OutboxId, Result, Store, StoreError, from_ts, get, opt_from_ts,
    to_u32, ts,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    Ack,
    Reminder,
    Digest,
    /// The answer to a coordinator's command reply.
    Reply,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Reminder => "reminder",
            Self::Digest => "digest",
            Self::Reply => "reply",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "ack" => Ok(Self::Ack),
            "reminder" => Ok(Self::Reminder),
            "digest" => Ok(Self::Digest),
            "reply" => Ok(Self::Reply),
            _ => Err(StoreError::Corrupt(format!("outbox kind `{s}`"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    /// Leased by a worker until `lease_until`.
    Sending,
    Sent,
    /// Given up on; `last_error` says why.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "sending" => Ok(Self::Sending),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            _ => Err(StoreError::Corrupt(format!("outbox status `{s}`"))),
        }
    }
}

/// A mail to send, composed in full: its bytes are fixed when the row is made.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    pub kind: OutboxKind,
    /// The Message-ID header inside `raw`, fixed now so a resend after a crash is the same mail.
    pub message_id: String,
    pub envelope_from: String,
    pub to: Vec<String>,
    /// For people reading `show` and the digest.
    pub subject: String,
    /// The message as it goes on the wire.
    pub raw: Vec<u8>,
    /// The received message this answers. [`Store::record`] fills it in for the ack.
    pub related_message: Option<MessageId>,
    /// At most one row per key, ever: `ack:<message sha256>`,
    /// `reminder:<org>:<campaign>:<deadline>:<offset>`, `digest:<date>`,
    /// `reply:<command mail sha256>`.
    pub dedupe_key: String,
    /// Do not send before this instant; None: as soon as possible.
    pub not_before: Option<DateTime<Utc>>,
}

/// A row taken for sending as it is made ([`Store::record_leasing_ack`]):
/// the daemon hands its acks straight to its own sender, without a claim
/// (one commit and three statements less per ack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// Acks queued in a window ([`Store::ack_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckCounts {
    /// To one address, counted up to a cap.
    pub to_address: u32,
    pub to_anyone: u32,
}

/// An outbox row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: OutboxId,
    pub kind: OutboxKind,
    pub message_id: String,
    pub to: Vec<String>,
    pub subject: String,
    pub envelope_from: String,
    pub raw: Vec<u8>,
    pub related_message: Option<MessageId>,
    pub dedupe_key: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, message_id, to_addrs, subject, envelope_from, raw, \
     related_message, dedupe_key, status, attempts, next_attempt_at, \
     lease_owner, lease_until, last_error, created_at, sent_at";

/// Rows a worker may take: due pending rows, and rows whose lease ran out.
const CLAIM_SQLITE: &str = "UPDATE outbox \
     SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox \
                  WHERE (status = 'pending' AND next_attempt_at <= $3) \
                     OR (status = 'sending' AND lease_until <= $3) \
                  ORDER BY next_attempt_at, id LIMIT $4) \
     RETURNING id";

/// The same on PostgreSQL: SKIP LOCKED lets concurrent workers pass over
/// each other's rows; the outer WHERE re-checks a row another worker took
/// between our snapshot and our lock.
const CLAIM_POSTGRES: &str = "WITH due AS (SELECT id FROM outbox \
                  WHERE (status = 'pending' AND next_attempt_at <= $3) \
                     OR (status = 'sending' AND lease_until <= $3) \
                  ORDER BY next_attempt_at, id LIMIT $4 \
                  FOR UPDATE SKIP LOCKED) \
     UPDATE outbox \
     SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM due) \
       AND ((status = 'pending' AND next_attempt_at <= $3) \
            OR (status = 'sending' AND lease_until <= $3)) \
     RETURNING id";

/// Rows one mark statement takes (2 parameters a row).
const MARKS_PER_UPDATE: usize = 64;

/// The rows of `sent` that `owner` still holds, marked sent each at its own
/// time: one statement, not one a row, as the worker marks up to 16 at once.
async fn mark_sent_in(
    tx: &mut Transaction<'_, Any>,
    sent: &[(OutboxId, DateTime<Utc>)],
    owner: &str,
) -> Result<usize> {
    let mut marked = 0;
    for chunk in sent.chunks(MARKS_PER_UPDATE) {
        let mut times = String::new();
        let mut ids = String::new();
        for i in 0..chunk.len() {
            let p = 2 + i * 2;
            times.push_str(&format!(" WHEN ${} THEN ${}", p, p + 1));
            if i > 0 {
                ids.push_str(", ");
            }
            ids.push_str(&format!("${p}"));
        }
        // Only placeholders are formatted in; every value is bound.
        let sql = format!(
            "UPDATE outbox SET status = 'sent', sent_at = CASE id{times} END, \
             lease_owner = NULL, lease_until = NULL, last_error = NULL \
             WHERE id IN ({ids}) AND lease_owner = $1 AND status = 'sending'"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner);
        for (id, at) in chunk {
            query = query.bind(id.0).bind(ts(*at));
        }
        marked += query.execute(&mut **tx).await?.rows_affected() as usize;
    }
    Ok(marked)
}

impl Store {
    /// Adds a mail to the outbox. `None` when a row with the same
    /// `dedupe_key` exists: that mail is (being) sent already.
    pub async fn enqueue(&self, mail: NewOutbox, now: DateTime<Utc>) -> Result<Option<OutboxId>> {
        let mut tx = self.write_conn(Durability::Synced).await?.begin().await?;
        let id = insert(&mut tx, &mail, None, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Leases up to `limit` due rows to `owner` until `now + lease`; each
    /// row goes to one worker only.
    ///
    /// Committed [`Durability::Deferred`]: every other writer sees the
    /// lease at once, and a claim lost to a power cut changes nothing a
    /// lost mark of the send would not (the row is sent again after the
    /// restart either way). Synced, each claim was a WAL fsync on the one
    /// writer connection, and the commits of new mail waited behind it
    /// (about 200 for 1000 mails).
    pub async fn claim_outbox(
        &self,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxRow>> {
        let mut tx = self.write_conn(Durability::Deferred).await?.begin().await?;
        let rows = self.claim_in(&mut tx, owner, lease, now, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// [`Self::mark_sent`] and [`Self::claim_outbox`] in one transaction:
    /// the outbox worker's step after the last mail of a batch, one commit
    /// where there were two; both as durable as either alone.
    pub async fn mark_sent_and_claim(
        &self,
        sent: &[(OutboxId, DateTime<Utc>)],
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<(usize, Vec<OutboxRow>)> {
        let mut tx = self.write_conn(Durability::Deferred).await?.begin().await?;
        let marked = mark_sent_in(&mut tx, sent, owner).await?;
        let rows = self.claim_in(&mut tx, owner, lease, now, limit).await?;
        tx.commit().await?;
        Ok((marked, rows))
    }

    async fn claim_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxRow>> {
        let lease_secs = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
        let sql = match self.backend {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let mut ids: Vec<i64> = sqlx::query_scalar(sql)
            .bind(owner)
            .bind(ts(now).saturating_add(lease_secs))
            .bind(ts(now))
            .bind(i64::from(limit))
            .fetch_all(&mut **tx)
            .await?;
        ids.sort_unstable();
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            rows.push(load(tx, OutboxId(id)).await?);
        }
        Ok(rows)
    }

    /// Extends `owner`'s lease on a row it is sending. False when it no
    /// longer holds it.
    pub async fn renew_lease(
        &self,
        id: OutboxId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET lease_until = $3 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'sending'",
        )
        .bind(id.0)
        .bind(owner)
        .bind(ts(until))
        .execute(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back every row `owner` was sending when it stopped (a restart
    /// after `kill -9`): they are due again at once, not after the lease.
    /// The attempt they were in does not count.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', lease_owner = NULL, lease_until = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE lease_owner = $1 AND status = 'sending'",
        )
        .bind(owner)
        .execute(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(done.rows_affected())
    }

    /// Records successful sends, each with its time, in one transaction:
    /// how many `owner` still held the lease on.
    ///
    /// Deferred: on disk with the next synced commit. Power lost before
    /// that sends the mail once more, as a crash between the send and this
    /// mark always could; it saves a WAL fsync per mail sent.
    pub async fn mark_sent(
        &self,
        sent: &[(OutboxId, DateTime<Utc>)],
        owner: &str,
    ) -> Result<usize> {
        let mut tx = self.write_conn(Durability::Deferred).await?.begin().await?;
        let marked = mark_sent_in(&mut tx, sent, owner).await?;
        tx.commit().await?;
        Ok(marked)
    }

    /// Gives the row back to try again at `next_at`. False when `owner` no
    /// longer holds the lease.
    pub async fn mark_retry(
        &self,
        id: OutboxId,
        owner: &str,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $3, last_error = $4, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'sending'",
        )
        .bind(id.0)
        .bind(owner)
        .bind(ts(next_at))
        .bind(error)
        .execute(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up on the row. False when `owner` no longer holds the lease.
    pub async fn mark_failed(&self, id: OutboxId, owner: &str, error: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'failed', last_error = $3, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'sending'",
        )
        .bind(id.0)
        .bind(owner)
        .bind(error)
        .execute(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Acks queued since `since`, whatever became of them, for the rate
    /// limits: to `address`, and to anyone. One query, as the ack of every
    /// mail asks both.
    ///
    /// To `address`: an ack has one recipient, so the address is compared
    /// with the whole `to` list; counting stops at `cap` (the limit), as past
    /// it the answer is the same and a busy hour's acks are not all walked
    /// for every mail.
    ///
    /// To anyone: the whole minutes from `ack_minutes`, the part of the first
    /// minute from the outbox, so the count is exact. Counting them all in
    /// the outbox grew with the hour's acks: 0.54 ms a mail at 14,000.
    pub async fn ack_counts(
        &self,
        address: &str,
        since: DateTime<Utc>,
        cap: u32,
    ) -> Result<AckCounts> {
        let minute = ts(since).div_euclid(60);
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM outbox \
                       WHERE kind = 'ack' AND to_addrs = $1 AND created_at >= $2 LIMIT $3) \
                     AS recent) AS to_address, \
                    COALESCE((SELECT CAST(SUM(n) AS BIGINT) FROM ack_minutes \
                              WHERE minute > $4), 0) \
                    + (SELECT COUNT(*) FROM outbox \
                       WHERE kind = 'ack' AND created_at >= $2 AND created_at < $5) \
                     AS to_anyone",
        )
        .bind(address.trim().to_lowercase())
        .bind(ts(since))
        .bind(i64::from(cap))
        .bind(minute)
        .bind((minute + 1) * 60)
        .fetch_one(&self.pool)
        .await?;
        Ok(AckCounts {
            to_address: to_u32(get(&row, "to_address")?)?,
            to_anyone: to_u32(get(&row, "to_anyone")?)?,
        })
    }

    /// Rows given up on, oldest first.
    pub async fn outbox_failed(&self) -> Result<Vec<OutboxRow>> {
        self.outbox_where_status(OutboxStatus::Failed).await
    }

    /// One row by id.
    pub async fn outbox_row(&self, id: OutboxId) -> Result<OutboxRow> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, id).await
    }

    async fn outbox_where_status(&self, status: OutboxStatus) -> Result<Vec<OutboxRow>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM outbox WHERE status = $1 ORDER BY id")
                .bind(status.as_str())
                .fetch_all(&self.pool)
                .await?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            rows.push(load(&mut conn, OutboxId(id)).await?);
        }
        Ok(rows)
    }
}

/// Inserts a row unless its dedupe key is taken: pending, or with `lease`
/// already being sent (its first attempt).
pub(super) async fn insert(
    tx: &mut Transaction<'_, Any>,
    mail: &NewOutbox,
    lease: Option<&Lease>,
    now: DateTime<Utc>,
) -> Result<Option<OutboxId>> {
    let minute = ts(now).div_euclid(60);
    let ack = mail.kind == OutboxKind::Ack;
    // On PostgreSQL an ack's count for its minute goes in the same
    // statement: one round trip fewer on the path every new mail commits by.
    let postgres = tx.backend_name() == "PostgreSQL";
    let sql = if postgres {
        "WITH o AS (INSERT INTO outbox (kind, message_id, to_addrs, subject, envelope_from, \
             raw, related_message, dedupe_key, status, attempts, next_attempt_at, created_at, \
             lease_owner, lease_until) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
           ON CONFLICT (dedupe_key) DO NOTHING RETURNING id), \
         m AS (INSERT INTO ack_minutes (minute, shard, n) \
           SELECT $15, o.id % $16, 1 FROM o WHERE $17 = 1 \
           ON CONFLICT (minute, shard) DO UPDATE SET n = ack_minutes.n + 1 RETURNING n) \
         SELECT o.id, (SELECT n FROM m) AS n FROM o"
    } else {
        "INSERT INTO outbox (kind, message_id, to_addrs, subject, envelope_from, raw, \
           related_message, dedupe_key, status, attempts, next_attempt_at, created_at, \
           lease_owner, lease_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, NULL AS n"
    };
    let mut query = sqlx::query(sql)
        .bind(mail.kind.as_str())
        .bind(&mail.message_id)
        .bind(stored_to(&mail.to))
        .bind(&mail.subject)
        .bind(&mail.envelope_from)
        .bind(mail.raw.as_slice())
        .bind(mail.related_message.map(|m| m.0))
        .bind(&mail.dedupe_key)
        .bind(match lease {
            Some(_) => OutboxStatus::Sending.as_str(),
            None => OutboxStatus::Pending.as_str(),
        })
        .bind(i64::from(lease.is_some()))
        .bind(ts(mail.not_before.unwrap_or(now)))
        .bind(ts(now))
        .bind(lease.map(|l| l.owner.as_str()))
        .bind(lease.map(|l| ts(l.until)));
    if postgres {
        query = query.bind(minute).bind(ACK_SHARDS).bind(i64::from(ack));
    }
    let row = query
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
                "outbox Message-ID {} is already used",
                mail.message_id
            )),
            _ => StoreError::Database(e),
        })?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = get(&row, "id")?;
    if ack {
        let n: i64 = match get::<Option<i64>>(&row, "n")? {
            Some(n) => n,
            None => {
                sqlx::query_scalar(
                    "INSERT INTO ack_minutes (minute, shard, n) VALUES ($1, $2, 1) \
                     ON CONFLICT (minute, shard) DO UPDATE SET n = ack_minutes.n + 1 RETURNING n",
                )
                .bind(minute)
                .bind(id.rem_euclid(ACK_SHARDS))
                .fetch_one(&mut **tx)
                .await?
            }
        };
        // A minute's first ack (per shard) drops the minutes no hourly
        // count reads any more: the table holds about two hours.
        if n == 1 {
            sqlx::query("DELETE FROM ack_minutes WHERE minute < $1")
                .bind(minute - ACK_MINUTES_KEPT)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(Some(OutboxId(id)))
}

/// Rows each minute of `ack_minutes` is spread over.
const ACK_SHARDS: i64 = 4;

/// Minutes `ack_minutes` keeps: the hourly cap reads 61, the rest is slack
/// for clocks a little apart.
const ACK_MINUTES_KEPT: i64 = 120;

/// Loads one row with its attachments.
pub(super) async fn load(conn: &mut sqlx::AnyConnection, id: OutboxId) -> Result<OutboxRow> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("outbox row {id}")))?;
    from_row(&row)
}

fn from_row(r: &AnyRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: OutboxId(get(r, "id")?),
        kind: OutboxKind::parse(&get::<String>(r, "kind")?)?,
        message_id: get(r, "message_id")?,
        to: read_to(&get::<String>(r, "to_addrs")?),
        subject: get(r, "subject")?,
        envelope_from: get(r, "envelope_from")?,
        raw: get(r, "raw")?,
        related_message: get::<Option<i64>>(r, "related_message")?.map(MessageId),
        dedupe_key: get(r, "dedupe_key")?,
        status: OutboxStatus::parse(&get::<String>(r, "status")?)?,
        attempts: to_u32(get(r, "attempts")?)?,
        next_attempt_at: from_ts(get(r, "next_attempt_at")?)?,
        lease_owner: get(r, "lease_owner")?,
        lease_until: opt_from_ts(get(r, "lease_until")?)?,
        last_error: get(r, "last_error")?,
        created_at: from_ts(get(r, "created_at")?)?,
        sent_at: opt_from_ts(get(r, "sent_at")?)?,
    })
}

/// The `to_addrs` column: the recipients trimmed, lower case, comma-joined.
fn stored_to(to: &[String]) -> String {
    to.iter()
        .map(|a| a.trim().to_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

fn read_to(column: &str) -> Vec<String> {
    column
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The row [`insert`] made with a lease, as [`load`] would read it back.
pub(super) fn leased_row(
    id: OutboxId,
    mail: NewOutbox,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id,
        kind: mail.kind,
        message_id: mail.message_id,
        to: read_to(&stored_to(&mail.to)),
        subject: mail.subject,
        envelope_from: mail.envelope_from,
        raw: mail.raw,
        related_message: mail.related_message,
        dedupe_key: mail.dedupe_key,
        status: OutboxStatus::Sending,
        attempts: 1,
        next_attempt_at: from_ts(ts(mail.not_before.unwrap_or(now)))?,
        lease_owner: Some(lease.owner.clone()),
        lease_until: Some(from_ts(ts(lease.until))?),
        last_error: None,
        created_at: from_ts(ts(now))?,
        sent_at: None,
    })
}

//! What coordinators' commands change and read beyond the message tables:
//! the command log, ignored messages and dismissed sends, the mails of ours
//! a reply may cite, and each digest with what it said (so the next one can
//! say what changed).

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::outbox::{self, NewOutbox};
use super::{
    Durability, MessageId, OutboxId, Result, Store, StoreError, from_ts, get, message_arrived_at,
    opt_from_ts, ts,
};
use crate::mailcmd::Cited;
use crate::types::{CampaignId, DeadlineId, DocForm, DocumentKind, OrgId};

/// How a command reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A coordinator's reply to a digest or an ack.
    Mail,
    /// The command line.
    Cli,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::Cli => "cli",
        }
    }
}

/// One command in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: DateTime<Utc>,
    /// A coordinator's address, or the operator's user name.
    pub actor: String,
    pub via: Via,
    /// The mail that carried it, and which of its commands it was (from 0).
    pub mail: Option<MessageId>,
    pub seq: Option<u32>,
    /// As written.
    pub line: String,
    /// [`crate::mailcmd::Verb::as_str`].
    pub verb: String,
    /// What it acted on: `#42`, a unit as written.
    pub target: Option<String>,
    pub ok: bool,
    /// What was done, or why not, as the coordinator was told.
    pub said: String,
}

/// What marking a message or a send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    Now,
    /// It was marked before.
    Before,
    Missing,
    /// A send that has not failed: there is nothing to dismiss.
    NotFailed,
}

/// A mail of ours that could not be delivered and nobody dismissed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRow {
    pub id: OutboxId,
    pub to: Vec<String>,
    pub subject: String,
    pub error: String,
    pub created_at: DateTime<Utc>,
}

/// A file of a current submission that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRow {
    pub message: MessageId,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub arrived_at: DateTime<Utc>,
    pub filename: String,
    pub problem: String,
}

/// A submission that reached a unit's record since some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRow {
    pub message: MessageId,
    pub org: OrgId,
    pub campaign: CampaignId,
    pub deadline: DeadlineId,
    pub arrived_at: DateTime<Utc>,
    pub late: bool,
    pub files: Vec<(DocumentKind, DocForm)>,
}

/// Submissions of a unit stored, or assigned to one, after `$1`.
const RECEIVED_WHERE: &str = "s.org_id IS NOT NULL AND s.campaign IS NOT NULL \
     AND s.deadline IS NOT NULL AND m.copy_of IS NULL \
     AND (m.stored_at > $1 OR EXISTS (SELECT 1 FROM assignments a \
          WHERE a.message_id = s.message_id AND a.assigned_at > $1))";

impl Store {
    /// Records a command. False when this command of this mail was
    /// recorded before (it was done then).
    pub async fn log_command(&self, e: &LogEntry) -> Result<bool> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO command_log (done_at, actor, via, mail_id, seq, line, verb, target, ok, said) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(ts(e.at))
        .bind(&e.actor)
        .bind(e.via.as_str())
        .bind(e.mail.map(|m| m.0))
        .bind(e.seq.map(i64::from))
        .bind(&e.line)
        .bind(&e.verb)
        .bind(e.target.as_deref())
        .bind(i16::from(e.ok))
        .bind(&e.said)
        .fetch_optional(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(id.is_some())
    }

    /// What was done with command `seq` of `mail`, if it was.
    pub async fn logged_command(&self, mail: MessageId, seq: u32) -> Result<Option<LogEntry>> {
        sqlx::query(
            "SELECT done_at, actor, via, mail_id, seq, line, verb, target, ok, said \
             FROM command_log WHERE mail_id = $1 AND seq = $2",
        )
        .bind(mail.0)
        .bind(i64::from(seq))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(log_from_row)
        .transpose()
    }

    /// The last `limit` commands, newest first.
    pub async fn command_log(&self, limit: u32) -> Result<Vec<LogEntry>> {
        sqlx::query(
            "SELECT done_at, actor, via, mail_id, seq, line, verb, target, ok, said \
             FROM command_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(log_from_row)
        .collect()
    }

    /// A coordinator says a message needs nobody (spam, not a submission):
    /// it leaves 需处理 for good.
    pub async fn ignore_message(&self, id: MessageId, now: DateTime<Utc>) -> Result<Marked> {
        let done = sqlx::query(
            "UPDATE messages SET attention_cleared_at = $2 \
             WHERE id = $1 AND attention_cleared_at IS NULL",
        )
        .bind(id.0)
        .bind(ts(now))
        .execute(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Marked::Now);
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM messages WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(if exists.is_some() {
            Marked::Before
        } else {
            Marked::Missing
        })
    }

    /// A coordinator no longer wants a failed send listed.
    pub async fn dismiss_send(&self, id: OutboxId, by: &str, now: DateTime<Utc>) -> Result<Marked> {
        let mut tx = self.write_conn(Durability::Synced).await?.begin().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let marked = match status.as_deref() {
            None => Marked::Missing,
            Some("failed") => {
                let done = sqlx::query(
                    "INSERT INTO dismissed_sends (outbox_id, dismissed_by, dismissed_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(id.0)
                .bind(by)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    Marked::Now
                } else {
                    Marked::Before
                }
            }
            Some(_) => Marked::NotFailed,
        };
        tx.commit().await?;
        Ok(marked)
    }

    /// Messages recorded with this `ack_reason` (the marker of command mails).
    pub async fn messages_with_ack_reason(&self, reason: &str) -> Result<Vec<MessageId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM messages WHERE ack_reason = $1 ORDER BY id")
                .bind(reason)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    /// Our outgoing mails with these Message-IDs (with or without `<>`).
    pub async fn cited(&self, message_ids: &[String]) -> Result<Vec<Cited>> {
        let mut out = Vec::new();
        for id in message_ids {
            let id = format!("<{}>", id.trim().trim_matches(['<', '>']));
            let row = sqlx::query(
                "SELECT kind, to_addrs, status, sent_at FROM outbox WHERE message_id = $1",
            )
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else { continue };
            let to: String = get(&r, "to_addrs")?;
            let sent = get::<String>(&r, "status")? == "sent";
            out.push(Cited {
                to: to
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                sent_at: opt_from_ts(get(&r, "sent_at")?)?.filter(|_| sent),
                answerable: get::<String>(&r, "kind")? != "reminder",
            });
        }
        Ok(out)
    }

    /// Sends given up on that nobody dismissed, oldest first.
    pub async fn failed_sends(&self) -> Result<Vec<FailedRow>> {
        sqlx::query(
            "SELECT o.id, o.to_addrs, o.subject, o.last_error, o.created_at FROM outbox o \
             WHERE o.status = 'failed' \
               AND NOT EXISTS (SELECT 1 FROM dismissed_sends x WHERE x.outbox_id = o.id) \
             ORDER BY o.id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let to: String = get(r, "to_addrs")?;
            Ok(FailedRow {
                id: OutboxId(get(r, "id")?),
                to: to
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                subject: get(r, "subject")?,
                error: get::<Option<String>>(r, "last_error")?.unwrap_or_default(),
                created_at: from_ts(get(r, "created_at")?)?,
            })
        })
        .collect()
    }

    /// Files with one of the problem `codes` in current submissions of
    /// messages nobody has dealt with, by message.
    pub async fn unreadable_files(&self, codes: &[&str]) -> Result<Vec<UnreadableRow>> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=codes.len()).map(|i| format!("${i}")).collect();
        // Built from placeholders only; the codes are bound.
        let sql = format!(
            "SELECT m.id, m.from_addr, m.subject, m.arrived_at, m.stored_at, d.filename, \
               p.message AS problem \
             FROM problems p JOIN documents d ON d.id = p.document_id \
             JOIN submissions s ON s.id = d.submission_id \
             JOIN messages m ON m.id = s.message_id \
             WHERE p.code IN ({}) AND s.state = 'current' AND m.attention_cleared_at IS NULL \
               AND m.copy_of IS NULL AND m.auto_generated IS NULL \
             ORDER BY m.id, d.seq, p.id",
            marks.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for code in codes {
            query = query.bind(*code);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(UnreadableRow {
                    message: MessageId(get(r, "id")?),
                    from: get(r, "from_addr")?,
                    subject: get(r, "subject")?,
                    arrived_at: message_arrived_at(r)?,
                    filename: get(r, "filename")?,
                    problem: get(r, "problem")?,
                })
            })
            .collect()
    }

    /// Enqueues a digest and keeps what it said, in one transaction. None
    /// when a digest with the same dedupe key exists (nothing is kept then).
    pub async fn enqueue_digest(
        &self,
        mail: NewOutbox,
        snapshot: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxId>> {
        let mut tx = self.write_conn(Durability::Synced).await?.begin().await?;
        let id = outbox::insert(&mut tx, &mail, None, now).await?;
        if id.is_some() {
            sqlx::query("INSERT INTO digests (message_id, made_at, snapshot) VALUES ($1, $2, $3)")
                .bind(&mail.message_id)
                .bind(ts(now))
                .bind(snapshot)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// When the latest digest was made and what it said (JSON).
    pub async fn last_digest(&self) -> Result<Option<(DateTime<Utc>, String)>> {
        let row = sqlx::query(
            "SELECT made_at, snapshot FROM digests ORDER BY made_at DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((from_ts(get(&r, "made_at")?)?, get(&r, "snapshot")?)))
            .transpose()
    }

    /// Submissions that reached a unit's record after `since`: stored then,
    /// or assigned then; oldest first, with what they carried.
    pub async fn received_since(&self, since: DateTime<Utc>) -> Result<Vec<ReceivedRow>> {
        let subs = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT s.id, s.message_id, s.org_id, s.campaign, s.deadline, s.arrived_at, s.late \
             FROM submissions s JOIN messages m ON m.id = s.message_id \
             WHERE {RECEIVED_WHERE} ORDER BY s.arrived_at, s.id"
        )))
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        let docs = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.submission_id, d.kind, d.form FROM documents d \
             JOIN submissions s ON s.id = d.submission_id \
             JOIN messages m ON m.id = s.message_id \
             WHERE {RECEIVED_WHERE} ORDER BY d.submission_id, d.seq"
        )))
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        let mut files: Vec<(i64, DocumentKind, DocForm)> = Vec::with_capacity(docs.len());
        for r in &docs {
            let kind: String = get(r, "kind")?;
            let form: String = get(r, "form")?;
            files.push((
                get(r, "submission_id")?,
                DocumentKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("document kind `{kind}`")))?,
                DocForm::parse(&form)
                    .ok_or_else(|| StoreError::Corrupt(format!("document form `{form}`")))?,
            ));
        }
        subs.iter()
            .map(|r| {
                let id: i64 = get(r, "id")?;
                let text = |c: &str| -> Result<String> {
                    get::<Option<String>>(r, c)?
                        .ok_or_else(|| StoreError::Corrupt(format!("submission {id} without {c}")))
                };
                Ok(ReceivedRow {
                    message: MessageId(get(r, "message_id")?),
                    org: OrgId(text("org_id")?),
                    campaign: CampaignId(text("campaign")?),
                    deadline: DeadlineId(text("deadline")?),
                    arrived_at: from_ts(get(r, "arrived_at")?)?,
                    late: get::<Option<i16>>(r, "late")? == Some(1),
                    files: files
                        .iter()
                        .filter(|(s, _, _)| *s == id)
                        .map(|(_, k, f)| (*k, *f))
                        .collect(),
                })
            })
            .collect()
    }
}

fn log_from_row(r: &AnyRow) -> Result<LogEntry> {
    let via: String = get(r, "via")?;
    Ok(LogEntry {
        at: from_ts(get(r, "done_at")?)?,
        actor: get(r, "actor")?,
        via: match via.as_str() {
            "mail" => Via::Mail,
            "cli" => Via::Cli,
            v => return Err(StoreError::Corrupt(format!("command via `{v}`"))),
        },
        mail: get::<Option<i64>>(r, "mail_id")?.map(MessageId),
        seq: get::<Option<i64>>(r, "seq")?
            .map(super::to_u32)
            .transpose()?,
        line: get(r, "line")?,
        verb: get(r, "verb")?,
        target: get(r, "target")?,
        ok: get::<i16>(r, "ok")? != 0,
        said: get(r, "said")?,
    })
}

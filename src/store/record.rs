//! Recording a message and what the pipeline concluded about it, in one
//! transaction; and replacing that conclusion when a message is reprocessed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::{Any, Transaction};

use super::archive::Archive;
use super::outbox::{self, Lease, NewOutbox, OutboxRow};
use super::{
    Backend, Durability, MessageId, Result, Store, StoreError, SubmissionId, advance_mailbox,
    bool_val, bump_revision, get, ts,
};
use crate::model::FieldValue;
use crate::model::Problem;
use crate::model::{Analysis, Document};
use crate::model::{Origin, RawMessage};
use crate::status::Sent;
use crate::types::{CampaignId, DeadlineId, OrgId, Sha256};

/// What [`Store::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New {
        message_id: MessageId,
        submission_id: SubmissionId,
    },
    /// The same bytes or the same origin was recorded before; nothing changed.
    Duplicate { message_id: MessageId },
    /// Another copy of a mail already recorded (the same mail delivered to
    /// two of a campaign's mailboxes): kept, but no second submission or ack.
    Copy {
        message_id: MessageId,
        original: MessageId,
    },
}

/// A message's ack as decided while its rows are written
/// ([`Store::record_leasing_ack`]).
#[derive(Debug, Default)]
pub struct AckVerdict {
    /// The ack to queue, if one goes.
    pub row: Option<NewOutbox>,
    /// Why none goes, where that was decided with the ack (a rate limit)
    /// and so is not the analysis's `ack.reason`: recorded instead of it.
    pub reason: Option<String>,
}

impl From<Option<NewOutbox>> for AckVerdict {
    /// The ack decided before: this row, or none for the analysis's reason.
    fn from(row: Option<NewOutbox>) -> Self {
        Self { row, reason: None }
    }
}

/// A message's rows written, its transaction still open.
enum Written {
    /// Nothing new: the row says what it was.
    Known(Recorded),
    New {
        message_id: MessageId,
        submission_id: SubmissionId,
        order_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
}

impl Recorded {
    pub fn message_id(&self) -> MessageId {
        match *self {
            Self::New { message_id, .. }
            | Self::Duplicate { message_id }
            | Self::Copy { message_id, .. } => message_id,
        }
    }
}

/// The columns that say where a message came from.
struct OriginCols {
    key: String,
    kind: &'static str,
    mailbox: Option<String>,
    uidvalidity: Option<i64>,
    uid: Option<i64>,
    maildir_key: Option<String>,
    file_path: Option<String>,
    file_index: Option<i64>,
}

impl OriginCols {
    fn of(origin: &Origin) -> Self {
        let none = Self {
            key: String::new(),
            kind: "",
            mailbox: None,
            uidvalidity: None,
            uid: None,
            maildir_key: None,
            file_path: None,
            file_index: None,
        };
        // The key is JSON so no mailbox name or path can make two origins collide.
        match origin {
            Origin::Imap {
                mailbox,
                uidvalidity,
                uid,
            } => Self {
                key: serde_json::json!(["imap", mailbox, uidvalidity, uid.0]).to_string(),
                kind: "imap",
                mailbox: Some(mailbox.to_string()),
                uidvalidity: Some(i64::from(*uidvalidity)),
                uid: Some(i64::from(uid.0)),
                ..none
            },
            Origin::Maildir { mailbox, key } => Self {
                key: serde_json::json!(["maildir", mailbox, key]).to_string(),
                kind: "maildir",
                mailbox: Some(mailbox.to_string()),
                maildir_key: Some(key.clone()),
                ..none
            },
            Origin::File { path, index } => {
                let path = path.to_string_lossy().into_owned();
                Self {
                    key: serde_json::json!(["file", path, index]).to_string(),
                    kind: "file",
                    file_path: Some(path),
                    file_index: index.map(|i| i as i64),
                    ..none
                }
            }
        }
    }
}

impl Store {
    /// Records a message whose bytes are already in the archive, with its
    /// analysis and (if given) its acknowledgement, in one transaction.
    ///
    /// The same bytes or the same origin again is a [`Recorded::Duplicate`]
    /// and changes nothing, except that an IMAP mailbox's `last_uid` moves
    /// past it so the poller does not fetch it again. Another copy of a mail
    /// recorded before (same [`Analysis::content_key`]) is kept as a
    /// [`Recorded::Copy`], without a submission or an ack.
    pub async fn record(
        &self,
        raw: &RawMessage,
        analysis: &Analysis,
        ack: Option<NewOutbox>,
        now: DateTime<Utc>,
    ) -> Result<Recorded> {
        Ok(self
            .record_leasing_ack(
                raw,
                analysis,
                std::future::ready(Ok::<_, StoreError>(AckVerdict::from(ack))),
                None,
                Durability::Synced,
                now,
            )
            .await?
            .0)
    }

    /// [`Self::record`], with the ack stored as being sent under `lease`
    /// (when given) and returned as that row, for the caller to send, and
    /// committed as `durability` says.
    ///
    /// The ack is decided by `ack` while the message's rows are written:
    /// its reads (the rate limits, the unit's earlier mail) see what was
    /// committed before this message, which is what they must see, and the
    /// commit path, one message at a time, no longer waits for them before
    /// it writes (bench/RESULTS.md, 2026-12-02, fourth stop).
    pub async fn record_leasing_ack<E, F>(
        &self,
        raw: &RawMessage,
        analysis: &Analysis,
        ack: F,
        lease: Option<&Lease>,
        durability: Durability,
        now: DateTime<Utc>,
    ) -> std::result::Result<(Recorded, Option<OutboxRow>), E>
    where
        F: std::future::Future<Output = std::result::Result<AckVerdict, E>>,
        E: From<StoreError>,
    {
        let (written, decided) = tokio::join!(self.write_rows(raw, analysis, durability, now), ack);
        let decided = decided?;
        let (tx, written) = written?;
        Ok(self
            .finish_record(tx, written, decided, analysis, lease)
            .await?)
    }

    /// Everything of a message but its ack, in a transaction left open.
    async fn write_rows(
        &self,
        raw: &RawMessage,
        analysis: &Analysis,
        durability: Durability,
        now: DateTime<Utc>,
    ) -> Result<(Transaction<'static, Any>, Written)> {
        let mut tx = self.write_conn(durability).await?.begin().await?;
        // The archive is keyed by these bytes, so the row must be too.
        let sha = raw.sha256().clone();
        let origin = OriginCols::of(&raw.origin);

        // On PostgreSQL the message's INSERT moves the mailbox on itself.
        let advance = match &raw.origin {
            Origin::Imap {
                mailbox,
                uidvalidity,
                uid,
            } if self.backend == Backend::Sqlite => {
                advance_mailbox(&mut tx, mailbox, *uidvalidity, *uid, now).await?;
                false
            }
            Origin::Imap { .. } => true,
            _ => false,
        };

        let mut inserted =
            insert_message(&mut tx, raw, &sha, &origin, analysis, advance, now).await?;
        let mut existing = None;
        if inserted.is_none() {
            existing = duplicate_of(&mut tx, &sha, &origin.key).await?;
            if existing.is_none() && analysis.content_key.is_some() {
                // Neither these bytes nor this origin: another instance
                // recorded the first copy meanwhile, and this one is a copy of it.
                inserted =
                    insert_message(&mut tx, raw, &sha, &origin, analysis, false, now).await?;
            }
        }
        let Some((message_id, copy_of)) = inserted else {
            // Asked again only after a retry: its conflict may be newer.
            let existing = match existing {
                Some(id) => Some(id),
                None => duplicate_of(&mut tx, &sha, &origin.key).await?,
            }
            .ok_or_else(|| {
                StoreError::Conflict(format!("message {sha} was neither new nor a duplicate"))
            })?;
            return Ok((
                tx,
                Written::Known(Recorded::Duplicate {
                    message_id: existing,
                }),
            ));
        };
        if let Some(original) = copy_of {
            return Ok((
                tx,
                Written::Known(Recorded::Copy {
                    message_id,
                    original,
                }),
            ));
        }

        let order_at = analysis.arrived_at.or(raw.received_at).unwrap_or(now);
        let submission_id = insert_submission(&mut tx, message_id, analysis, order_at).await?;

        insert_contents(&mut tx, message_id, submission_id, analysis).await?;
        supersede_with_new(
            &mut tx,
            submission_id,
            analysis.organisation.id.as_ref(),
            analysis.campaign.as_ref(),
            analysis.deadline.as_ref(),
        )
        .await?;
        Ok((
            tx,
            Written::New {
                message_id,
                submission_id,
                order_at,
                now,
            },
        ))
    }

    /// The ack's row (and its reason, where the decision changed it) and
    /// the commit.
    async fn finish_record(
        &self,
        mut tx: Transaction<'static, Any>,
        written: Written,
        decided: AckVerdict,
        analysis: &Analysis,
        lease: Option<&Lease>,
    ) -> Result<(Recorded, Option<OutboxRow>)> {
        let (message_id, submission_id, order_at, now) = match written {
            Written::Known(recorded) => {
                tx.commit().await?;
                return Ok((recorded, None));
            }
            Written::New {
                message_id,
                submission_id,
                order_at,
                now,
            } => (message_id, submission_id, order_at, now),
        };
        if let Some(reason) = &decided.reason {
            sqlx::query("UPDATE messages SET ack_reason = $1 WHERE id = $2")
                .bind(reason)
                .bind(message_id.0)
                .execute(&mut *tx)
                .await?;
        }
        let mut leased = None;
        if let Some(mut ack) = decided.row {
            ack.related_message = Some(message_id);
            // The message is new, so its ack key cannot be taken: if it is, the
            // store is inconsistent and nothing of this message is kept.
            let Some(id) = outbox::insert(&mut tx, &ack, lease, now).await? else {
                return Err(StoreError::Conflict(format!(
                    "outbox key {} already used",
                    ack.dedupe_key
                )));
            };
            if let Some(lease) = lease {
                leased = Some(outbox::leased_row(id, ack, lease, now)?);
            }
        }

        tx.commit().await?;
        if let (Some(org), Some(campaign), Some(deadline)) = (
            analysis.organisation.id.as_ref(),
            analysis.campaign.as_ref(),
            analysis.deadline.as_ref(),
        ) {
            self.units_recorded(
                (campaign.clone(), deadline.clone(), org.clone()),
                submission_id,
                as_stored(analysis, order_at),
            );
        }
        Ok((
            Recorded::New {
                message_id,
                submission_id,
            },
            leased,
        ))
    }

    /// Replaces what was concluded about a stored message (`baosong
    /// reprocess`): submission, documents, records and problems, in one
    /// transaction. The submission keeps its id; a coordinator's assignment
    /// wins over the new match. Never enqueues mail.
    pub async fn update_analysis(
        &self,
        message_id: MessageId,
        analysis: &Analysis,
    ) -> Result<SubmissionId> {
        let mut tx = self.write_conn(Durability::Synced).await?.begin().await?;
        let old = sqlx::query(
            "SELECT s.id, s.org_id, s.campaign, s.deadline, m.received_at, m.stored_at \
             FROM submissions s JOIN messages m ON m.id = s.message_id WHERE s.message_id = $1",
        )
        .bind(message_id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("message {message_id}")))?;
        let submission_id = SubmissionId(get(&old, "id")?);
        let old_org: Option<String> = get(&old, "org_id")?;
        let old_campaign: Option<String> = get(&old, "campaign")?;
        let old_deadline: Option<String> = get(&old, "deadline")?;
        let received_at: Option<i64> = get(&old, "received_at")?;
        let stored_at: i64 = get(&old, "stored_at")?;

        let assigned: Option<String> = sqlx::query_scalar(
            "SELECT org_id FROM assignments WHERE message_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(message_id.0)
        .fetch_optional(&mut *tx)
        .await?;

        let h = &analysis.header;
        sqlx::query(
            "UPDATE messages SET header_message_id = $2, from_addr = $3, from_name = $4, \
               subject = $5, date_header = $6, arrived_at = $7, auto_generated = $8, \
               parse_status = $9, ack_reason = $10, body_excerpt = $11, attention = $12 \
             WHERE id = $1",
        )
        .bind(message_id.0)
        .bind(h.message_id.as_deref())
        .bind(h.from.as_deref())
        .bind(h.from_name.as_deref())
        .bind(h.subject.as_deref())
        .bind(h.date.map(|d| d.to_rfc3339()))
        .bind(analysis.arrived_at.map(ts))
        .bind(analysis.auto_generated.as_deref())
        .bind(parse_status(analysis))
        .bind(&analysis.ack.reason)
        .bind(&analysis.body_excerpt)
        .bind(analysis.attention.as_deref())
        .execute(&mut *tx)
        .await?;

        let org = &analysis.organisation;
        let (org_id, org_name, matched_by, evidence) = match &assigned {
            Some(a) => (
                Some(OrgId(a.clone())),
                None,
                "manual",
                "assigned by a coordinator".to_owned(),
            ),
            None => (
                org.id.clone(),
                org.name.clone(),
                org.matched_by.as_str(),
                org.evidence.clone(),
            ),
        };
        let order_at = analysis
            .arrived_at
            .map(ts)
            .or(received_at)
            .unwrap_or(stored_at);
        sqlx::query(
            "UPDATE submissions SET org_id = $2, org_name = $3, matched_by = $4, evidence = $5, \
               campaign = $6, deadline = $7, arrived_at = $8, late = $9, \
               supersedes = NULL, state = 'current' WHERE id = $1",
        )
        .bind(submission_id.0)
        .bind(org_id.as_ref().map(OrgId::as_str))
        .bind(org_name.as_deref())
        .bind(matched_by)
        .bind(&evidence)
        .bind(analysis.campaign.as_ref().map(CampaignId::as_str))
        .bind(analysis.deadline.as_ref().map(DeadlineId::as_str))
        .bind(order_at)
        .bind(bool_val(analysis.late))
        .execute(&mut *tx)
        .await?;

        delete_contents(&mut tx, message_id, submission_id).await?;
        insert_contents(&mut tx, message_id, submission_id, analysis).await?;
        bump_revision(&mut tx).await?;
        recompute_supersedes(
            &mut tx,
            old_org.map(OrgId).as_ref(),
            old_campaign.map(CampaignId).as_ref(),
            old_deadline.map(DeadlineId).as_ref(),
        )
        .await?;
        recompute_supersedes(
            &mut tx,
            org_id.as_ref(),
            analysis.campaign.as_ref(),
            analysis.deadline.as_ref(),
        )
        .await?;
        tx.commit().await?;
        Ok(submission_id)
    }
}

/// A new message's submission. On PostgreSQL the same statement takes its
/// unit's lock ([`lock_unit`]) for [`supersede_with_new`]: a round trip
/// of every matched mail fewer. Taken before the supersede check's
/// statement starts, it serves as well as a statement of its own.
async fn insert_submission(
    tx: &mut Transaction<'_, Any>,
    message_id: MessageId,
    analysis: &Analysis,
    order_at: DateTime<Utc>,
) -> Result<SubmissionId> {
    let org = &analysis.organisation;
    let postgres = tx.backend_name() == "PostgreSQL";
    let sql = if postgres {
        "INSERT INTO submissions (message_id, org_id, org_name, matched_by, evidence, \
           campaign, deadline, arrived_at, late, state) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'current' \
         FROM (SELECT CASE WHEN $10::text IS NOT NULL \
                 THEN pg_advisory_xact_lock(hashtextextended($10, 0))::text END) AS unit_lock \
         RETURNING id"
    } else {
        "INSERT INTO submissions (message_id, org_id, org_name, matched_by, evidence, \
           campaign, deadline, arrived_at, late, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'current') RETURNING id"
    };
    let mut query = sqlx::query_scalar(sql)
        .bind(message_id.0)
        .bind(org.id.as_ref().map(OrgId::as_str))
        .bind(org.name.as_deref())
        .bind(org.matched_by.as_str())
        .bind(&org.evidence)
        .bind(analysis.campaign.as_ref().map(CampaignId::as_str))
        .bind(analysis.deadline.as_ref().map(DeadlineId::as_str))
        .bind(ts(order_at))
        .bind(bool_val(analysis.late));
    if postgres {
        let unit = match (&org.id, &analysis.campaign, &analysis.deadline) {
            (Some(org), Some(campaign), Some(deadline)) => {
                Some(unit_lock_key(org, campaign, deadline))
            }
            _ => None,
        };
        query = query.bind(unit);
    }
    let id: i64 = query.fetch_one(&mut **tx).await?;
    Ok(SubmissionId(id))
}

/// The message recorded before with these bytes or from this origin.
async fn duplicate_of(
    tx: &mut Transaction<'_, Any>,
    sha: &Sha256,
    origin_key: &str,
) -> Result<Option<MessageId>> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE sha256 = $1 OR origin_key = $2 ORDER BY id LIMIT 1",
    )
    .bind(sha.as_str())
    .bind(origin_key)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(id.map(MessageId))
}

/// The message row and, for another copy of a mail recorded before (the
/// same content key), its original: the first copy, looked up in the same
/// statement (one round trip to the database where there were two). None
/// when a uniqueness rule (bytes, origin, one original per content key)
/// says it is not new. With `advance` (PostgreSQL only, an IMAP origin)
/// the same statement does [`advance_mailbox`]'s upsert, whatever becomes
/// of the message's row: another round trip fewer.
async fn insert_message(
    tx: &mut Transaction<'_, Any>,
    raw: &RawMessage,
    sha: &Sha256,
    origin: &OriginCols,
    analysis: &Analysis,
    advance: bool,
    now: DateTime<Utc>,
) -> Result<Option<(MessageId, Option<MessageId>)>> {
    let h = &analysis.header;
    let postgres = tx.backend_name() == "PostgreSQL";
    let advanced = if postgres {
        ", advanced AS (INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, updated_at) \
           SELECT $6, $7, $8, $23 WHERE $27 = 1 \
           ON CONFLICT (mailbox) DO UPDATE SET \
             last_uid = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity \
                             AND mailbox_state.last_uid > excluded.last_uid \
                        THEN mailbox_state.last_uid ELSE excluded.last_uid END, \
             uidvalidity = excluded.uidvalidity, \
             updated_at = excluded.updated_at)"
    } else {
        ""
    };
    // A copy needs no one (no attention, no held ack): its original is listed.
    // `WHERE true` tells SQLite's parser the ON CONFLICT is the upsert's.
    let sql = format!(
        "WITH original AS (SELECT id FROM messages \
           WHERE content_key = $24 AND copy_of IS NULL ORDER BY id LIMIT 1){advanced} \
         INSERT INTO messages (sha256, size, archive_path, origin_key, origin_kind, mailbox, \
           uidvalidity, uid, maildir_key, file_path, file_index, header_message_id, \
           from_addr, from_name, subject, date_header, received_at, arrived_at, \
           auto_generated, parse_status, ack_reason, body_excerpt, stored_at, content_key, \
           copy_of, attention, ack_held) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
           $17, $18, $19, $20, $21, $22, $23, $24, (SELECT id FROM original), \
           CASE WHEN (SELECT id FROM original) IS NULL THEN $25 END, \
           CASE WHEN (SELECT id FROM original) IS NULL THEN $26 ELSE 0 END \
         WHERE true \
         ON CONFLICT DO NOTHING RETURNING id, copy_of"
    );
    // Only the fixed CTE above is formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sha.as_str())
        .bind(raw.bytes.len() as i64)
        .bind(Archive::relative_path(sha).to_string_lossy().into_owned())
        .bind(&origin.key)
        .bind(origin.kind)
        .bind(origin.mailbox.as_deref())
        .bind(origin.uidvalidity)
        .bind(origin.uid)
        .bind(origin.maildir_key.as_deref())
        .bind(origin.file_path.as_deref())
        .bind(origin.file_index)
        .bind(h.message_id.as_deref())
        .bind(h.from.as_deref())
        .bind(h.from_name.as_deref())
        .bind(h.subject.as_deref())
        .bind(h.date.map(|d| d.to_rfc3339()))
        .bind(raw.received_at.map(ts))
        .bind(analysis.arrived_at.map(ts))
        .bind(analysis.auto_generated.as_deref())
        .bind(parse_status(analysis))
        .bind(&analysis.ack.reason)
        .bind(&analysis.body_excerpt)
        .bind(ts(now))
        .bind(analysis.content_key.as_deref())
        .bind(analysis.attention.as_deref())
        .bind(i16::from(analysis.ack.held));
    if postgres {
        query = query.bind(i16::from(advance));
    }
    let row = query.fetch_optional(&mut **tx).await?;
    row.map(|r| {
        Ok((
            MessageId(get(&r, "id")?),
            get::<Option<i64>>(&r, "copy_of")?.map(MessageId),
        ))
    })
    .transpose()
}

fn parse_status(analysis: &Analysis) -> &'static str {
    if analysis.problems.is_empty() {
        "ok"
    } else {
        "problems"
    }
}

async fn delete_contents(
    tx: &mut Transaction<'_, Any>,
    message_id: MessageId,
    submission_id: SubmissionId,
) -> Result<()> {
    sqlx::query("DELETE FROM problems WHERE message_id = $1")
        .bind(message_id.0)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "DELETE FROM records WHERE document_id IN \
         (SELECT id FROM documents WHERE submission_id = $1)",
    )
    .bind(submission_id.0)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM documents WHERE submission_id = $1")
        .bind(submission_id.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Documents, their records and problems, and the message's own problems.
async fn insert_contents(
    tx: &mut Transaction<'_, Any>,
    message_id: MessageId,
    submission_id: SubmissionId,
    analysis: &Analysis,
) -> Result<()> {
    for (seq, doc) in analysis.documents.iter().enumerate() {
        let document_id = insert_document(tx, submission_id, seq, doc).await?;
        if let Some(table) = &doc.table {
            let rows = table.rows.iter().flatten().enumerate();
            let cells = rows
                .flat_map(|(i, row)| row.iter().map(move |(k, v)| (Some(i as i64), k, v)))
                .chain(table.fields.iter().flatten().map(|(k, v)| (None, k, v)))
                .collect::<Vec<_>>();
            for chunk in cells.chunks(RECORDS_PER_INSERT) {
                insert_records(tx, document_id, chunk).await?;
            }
        }
        insert_problems(tx, message_id, Some(document_id), &doc.problems).await?;
    }
    insert_problems(tx, message_id, None, &analysis.problems).await
}

async fn insert_document(
    tx: &mut Transaction<'_, Any>,
    submission_id: SubmissionId,
    seq: usize,
    doc: &Document,
) -> Result<i64> {
    let table = doc.table.as_ref();
    Ok(sqlx::query_scalar(
        "INSERT INTO documents (submission_id, seq, filename, path, media_type, size, sha256, \
           kind, form, sealed, seal_confidence, form_id, form_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
           CASE WHEN $14 = 1 THEN $11 END, $12, $13) RETURNING id",
    )
    .bind(submission_id.0)
    .bind(seq as i64)
    .bind(&doc.filename)
    .bind(&doc.path)
    .bind(&doc.media_type)
    .bind(i64::try_from(doc.size).unwrap_or(i64::MAX))
    .bind(doc.sha256.as_str())
    .bind(doc.kind.as_str())
    .bind(doc.form.as_str())
    .bind(bool_val(doc.sealed))
    .bind(float_or_zero(doc.seal_confidence.map(f64::from)))
    .bind(table.map(|t| t.form_id.as_str()))
    .bind(table.map(|t| t.form.as_str()))
    .bind(i16::from(doc.seal_confidence.is_some()))
    .fetch_one(&mut **tx)
    .await?)
}

/// Rows of one multi-row INSERT: a table's cells go in a few statements,
/// not one round trip each (7 parameters a row, far below either
/// database's limit).
const RECORDS_PER_INSERT: usize = 64;

/// One document's cells: (row index or None for a form field, key, value).
async fn insert_records(
    tx: &mut Transaction<'_, Any>,
    document_id: i64,
    cells: &[(Option<i64>, &String, &FieldValue)],
) -> Result<()> {
    let mut sql = String::from(
        "INSERT INTO records (document_id, row_index, key, value_num, value_text, original) VALUES ",
    );
    for i in 0..cells.len() {
        let p = i * 7;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, CASE WHEN ${} = 1 THEN ${} END, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 7,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    // Only placeholders are formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for &(row_index, key, value) in cells {
        let (num, text) = match &value.value {
            serde_json::Value::Null => (None, None),
            serde_json::Value::Number(n) => (n.as_f64(), None),
            serde_json::Value::String(s) => (None, Some(no_nul(s).into_owned())),
            other => (None, Some(other.to_string())),
        };
        query = query
            .bind(document_id)
            .bind(row_index)
            .bind(key.as_str())
            .bind(float_or_zero(num))
            .bind(text)
            .bind(no_nul(&value.text).into_owned())
            .bind(i16::from(num.is_some()));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// A new submission as [`Store::unit_sent`] reads it back from the rows
/// [`insert_contents`] writes: arrival to the second, a document's items
/// counted from its rows with cells, text without NUL.
fn as_stored(analysis: &Analysis, order_at: DateTime<Utc>) -> Sent {
    let mut sent = Sent::of_analysis(analysis, order_at);
    sent.arrived_at = DateTime::from_timestamp(ts(order_at), 0).unwrap_or(order_at);
    let strip = |ps: &mut Vec<Problem>| {
        for p in ps {
            p.message = no_nul(&p.message).into_owned();
        }
    };
    for (stored, doc) in sent.documents.iter_mut().zip(&analysis.documents) {
        stored.items = doc
            .table
            .as_ref()
            .and_then(|t| t.rows.as_ref())
            .map(|rows| rows.iter().filter(|r| !r.is_empty()).count())
            .filter(|n| *n > 0);
        strip(&mut stored.problems);
    }
    strip(&mut sent.problems);
    sent
}

/// Text read out of a file, without NUL: PostgreSQL refuses it in TEXT
/// (`invalid byte sequence for encoding "UTF8": 0x00`), and one such cell
/// must not make a whole message unrecordable. Intake cleans headers and
/// names; cell text and the problems quoting it pass here.
fn no_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', ""))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// A nullable float goes in as a value plus a flag (`CASE WHEN flag = 1 THEN
/// value END`): sqlx 0.9's Any driver binds a NULL f64 as float4 on
/// PostgreSQL, and the statement prepared with it then rejects real f64s.
fn float_or_zero(v: Option<f64>) -> f64 {
    v.unwrap_or(0.0)
}

/// A document's problems (or the message's own, `document_id` None) in
/// one multi-row INSERT, as [`insert_records`] does cells: a message's
/// problems came one round trip each.
async fn insert_problems(
    tx: &mut Transaction<'_, Any>,
    message_id: MessageId,
    document_id: Option<i64>,
    problems: &[Problem],
) -> Result<()> {
    for chunk in problems.chunks(PROBLEMS_PER_INSERT) {
        let mut sql =
            String::from("INSERT INTO problems (message_id, document_id, code, message) VALUES ");
        for i in 0..chunk.len() {
            let p = i * 4;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4));
        }
        // Only placeholders are formatted in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            query = query
                .bind(message_id.0)
                .bind(document_id)
                .bind(p.code.as_str())
                .bind(no_nul(&p.message).into_owned());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rows of one problems INSERT (4 parameters a row).
const PROBLEMS_PER_INSERT: usize = 64;

/// The query of `supersede_with_new`, given its subquery for `later`: any
/// submission of the unit after `$1`, the new one (`$2`–`$4` its unit: org,
/// campaign, deadline). `earlier`'s shared kind is a subquery with LIMIT,
/// not EXISTS: PostgreSQL turns an EXISTS into a join, and a plan made
/// while the tables were empty (kept for the connection) hashed every
/// document for each mail: 1.1 ms a mail, growing, in a 1000-mail run into
/// an empty database. A LIMIT subquery stays a lookup by
/// `documents_submission`. A new mail without documents shares no kind, and
/// is tested for that once: else it walked all of its unit's mails.
macro_rules! neighbours_sql {
    ($later:literal) => {
        concat!(
            "SELECT (",
            $later,
            ") AS later, \
             (SELECT s.id FROM submissions s, submissions n \
               WHERE n.id = $1 AND s.org_id = $2 AND s.campaign = $3 AND s.deadline = $4 \
                 AND s.id <> n.id \
                 AND (SELECT 1 FROM documents WHERE submission_id = $1 LIMIT 1) IS NOT NULL \
                 AND (SELECT 1 FROM documents d, documents e \
                      WHERE d.submission_id = s.id AND e.submission_id = n.id \
                        AND d.kind = e.kind LIMIT 1) IS NOT NULL \
               ORDER BY s.arrived_at DESC, s.id DESC LIMIT 1) AS earlier"
        )
    };
}

/// PostgreSQL's `later`: a row comparison with the new one's values, a
/// range of `submissions_unit_arrival`. As a join with an OR it walked all
/// of the unit's submissions that arrived when the new one did or before
/// (in a unit whose mails carry one date, all of them, each a heap tuple
/// while the pages were not yet all-visible); as a join with the row
/// comparison, the plan made on empty tables did the same. Public so that
/// a test can check that plan.
pub const NEIGHBOURS_SQL_POSTGRES: &str = neighbours_sql!(
    "SELECT s.id FROM submissions s \
     WHERE s.org_id = $2 AND s.campaign = $3 AND s.deadline = $4 \
       AND (s.arrived_at, s.id) > ((SELECT arrived_at FROM submissions WHERE id = $1), $1) \
     LIMIT 1"
);

/// SQLite's `later`: an OR, which it answers with two lookups; of a row
/// comparison it would range on `arrived_at` alone and walk the ties.
const NEIGHBOURS_SQL_SQLITE: &str = neighbours_sql!(
    "SELECT s.id FROM submissions s, submissions n \
     WHERE n.id = $1 AND s.org_id = $2 AND s.campaign = $3 AND s.deadline = $4 \
       AND (s.arrived_at > n.arrived_at OR (s.arrived_at = n.arrived_at AND s.id > n.id)) \
     LIMIT 1"
);

/// The supersede chain after `new` was added to its unit's submissions for
/// a deadline. When `new` is the latest (the usual case) only it and the
/// one it supersedes change, so only that one is looked up: a unit's
/// hundredth mail costs what its first did. Mail older than some already
/// stored goes through [`supersede_before_later`], which touches as few rows.
async fn supersede_with_new(
    tx: &mut Transaction<'_, Any>,
    new: SubmissionId,
    org: Option<&OrgId>,
    campaign: Option<&CampaignId>,
    deadline: Option<&DeadlineId>,
) -> Result<()> {
    let (Some(org), Some(campaign), Some(deadline)) = (org, campaign, deadline) else {
        return Ok(());
    };
    // The unit's lock was taken with the submission (insert_submission).
    // Ordered like recompute_supersedes: by arrival, then id. `later`: any
    // submission after `new`; `earlier`: the latest before it sharing a
    // document kind with it. One query, as every mail of a unit asks both.
    let sql = if tx.backend_name() == "PostgreSQL" {
        NEIGHBOURS_SQL_POSTGRES
    } else {
        NEIGHBOURS_SQL_SQLITE
    };
    let row = sqlx::query(sql)
        .bind(new.0)
        .bind(org.as_str())
        .bind(campaign.as_str())
        .bind(deadline.as_str())
        .fetch_one(&mut **tx)
        .await?;
    let later: Option<i64> = get(&row, "later")?;
    let earlier: Option<i64> = get(&row, "earlier")?;
    if later.is_some() {
        return supersede_before_later(tx, new, org, campaign, deadline).await;
    }
    if let Some(earlier) = earlier {
        point(tx, new.0, earlier).await?;
    }
    Ok(())
}

/// Makes transactions that rewrite one unit's supersede chain take turns.
/// On PostgreSQL two instances may record the same unit's mail at once
/// (sent to two mailboxes they each hold); under READ COMMITTED neither
/// saw the other's new row and both chains came out wrong (test
/// `two_instances_recording_one_units_mail_at_once_keep_its_chain`). The
/// lock is held to commit, and each statement after it sees what the
/// other committed. SQLite has one writer at a time already.
async fn lock_unit(
    tx: &mut Transaction<'_, Any>,
    org: &OrgId,
    campaign: &CampaignId,
    deadline: &DeadlineId,
) -> Result<()> {
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(unit_lock_key(org, campaign, deadline))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The name of a unit's lock for one deadline ([`lock_unit`]).
fn unit_lock_key(org: &OrgId, campaign: &CampaignId, deadline: &DeadlineId) -> String {
    format!(
        "supersede\u{1f}{}\u{1f}{}\u{1f}{}",
        campaign.as_str(),
        deadline.as_str(),
        org.as_str()
    )
}

/// `new` arrived before some of its unit's stored mails. Recomputing the
/// whole chain read every mail of the unit for each such mail (4 ms each
/// at 700 mails, for a backlog of old mail fetched late); but few rows can
/// change, so only those are read:
/// - `new` points to the latest earlier mail sharing a kind with it;
/// - of the later mails, only the first one carrying each of `new`'s kinds
///   can come to point at `new`: any later one has that first one between,
///   sharing the kind. It does when what it points to now lies before `new`;
/// - a mail no longer pointed to by anyone is current again.
///
/// The result equals [`recompute_supersedes`]'s (test
/// `the_supersede_chain_is_the_same_whatever_order_mail_is_recorded_in`).
async fn supersede_before_later(
    tx: &mut Transaction<'_, Any>,
    new: SubmissionId,
    org: &OrgId,
    campaign: &CampaignId,
    deadline: &DeadlineId,
) -> Result<()> {
    let new_at: i64 = sqlx::query_scalar("SELECT arrived_at FROM submissions WHERE id = $1")
        .bind(new.0)
        .fetch_one(&mut **tx)
        .await?;
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT kind FROM documents WHERE submission_id = $1")
            .bind(new.0)
            .fetch_all(&mut **tx)
            .await?;
    if kinds.is_empty() {
        // Shares a kind with nothing: points nowhere, pointed to by none.
        return Ok(());
    }
    // Shared kinds as LIMIT subqueries, not EXISTS: see supersede_with_new.
    let earlier: Option<i64> = sqlx::query_scalar(
        "SELECT s.id FROM submissions s \
         WHERE s.org_id = $2 AND s.campaign = $3 AND s.deadline = $4 \
           AND (s.arrived_at < $5 OR (s.arrived_at = $5 AND s.id < $1)) \
           AND (SELECT 1 FROM documents d, documents e \
                WHERE d.submission_id = s.id AND e.submission_id = $1 \
                  AND d.kind = e.kind LIMIT 1) IS NOT NULL \
         ORDER BY s.arrived_at DESC, s.id DESC LIMIT 1",
    )
    .bind(new.0)
    .bind(org.as_str())
    .bind(campaign.as_str())
    .bind(deadline.as_str())
    .bind(new_at)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(earlier) = earlier {
        point(tx, new.0, earlier).await?;
    }
    let mut released = BTreeSet::new();
    for kind in &kinds {
        let first_later = sqlx::query(
            "SELECT s.id, s.supersedes, t.arrived_at AS target_at FROM submissions s \
             LEFT JOIN submissions t ON t.id = s.supersedes \
             WHERE s.org_id = $2 AND s.campaign = $3 AND s.deadline = $4 \
               AND (s.arrived_at > $5 OR (s.arrived_at = $5 AND s.id > $1)) \
               AND (SELECT 1 FROM documents d \
                    WHERE d.submission_id = s.id AND d.kind = $6 LIMIT 1) IS NOT NULL \
             ORDER BY s.arrived_at, s.id LIMIT 1",
        )
        .bind(new.0)
        .bind(org.as_str())
        .bind(campaign.as_str())
        .bind(deadline.as_str())
        .bind(new_at)
        .bind(kind)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = first_later else { continue };
        let later: i64 = get(&row, "id")?;
        let target: Option<i64> = get(&row, "supersedes")?;
        let target_at: Option<i64> = get(&row, "target_at")?;
        let target_before_new = match (target, target_at) {
            (None, _) => true,
            (Some(t), Some(at)) => (at, t) < (new_at, new.0),
            (Some(t), None) => {
                return Err(StoreError::Corrupt(format!(
                    "submission {later} supersedes {t}, which does not exist"
                )));
            }
        };
        if target == Some(new.0) || !target_before_new {
            continue;
        }
        point(tx, later, new.0).await?;
        released.extend(target);
    }
    for old in released {
        let still: Option<i64> =
            sqlx::query_scalar("SELECT id FROM submissions WHERE supersedes = $1 LIMIT 1")
                .bind(old)
                .fetch_optional(&mut **tx)
                .await?;
        if still.is_none() {
            sqlx::query(
                "UPDATE submissions SET state = 'current' WHERE id = $1 AND state <> 'current'",
            )
            .bind(old)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// `from` now supersedes `to`: one statement for both rows.
async fn point(tx: &mut Transaction<'_, Any>, from: i64, to: i64) -> Result<()> {
    sqlx::query(
        "UPDATE submissions SET \
           supersedes = CASE WHEN id = $1 THEN $2 ELSE supersedes END, \
           state = CASE WHEN id = $2 THEN 'superseded' ELSE state END \
         WHERE id = $1 OR (id = $2 AND state <> 'superseded')",
    )
    .bind(from)
    .bind(to)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Recomputes `supersedes` and `state` for one unit's submissions to one
/// deadline: each points to the latest earlier one that carried a document
/// of a kind it carries too, and one so pointed to is `superseded`. Redone
/// for the whole group because messages can be recorded out of order and
/// assignment moves submissions between groups.
pub(super) async fn recompute_supersedes(
    tx: &mut Transaction<'_, Any>,
    org: Option<&OrgId>,
    campaign: Option<&CampaignId>,
    deadline: Option<&DeadlineId>,
) -> Result<()> {
    let (Some(org), Some(campaign), Some(deadline)) = (org, campaign, deadline) else {
        return Ok(());
    };
    lock_unit(tx, org, campaign, deadline).await?;
    let rows = sqlx::query(
        "SELECT s.id, s.supersedes, s.state, d.kind FROM submissions s \
         LEFT JOIN documents d ON d.submission_id = s.id \
         WHERE s.org_id = $1 AND s.campaign = $2 AND s.deadline = $3 \
         ORDER BY s.arrived_at, s.id",
    )
    .bind(org.as_str())
    .bind(campaign.as_str())
    .bind(deadline.as_str())
    .fetch_all(&mut **tx)
    .await?;

    struct Sub {
        id: i64,
        supersedes: Option<i64>,
        state: String,
        kinds: BTreeSet<String>,
    }
    let mut subs: Vec<Sub> = Vec::new();
    for r in &rows {
        let id: i64 = get(r, "id")?;
        let kind: Option<String> = get(r, "kind")?;
        if subs.last().is_none_or(|s| s.id != id) {
            subs.push(Sub {
                id,
                supersedes: get(r, "supersedes")?,
                state: get(r, "state")?,
                kinds: BTreeSet::new(),
            });
        }
        if let (Some(kind), Some(last)) = (kind, subs.last_mut()) {
            last.kinds.insert(kind);
        }
    }

    let mut supersedes = vec![None; subs.len()];
    for (i, sub) in subs.iter().enumerate() {
        supersedes[i] = subs[..i]
            .iter()
            .rev()
            .find(|earlier| !earlier.kinds.is_disjoint(&sub.kinds))
            .map(|earlier| earlier.id);
    }
    let superseded: BTreeSet<i64> = supersedes.iter().flatten().copied().collect();
    for (i, sub) in subs.iter().enumerate() {
        let state = if superseded.contains(&sub.id) {
            "superseded"
        } else {
            "current"
        };
        if sub.supersedes != supersedes[i] || sub.state != state {
            sqlx::query("UPDATE submissions SET supersedes = $2, state = $3 WHERE id = $1")
                .bind(sub.id)
                .bind(supersedes[i])
                .bind(state)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

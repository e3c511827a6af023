//! What the coordinator's commands read (status, show, export, reprocess)
//! and change by hand (assign, reminder pauses).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;

use super::record::recompute_supersedes;
use super::{
    DocumentId, Durability, MessageId, OutboxRow, Result, Store, StoreError, SubmissionId,
    bool_col, bump_revision, from_ts, get, message_arrived_at, opt_from_ts, outbox, to_u32, ts,
};
use crate::model::{FieldValue, MatchedBy, Origin, Problem, ProblemCode};
use crate::status::{Sent, SentDoc};
use crate::types::{
    CampaignId, DeadlineId, DocForm, DocumentKind, FormId, MailboxName, OrgId, Sha256, Uid,
};

/// A stored message: its headers and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageInfo {
    pub id: MessageId,
    pub sha256: Sha256,
    pub size: u64,
    /// Relative to the archive directory.
    pub archive_path: String,
    pub origin: Origin,
    /// The Message-ID header.
    pub header_message_id: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    /// The Date header, RFC 3339.
    pub date: Option<String>,
    /// When the source says it reached the mailbox (INTERNALDATE).
    pub received_at: Option<DateTime<Utc>>,
    /// What lateness was judged on.
    pub arrived_at: Option<DateTime<Utc>>,
    pub auto_generated: Option<String>,
    /// `ok`, or `problems` when the message as a whole has problems.
    pub parse_status: String,
    /// Why an ack was (not) sent.
    pub ack_reason: String,
    pub body_excerpt: String,
    pub stored_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionState {
    Current,
    /// A later submission of the same unit and deadline carries a document
    /// of the same kind.
    Superseded,
}

/// One file of a submission with its problems.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentInfo {
    pub id: DocumentId,
    pub filename: String,
    pub path: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: Sha256,
    pub kind: DocumentKind,
    pub form: DocForm,
    pub sealed: Option<bool>,
    pub seal_confidence: Option<f32>,
    pub form_id: Option<FormId>,
    pub form_name: Option<String>,
    /// Records of a `rows` form (activities recommended).
    pub items: Option<usize>,
    pub problems: Vec<Problem>,
}

/// What one message delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionInfo {
    pub id: SubmissionId,
    pub message: MessageId,
    pub org: Option<OrgId>,
    pub org_name: Option<String>,
    pub matched_by: MatchedBy,
    pub evidence: String,
    pub campaign: Option<CampaignId>,
    pub deadline: Option<DeadlineId>,
    pub arrived_at: DateTime<Utc>,
    pub late: Option<bool>,
    pub supersedes: Option<SubmissionId>,
    pub state: SubmissionState,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub documents: Vec<DocumentInfo>,
    /// Problems of the message as a whole.
    pub problems: Vec<Problem>,
}

impl SubmissionInfo {
    /// What the status view needs of it.
    pub fn sent(&self) -> Sent {
        Sent {
            arrived_at: self.arrived_at,
            late: self.late == Some(true),
            documents: self
                .documents
                .iter()
                .map(|d| SentDoc {
                    path: d.path.clone(),
                    kind: d.kind,
                    form: d.form,
                    sha256: d.sha256.clone(),
                    sealed: d.sealed,
                    items: d.items,
                    problems: d.problems.clone(),
                })
                .collect(),
            problems: self.problems.clone(),
        }
    }
}

/// What [`Store::assign`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    /// The message's ack had been held back for a coordinator: send it now.
    pub ack_held: bool,
}

/// A stored mail a coordinator must look at (the digest's 需人工处理).
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    pub message: MessageId,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub arrived_at: DateTime<Utc>,
    pub reason: String,
}

/// One value read from a form.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub org: Option<OrgId>,
    pub submission: SubmissionId,
    pub message: MessageId,
    pub document: DocumentId,
    pub form_id: Option<FormId>,
    /// Row of a `rows` form, from 0; None for a `fields` form.
    pub row: Option<u32>,
    pub key: String,
    pub value: FieldValue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub org: OrgId,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Everything stored about one message (`baosong show`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDetail {
    pub message: MessageInfo,
    pub submission: Option<SubmissionInfo>,
    pub records: Vec<RecordRow>,
    pub outbox: Vec<OutboxRow>,
    pub assignments: Vec<Assignment>,
}

/// What `reprocess` needs to rebuild a [`crate::model::RawMessage`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReprocessItem {
    pub id: MessageId,
    pub sha256: Sha256,
    pub origin: Origin,
    pub received_at: Option<DateTime<Utc>>,
}

macro_rules! message_sql {
    ($tail:literal) => {
        concat!(
            "SELECT m.id, m.sha256, m.size, m.archive_path, m.origin_kind, m.mailbox, ",
            "m.uidvalidity, m.uid, m.maildir_key, m.file_path, m.file_index, ",
            "m.header_message_id, m.from_addr, m.from_name, m.subject, m.date_header, ",
            "m.received_at, m.arrived_at, m.auto_generated, m.parse_status, m.ack_reason, ",
            "m.body_excerpt, m.stored_at FROM messages m ",
            $tail
        )
    };
}

/// The three queries `load_submissions` runs, as the text before and after
/// the filter's WHERE condition.
const SUBMISSIONS: (&str, &str) = (
    "SELECT s.id, s.message_id, s.org_id, s.org_name, s.matched_by, s.evidence, \
     s.campaign, s.deadline, s.arrived_at, s.late, s.supersedes, s.state, \
     m.from_addr, m.subject FROM submissions s JOIN messages m ON m.id = s.message_id WHERE ",
    " ORDER BY s.arrived_at, s.id",
);
const DOCUMENTS: (&str, &str) = (
    "SELECT d.id, d.submission_id, d.filename, d.path, d.media_type, d.size, d.sha256, \
     d.kind, d.form, d.sealed, d.seal_confidence, d.form_id, d.form_name, \
     (SELECT COUNT(DISTINCT r.row_index) FROM records r WHERE r.document_id = d.id) AS items \
     FROM documents d JOIN submissions s ON s.id = d.submission_id WHERE ",
    " ORDER BY d.submission_id, d.seq",
);
const PROBLEMS: (&str, &str) = (
    "SELECT p.message_id, p.document_id, p.code, p.message \
     FROM problems p JOIN submissions s ON s.message_id = p.message_id WHERE ",
    " ORDER BY p.id",
);

macro_rules! record_sql {
    ($where:literal) => {
        concat!(
            "SELECT s.org_id, s.id AS submission_id, s.message_id, d.id AS document_id, ",
            "d.form_id, r.row_index, r.key, r.value_num, r.value_text, r.original ",
            "FROM records r JOIN documents d ON d.id = r.document_id ",
            "JOIN submissions s ON s.id = d.submission_id WHERE ",
            $where,
            " ORDER BY s.org_id, s.id, d.seq, r.row_index, r.id"
        )
    };
}

/// Which submissions to load.
pub(super) enum Filter<'a> {
    Deadline(&'a CampaignId, &'a DeadlineId),
    /// One unit's submissions to a deadline: what an ack needs, without
    /// loading every unit's (which made each ack cost grow with the store).
    Unit(&'a CampaignId, &'a DeadlineId, &'a OrgId),
    /// The unit's submissions with an id above the one given.
    UnitAfter(&'a CampaignId, &'a DeadlineId, &'a OrgId, i64),
    Message(MessageId),
}

impl Store {
    /// Every submission to a deadline, oldest first, with documents and problems.
    pub async fn submissions_for(
        &self,
        campaign: &CampaignId,
        deadline: &DeadlineId,
    ) -> Result<Vec<SubmissionInfo>> {
        self.load_submissions(Filter::Deadline(campaign, deadline))
            .await
    }

    /// Everything about one message; None if there is no such message.
    pub async fn show_message(&self, id: MessageId) -> Result<Option<MessageDetail>> {
        let Some(row) = sqlx::query(message_sql!("WHERE m.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let message = message_from_row(&row)?;
        let submission = self.load_submissions(Filter::Message(id)).await?.pop();
        let records = sqlx::query(record_sql!("s.message_id = $1"))
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>>>()?;
        let outbox_ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM outbox WHERE related_message = $1 ORDER BY id")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?;
        let mut conn = self.pool.acquire().await?;
        let mut outbox = Vec::with_capacity(outbox_ids.len());
        for oid in outbox_ids {
            outbox.push(outbox::load(&mut conn, super::OutboxId(oid)).await?);
        }
        let assignments = sqlx::query(
            "SELECT org_id, assigned_by, assigned_at FROM assignments \
             WHERE message_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Assignment {
                org: OrgId(get(r, "org_id")?),
                by: get(r, "assigned_by")?,
                at: from_ts(get(r, "assigned_at")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(MessageDetail {
            message,
            submission,
            records,
            outbox,
            assignments,
        }))
    }

    /// A coordinator says which unit sent a message: the submission moves to
    /// that unit (matched by `manual`), the assignment is logged, and the
    /// sender's address is learned for the next messages.
    pub async fn assign(
        &self,
        message_id: MessageId,
        org: &OrgId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Assigned> {
        let mut tx = self.write_conn(Durability::Synced).await?.begin().await?;
        let row = sqlx::query(
            "SELECT s.id, s.org_id, s.campaign, s.deadline, m.from_addr, m.ack_held \
             FROM submissions s JOIN messages m ON m.id = s.message_id WHERE s.message_id = $1",
        )
        .bind(message_id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("message {message_id}")))?;
        let ack_held = get::<i16>(&row, "ack_held")? != 0;
        let submission: i64 = get(&row, "id")?;
        let old_org: Option<String> = get(&row, "org_id")?;
        let campaign: Option<String> = get(&row, "campaign")?;
        let deadline: Option<String> = get(&row, "deadline")?;
        let from: Option<String> = get(&row, "from_addr")?;

        sqlx::query(
            "UPDATE submissions SET org_id = $2, org_name = NULL, matched_by = 'manual', \
             evidence = $3, supersedes = NULL, state = 'current' WHERE id = $1",
        )
        .bind(submission)
        .bind(org.as_str())
        .bind(format!("assigned by {by}"))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO assignments (message_id, org_id, assigned_by, assigned_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(message_id.0)
        .bind(org.as_str())
        .bind(by)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        if let Some(address) = from
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty())
        {
            sqlx::query(
                "INSERT INTO learned_addresses (address, org_id, learned_from, learned_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO UPDATE SET \
                 org_id = excluded.org_id, learned_from = excluded.learned_from, \
                 learned_at = excluded.learned_at",
            )
            .bind(address)
            .bind(org.as_str())
            .bind(message_id.0)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }

        let campaign = campaign.map(CampaignId);
        let deadline = deadline.map(DeadlineId);
        recompute_supersedes(
            &mut tx,
            old_org.map(OrgId).as_ref(),
            campaign.as_ref(),
            deadline.as_ref(),
        )
        .await?;
        recompute_supersedes(&mut tx, Some(org), campaign.as_ref(), deadline.as_ref()).await?;
        bump_revision(&mut tx).await?;
        sqlx::query("UPDATE messages SET attention_cleared_at = $2, ack_held = 0 WHERE id = $1")
            .bind(message_id.0)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Assigned { ack_held })
    }

    /// Sender addresses coordinators tied to units, for the matcher.
    pub async fn learned_addresses(&self) -> Result<Vec<(String, OrgId)>> {
        sqlx::query("SELECT address, org_id FROM learned_addresses ORDER BY address")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((get(r, "address")?, OrgId(get(r, "org_id")?))))
            .collect()
    }

    /// Every value of one form from each unit's latest submission that
    /// carried that form (earlier ones are superseded), for the consolidated
    /// sheet. Unmatched submissions are left out until assigned; the same
    /// file attached twice counts once.
    pub async fn records_for_form(
        &self,
        campaign: &CampaignId,
        deadline: &DeadlineId,
        form_id: &FormId,
    ) -> Result<Vec<RecordRow>> {
        // First each unit's latest submission with the form, by a window over
        // the deadline's submissions; then the records of those. As one
        // query with a per-row "no later one exists" test (or an IN over the
        // window) it was quadratic in a unit's submissions, or planned so on
        // PostgreSQL before its statistics caught up with a bulk load.
        let latest: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM (SELECT s.id, ROW_NUMBER() OVER ( \
                 PARTITION BY s.org_id ORDER BY s.arrived_at DESC, s.id DESC) AS latest \
               FROM submissions s JOIN documents d ON d.submission_id = s.id \
               WHERE s.campaign = $1 AND s.deadline = $2 AND s.org_id IS NOT NULL \
                 AND d.form_id = $3) ranked \
             WHERE latest = 1 ORDER BY id",
        )
        .bind(campaign.as_str())
        .bind(deadline.as_str())
        .bind(form_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        if latest.is_empty() {
            return Ok(Vec::new());
        }
        // One placeholder per unit: a few hundred at most, far below either
        // database's limit.
        let ids = (2..latest.len() + 2)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            record_sql!(
                "d.form_id = $1 AND d.submission_id IN ({ids}) \
                 AND NOT EXISTS (SELECT 1 FROM documents d3 \
                   WHERE d3.submission_id = d.submission_id AND d3.sha256 = d.sha256 \
                     AND d3.seq < d.seq)"
            ),
            ids = ids
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(form_id.as_str());
        for id in latest {
            query = query.bind(id);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record_from_row)
            .collect()
    }

    /// Every stored message, oldest first, for `reprocess`.
    pub async fn messages_for_reprocess(&self) -> Result<Vec<ReprocessItem>> {
        sqlx::query(message_sql!("WHERE m.copy_of IS NULL ORDER BY m.id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let m = message_from_row(r)?;
                Ok(ReprocessItem {
                    id: m.id,
                    sha256: m.sha256,
                    origin: m.origin,
                    received_at: m.received_at,
                })
            })
            .collect()
    }

    /// Mail a coordinator must look at and nobody has yet, oldest first.
    pub async fn attention(&self) -> Result<Vec<AttentionRow>> {
        sqlx::query(
            "SELECT id, from_addr, subject, arrived_at, stored_at, attention FROM messages \
             WHERE attention IS NOT NULL AND attention_cleared_at IS NULL AND copy_of IS NULL \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AttentionRow {
                message: MessageId(get(r, "id")?),
                from: get(r, "from_addr")?,
                subject: get(r, "subject")?,
                arrived_at: message_arrived_at(r)?,
                reason: get(r, "attention")?,
            })
        })
        .collect()
    }

    /// Messages no unit was found for (auto-generated mail left out), oldest first.
    pub async fn unmatched_messages(&self) -> Result<Vec<MessageInfo>> {
        sqlx::query(message_sql!(
            "JOIN submissions s ON s.message_id = m.id \
             WHERE s.org_id IS NULL AND m.auto_generated IS NULL ORDER BY m.id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_from_row)
        .collect()
    }

    /// Stops reminders to a unit (it told us by phone, say).
    pub async fn pause_reminders(&self, org: &OrgId, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO reminder_pauses (org_id, paused_at) VALUES ($1, $2) \
             ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org.as_str())
        .bind(ts(now))
        .execute(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(())
    }

    pub async fn resume_reminders(&self, org: &OrgId) -> Result<()> {
        sqlx::query("DELETE FROM reminder_pauses WHERE org_id = $1")
            .bind(org.as_str())
            .execute(self.write_conn(Durability::Synced).await?.conn())
            .await?;
        Ok(())
    }

    pub async fn paused_orgs(&self) -> Result<Vec<OrgId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT org_id FROM reminder_pauses ORDER BY org_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(OrgId).collect())
    }

    /// Runs one of the `load_submissions` queries with the filter's condition
    /// and values.
    async fn fetch_filtered(
        &self,
        (head, tail): (&str, &str),
        filter: &Filter<'_>,
    ) -> Result<Vec<AnyRow>> {
        let condition = match filter {
            Filter::Deadline(..) => "s.campaign = $1 AND s.deadline = $2",
            Filter::Unit(..) => "s.campaign = $1 AND s.deadline = $2 AND s.org_id = $3",
            Filter::UnitAfter(..) => {
                "s.campaign = $1 AND s.deadline = $2 AND s.org_id = $3 AND s.id > $4"
            }
            Filter::Message(_) => "s.message_id = $1",
        };
        // The SQL is built from the constants above only; values are bound.
        let sql = format!("{head}{condition}{tail}");
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let query = match filter {
            Filter::Deadline(c, d) => query.bind(c.as_str()).bind(d.as_str()),
            Filter::Unit(c, d, o) => query.bind(c.as_str()).bind(d.as_str()).bind(o.as_str()),
            Filter::UnitAfter(c, d, o, id) => query
                .bind(c.as_str())
                .bind(d.as_str())
                .bind(o.as_str())
                .bind(*id),
            Filter::Message(id) => query.bind(id.0),
        };
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub(super) async fn load_submissions(&self, filter: Filter<'_>) -> Result<Vec<SubmissionInfo>> {
        let subs = self.fetch_filtered(SUBMISSIONS, &filter).await?;
        let docs = self.fetch_filtered(DOCUMENTS, &filter).await?;
        let problems = self.fetch_filtered(PROBLEMS, &filter).await?;

        let mut doc_problems: BTreeMap<i64, Vec<Problem>> = BTreeMap::new();
        let mut msg_problems: BTreeMap<i64, Vec<Problem>> = BTreeMap::new();
        for r in &problems {
            let code: String = get(r, "code")?;
            let code = ProblemCode::parse(&code)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown problem code `{code}`")))?;
            let p = Problem::new(code, get::<String>(r, "message")?);
            match get::<Option<i64>>(r, "document_id")? {
                Some(d) => doc_problems.entry(d).or_default().push(p),
                None => msg_problems
                    .entry(get(r, "message_id")?)
                    .or_default()
                    .push(p),
            }
        }
        let mut documents: BTreeMap<i64, Vec<DocumentInfo>> = BTreeMap::new();
        for r in &docs {
            let id: i64 = get(r, "id")?;
            let mut doc = document_from_row(r)?;
            doc.problems = doc_problems.remove(&id).unwrap_or_default();
            documents
                .entry(get(r, "submission_id")?)
                .or_default()
                .push(doc);
        }
        subs.iter()
            .map(|r| {
                let mut sub = submission_from_row(r)?;
                sub.documents = documents.remove(&sub.id.0).unwrap_or_default();
                sub.problems = msg_problems.remove(&sub.message.0).unwrap_or_default();
                Ok(sub)
            })
            .collect()
    }
}

fn matched_by(s: &str) -> Result<MatchedBy> {
    [
        MatchedBy::Address,
        MatchedBy::Domain,
        MatchedBy::Content,
        MatchedBy::Manual,
        MatchedBy::None,
    ]
    .into_iter()
    .find(|m| m.as_str() == s)
    .ok_or_else(|| StoreError::Corrupt(format!("matched_by `{s}`")))
}

fn submission_from_row(r: &AnyRow) -> Result<SubmissionInfo> {
    Ok(SubmissionInfo {
        id: SubmissionId(get(r, "id")?),
        message: MessageId(get(r, "message_id")?),
        org: get::<Option<String>>(r, "org_id")?.map(OrgId),
        org_name: get(r, "org_name")?,
        matched_by: matched_by(&get::<String>(r, "matched_by")?)?,
        evidence: get(r, "evidence")?,
        campaign: get::<Option<String>>(r, "campaign")?.map(CampaignId),
        deadline: get::<Option<String>>(r, "deadline")?.map(DeadlineId),
        arrived_at: from_ts(get(r, "arrived_at")?)?,
        late: bool_col(get(r, "late")?),
        supersedes: get::<Option<i64>>(r, "supersedes")?.map(SubmissionId),
        state: match get::<String>(r, "state")?.as_str() {
            "current" => SubmissionState::Current,
            "superseded" => SubmissionState::Superseded,
            s => return Err(StoreError::Corrupt(format!("submission state `{s}`"))),
        },
        from: get(r, "from_addr")?,
        subject: get(r, "subject")?,
        documents: Vec::new(),
        problems: Vec::new(),
    })
}

fn document_from_row(r: &AnyRow) -> Result<DocumentInfo> {
    let kind: String = get(r, "kind")?;
    let form: String = get(r, "form")?;
    Ok(DocumentInfo {
        id: DocumentId(get(r, "id")?),
        filename: get(r, "filename")?,
        path: get(r, "path")?,
        media_type: get(r, "media_type")?,
        size: u64::try_from(get::<i64>(r, "size")?).unwrap_or(0),
        sha256: Sha256(get(r, "sha256")?),
        kind: DocumentKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("document kind `{kind}`")))?,
        form: DocForm::parse(&form)
            .ok_or_else(|| StoreError::Corrupt(format!("document form `{form}`")))?,
        sealed: bool_col(get(r, "sealed")?),
        seal_confidence: get::<Option<f64>>(r, "seal_confidence")?.map(|c| c as f32),
        form_id: get::<Option<String>>(r, "form_id")?.map(FormId),
        form_name: get(r, "form_name")?,
        items: usize::try_from(get::<i64>(r, "items")?)
            .ok()
            .filter(|n| *n > 0),
        problems: Vec::new(),
    })
}

fn record_from_row(r: &AnyRow) -> Result<RecordRow> {
    let num: Option<f64> = get(r, "value_num")?;
    let text: Option<String> = get(r, "value_text")?;
    let value = match (num, text) {
        (Some(n), _) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        (None, Some(t)) => serde_json::Value::String(t),
        (None, None) => serde_json::Value::Null,
    };
    Ok(RecordRow {
        org: get::<Option<String>>(r, "org_id")?.map(OrgId),
        submission: SubmissionId(get(r, "submission_id")?),
        message: MessageId(get(r, "message_id")?),
        document: DocumentId(get(r, "document_id")?),
        form_id: get::<Option<String>>(r, "form_id")?.map(FormId),
        row: get::<Option<i64>>(r, "row_index")?
            .map(to_u32)
            .transpose()?,
        key: get(r, "key")?,
        value: FieldValue {
            value,
            text: get(r, "original")?,
        },
    })
}

fn message_from_row(r: &AnyRow) -> Result<MessageInfo> {
    let kind: String = get(r, "origin_kind")?;
    let mailbox = || -> Result<MailboxName> {
        get::<Option<String>>(r, "mailbox")?
            .map(MailboxName)
            .ok_or_else(|| StoreError::Corrupt("message without mailbox".into()))
    };
    let origin = match kind.as_str() {
        "imap" => Origin::Imap {
            mailbox: mailbox()?,
            uidvalidity: to_u32(get::<Option<i64>>(r, "uidvalidity")?.unwrap_or(-1))?,
            uid: Uid(to_u32(get::<Option<i64>>(r, "uid")?.unwrap_or(-1))?),
        },
        "maildir" => Origin::Maildir {
            mailbox: mailbox()?,
            key: get::<Option<String>>(r, "maildir_key")?.unwrap_or_default(),
        },
        "file" => Origin::File {
            path: PathBuf::from(get::<Option<String>>(r, "file_path")?.unwrap_or_default()),
            index: get::<Option<i64>>(r, "file_index")?.map(|i| usize::try_from(i).unwrap_or(0)),
        },
        k => return Err(StoreError::Corrupt(format!("origin kind `{k}`"))),
    };
    Ok(MessageInfo {
        id: MessageId(get(r, "id")?),
        sha256: Sha256(get(r, "sha256")?),
        size: u64::try_from(get::<i64>(r, "size")?).unwrap_or(0),
        archive_path: get(r, "archive_path")?,
        origin,
        header_message_id: get(r, "header_message_id")?,
        from: get(r, "from_addr")?,
        from_name: get(r, "from_name")?,
        subject: get(r, "subject")?,
        date: get(r, "date_header")?,
        received_at: opt_from_ts(get(r, "received_at")?)?,
        arrived_at: opt_from_ts(get(r, "arrived_at")?)?,
        auto_generated: get(r, "auto_generated")?,
        parse_status: get(r, "parse_status")?,
        ack_reason: get(r, "ack_reason")?,
        body_excerpt: get(r, "body_excerpt")?,
        stored_at: from_ts(get(r, "stored_at")?)?,
    })
}

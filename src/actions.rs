//! What baosong does, as library functions: record a message with its ack,
//! enqueue reminders and the digest, build the status and the export,
//! assign a message to a unit, pause reminders, reprocess. The daemon's
//! tasks and the command line call the same functions.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{AfterProcessing, CampaignConfig, Config, ConfigError, DeadlineConfig};
use crate::directory::{Directory, Lookup, Organisation};
use crate::export::{self, ExportColumn, ExportData, ExportError, ExportForm, ExportRecord};
use crate::extract::{BACKGROUND_NICE, Extractor, InProcess};
use crate::fold::clean_line;
use crate::mailcmd::Item;
use crate::model::{Analysis, Origin, Problem, ProblemCode, RawMessage};
use crate::outbound::compose::{self, ComposeError, Stamp};
use crate::outbound::data::Snapshot;
use crate::outbound::{
    AttentionItem, AttentionKind, DigestCampaign, DigestChanges, DigestData, DigestDeadline,
    MailKind, ReceivedItem, TemplateError, Templates, data,
};
use crate::pipeline::{self, Context};
use crate::replies::{self, Handled};
use crate::schedule;
use crate::status::{self, DeadlineStatus, Sent};
use crate::store::{
    AckVerdict, Archive, Durability, Lease, Marked, MessageId, NewOutbox, OutboxId, OutboxKind,
    OutboxRow, Recorded, Store, StoreError, SubmissionInfo,
};
use crate::types::{CampaignId, DeadlineId, DocForm, MailboxName, OrgId};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("building the spreadsheet failed: {0}")]
    Export(#[from] ExportError),
    /// The caller asked for something that does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl ActionError {
    /// Whether the same call may succeed later: only the store's passing
    /// causes (busy or unreachable database, full disk). A template that
    /// fails on a message's data, or a message lettre refuses, fails again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => e.is_transient(),
            Self::Config(_)
            | Self::Template(_)
            | Self::Compose(_)
            | Self::Export(_)
            | Self::NotFound(_) => false,
        }
    }
}

/// Everything the actions share. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub directory: Arc<Directory>,
    pub store: Store,
    pub archive: Archive,
    pub templates: Arc<Templates>,
    pub clock: Arc<dyn Clock>,
    /// Who reads attachments: contained workers in the daemon.
    pub extractor: Arc<dyn Extractor>,
}

/// One deadline as read for the digest and the workbook.
struct LoadedDeadline<'a> {
    campaign: &'a CampaignConfig,
    deadline: &'a DeadlineConfig,
    subs: Vec<SubmissionInfo>,
    status: DeadlineStatus,
    table: DigestDeadline,
}

/// The addresses coordinators have tied to units, as matching reads them.
pub type Learned = Arc<Vec<(String, OrgId)>>;

/// A message archived and analysed, not yet recorded.
#[derive(Debug)]
pub struct Prepared {
    pub analysis: Analysis,
    /// When it was taken in: the analysis and the row share this time.
    pub now: DateTime<Utc>,
}

impl Services {
    /// Opens the store and the archive and loads the templates: every
    /// startup error (database, template file and line) surfaces here.
    /// Attachments are read in process until [`Self::with_extractor`].
    pub async fn open(
        config: Config,
        directory: Directory,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ActionError> {
        let store = Store::open(&config.store.url()?).await?;
        let archive = Archive::new(config.store.archive.clone());
        let templates = Templates::load(config.smtp.templates.as_deref())?;
        Ok(Self {
            config: Arc::new(config),
            directory: Arc::new(directory),
            store,
            archive,
            templates: Arc::new(templates),
            clock,
            extractor: Arc::new(InProcess),
        })
    }

    pub fn with_extractor(mut self, extractor: Arc<dyn Extractor>) -> Self {
        self.extractor = extractor;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// One message: raw bytes made durable first, then analysed (bounded in
    /// time), then recorded with its acknowledgement in one transaction.
    /// A coordinator's reply with commands is obeyed and answered instead
    /// ([`crate::replies`]); one that fails the checks is stored as ordinary
    /// mail, unanswered, for a person to see.
    pub async fn process(&self, raw: &RawMessage) -> Result<Recorded, ActionError> {
        let prepared = self
            .prepare(raw, Durability::Synced, self.learned().await?)
            .await?;
        Ok(self
            .commit(raw, prepared, None, Durability::Synced)
            .await?
            .0)
    }

    /// The first half of [`Self::process`]: the raw bytes archived and the
    /// message analysed. Several messages may be prepared at once; they are
    /// committed one by one, in order. With [`Durability::Deferred`] the
    /// bytes are on disk after [`Self::sync`], and the caller must call it
    /// before it flags the message. `learned` is [`Self::learned`], read
    /// once for messages prepared together.
    pub async fn prepare(
        &self,
        raw: &RawMessage,
        archived: Durability,
        learned: Learned,
    ) -> Result<Prepared, ActionError> {
        self.archive.put(raw, archived).await?;
        let now = self.now();
        let analysis = self.analyse_bounded(raw, learned, now).await;
        Ok(Prepared { analysis, now })
    }

    /// The second half of [`Self::process`]: a coordinator's commands obeyed,
    /// or the ack (which sees every message committed before this one) and
    /// the row, in one transaction. With `lease`, the ack is stored as being
    /// sent under it and returned, for the caller to send. With
    /// [`Durability::Deferred`], the caller must [`Store::sync`] before it
    /// tells anyone (the mail server, the sender) that the message is kept.
    /// A coordinator's commands are always synced.
    pub async fn commit(
        &self,
        raw: &RawMessage,
        prepared: Prepared,
        lease: Option<&Lease>,
        durability: Durability,
    ) -> Result<(Recorded, Option<OutboxRow>), ActionError> {
        let refused = match self.command_reply(raw).await? {
            Handled::Obeyed(recorded) => return Ok((recorded, None)),
            Handled::Refused(why) => Some(why),
            Handled::Ordinary => None,
        };
        let Prepared { mut analysis, now } = prepared;
        if let Some(why) = &refused {
            replies::not_obeyed(&mut analysis, why);
        }
        let ack = async {
            if refused.is_some() {
                return Ok(AckVerdict::default());
            }
            self.ack_for(&analysis, now).await
        };
        self.store
            .record_leasing_ack(raw, &analysis, ack, lease, durability, now)
            .await
    }

    /// Puts everything prepared and committed [`Durability::Deferred`]
    /// before this call on disk: the archive's files, then the database.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.archive.sync().await?;
        self.store.sync_committed().await
    }

    /// Whether a message deferred into the archive is offered again if a
    /// power cut loses its file: every source but an IMAP folder read with
    /// `after = "keep"` offers what it has not flagged or moved, and there
    /// the stored cursor, which may reach the disk first, moves past it.
    pub fn archive_durability(&self, origin: &Origin) -> Durability {
        let Origin::Imap { mailbox, .. } = origin else {
            return Durability::Deferred;
        };
        let keeps = self
            .config
            .mailboxes
            .iter()
            .any(|m| &m.name == mailbox && m.after == AfterProcessing::Keep);
        if keeps {
            Durability::Synced
        } else {
            Durability::Deferred
        }
    }

    /// How many messages are worth preparing at once: as many as files can
    /// be read in parallel.
    pub fn parallelism(&self) -> usize {
        self.extractor.parallelism().max(1)
    }

    /// Records a message that [`Self::process`] could not, for a reason a
    /// retry cannot fix: headers only, the problem `processing_failed`, no
    /// ack, and listed for the coordinators. The raw bytes are archived
    /// already (or the archive itself was the failure, which is logged).
    pub async fn record_failure(
        &self,
        raw: &RawMessage,
        reason: &str,
    ) -> Result<Recorded, ActionError> {
        let now = self.now();
        let ctx = Context {
            config: &self.config,
            directory: &self.directory,
            learned: &[],
            extractor: &InProcess,
            now,
        };
        let mut analysis = pipeline::headers_only(
            raw,
            &ctx,
            Problem::new(
                ProblemCode::ProcessingFailed,
                "邮件已收到并保存，但处理时出错，工作人员将人工处理。",
            ),
        );
        analysis.ack.send = false;
        analysis.ack.held = false;
        analysis.ack.reason = format!("not answered: processing failed ({reason})");
        analysis.attention = Some(format!("邮件已保存但处理出错：{reason}"));
        Ok(self.store.record(raw, &analysis, None, now).await?)
    }

    /// The addresses coordinators have tied to units (`baosong assign`),
    /// which matching reads.
    pub async fn learned(&self) -> Result<Learned, ActionError> {
        Ok(Arc::new(self.store.learned_addresses().await?))
    }

    /// Runs the pipeline on a blocking thread with a time budget; a message
    /// that overruns it (or panics a parser) is still analysed from its
    /// headers, marked, and answered.
    pub async fn analyse_bounded(
        &self,
        raw: &RawMessage,
        learned: Learned,
        now: DateTime<Utc>,
    ) -> Analysis {
        let this = self.clone();
        let owned = raw.clone();
        let learned_for_job = learned.clone();
        let job = background(move || {
            let ctx = Context {
                config: &this.config,
                directory: &this.directory,
                learned: &learned_for_job,
                extractor: this.extractor.as_ref(),
                now,
            };
            pipeline::analyse(&owned, &ctx)
        });
        // Each file has its own extraction budget; the whole message gets a few.
        let budget = Duration::from_secs(self.config.limits.extract_timeout_secs * 4);
        let problem = match tokio::time::timeout(budget, job).await {
            Ok(Ok(a)) => return a,
            Ok(Err(e)) => {
                error!(origin = raw.origin.display(), error = %e, "analysis panicked; recording the message from its headers");
                pipeline::unreadable()
            }
            Err(_) => {
                warn!(
                    origin = raw.origin.display(),
                    budget_secs = budget.as_secs(),
                    "analysis overran its time budget; recording the message from its headers"
                );
                Problem::new(
                    ProblemCode::ProcessingTimeout,
                    "邮件中的附件过多或过大，未能在规定时间内读完，已保存原件，工作人员将人工处理。",
                )
            }
        };
        let ctx = Context {
            config: &self.config,
            directory: &self.directory,
            learned: &learned,
            extractor: &InProcess,
            now,
        };
        pipeline::headers_only(raw, &ctx, problem)
    }

    /// The acknowledgement for a message, composed now so its Message-ID and
    /// bytes are fixed before the row exists. None goes when the analysis
    /// says so (and why), or, with the reason to record instead, when a
    /// rate limit is reached. Reads only what was committed before: the
    /// message's own rows may be being written meanwhile.
    async fn ack_for(
        &self,
        analysis: &Analysis,
        now: DateTime<Utc>,
    ) -> Result<AckVerdict, ActionError> {
        if !analysis.ack.send {
            return Ok(AckVerdict::default());
        }
        let Some(to) = analysis.ack.to.clone() else {
            return Ok(AckVerdict::default());
        };
        let smtp = &self.config.smtp;
        let since = now - chrono::Duration::hours(1);
        let counts = self
            .store
            .ack_counts(to.as_str(), since, smtp.ack_per_recipient_per_hour)
            .await?;
        let (to_them, to_all) = (counts.to_address, counts.to_anyone);
        let limit = if to_them >= smtp.ack_per_recipient_per_hour {
            Some(format!(
                "{to_them} acks to {to} in the last hour (limit {})",
                smtp.ack_per_recipient_per_hour
            ))
        } else if to_all >= smtp.ack_per_hour {
            Some(format!(
                "{to_all} acks in the last hour (limit smtp.ack_per_hour = {})",
                smtp.ack_per_hour
            ))
        } else {
            None
        };
        if let Some(why) = limit {
            warn!(%to, why, "ack rate limit reached; no ack");
            return Ok(AckVerdict {
                row: None,
                reason: Some(format!("rate limit: {why}")),
            });
        }
        let deadline = self.deadline_of(analysis.campaign.as_ref(), analysis.deadline.as_ref());
        let unit = match (deadline, &analysis.organisation.id) {
            (Some((c, d)), Some(org)) => {
                let earlier = self.store.unit_sent(&c.id, &d.id, org).await?;
                let this = Sent::of_analysis(analysis, now);
                Some(status::unit_status(d, org, earlier.iter().chain([&this])))
            }
            _ => None,
        };
        let data = data::ack(&self.config, analysis, to, deadline, unit.as_ref(), now);
        let message_id = compose::new_message_id(&smtp.message_id_domain, MailKind::Ack, now);
        let msg = compose::ack(
            &self.templates,
            &data,
            &self.stamp(analysis.ack.from_mailbox.as_ref(), &message_id, now),
        )?;
        Ok(AckVerdict {
            row: Some(outbox_row(
                OutboxKind::Ack,
                &msg,
                message_id,
                format!("ack:{}", analysis.sha256),
            )),
            reason: None,
        })
    }

    /// From, Reply-To, Message-ID and Date of a mail sent for `mailbox`
    /// (its `from`, else `[smtp] from`).
    pub(crate) fn stamp<'a>(
        &'a self,
        mailbox: Option<&MailboxName>,
        message_id: &'a str,
        now: DateTime<Utc>,
    ) -> Stamp<'a> {
        let smtp = &self.config.smtp;
        let from = mailbox
            .and_then(|m| self.config.mailbox(m))
            .and_then(|m| m.from.as_ref())
            .unwrap_or(&smtp.from);
        Stamp {
            from: &from.0,
            reply_to: smtp.reply_to.as_ref().map(|r| &r.0),
            message_id,
            date: now,
        }
    }

    fn deadline_of(
        &self,
        campaign: Option<&CampaignId>,
        deadline: Option<&DeadlineId>,
    ) -> Option<(&CampaignConfig, &DeadlineConfig)> {
        let c = self.config.campaign(campaign?)?;
        Some((c, c.deadline(deadline?)?))
    }

    /// Organisations a campaign addresses: those of its categories, or all.
    pub fn addressed(&self, c: &CampaignConfig) -> Vec<&Organisation> {
        self.directory
            .all()
            .iter()
            .filter(|o| c.categories.is_empty() || c.categories.contains(&o.category))
            .collect()
    }

    /// Every addressed unit's status for one deadline.
    pub async fn deadline_status(
        &self,
        c: &CampaignConfig,
        d: &DeadlineConfig,
    ) -> Result<DeadlineStatus, ActionError> {
        let subs = self.store.submissions_for(&c.id, &d.id).await?;
        Ok(self.status_of(c, d, &subs))
    }

    fn status_of(
        &self,
        c: &CampaignConfig,
        d: &DeadlineConfig,
        subs: &[SubmissionInfo],
    ) -> DeadlineStatus {
        let sent: Vec<(OrgId, Sent)> = subs
            .iter()
            .filter_map(|s| Some((s.org.clone()?, s.sent())))
            .collect();
        let orgs = self.addressed(c);
        status::deadline_status(d, orgs.iter().map(|o| &o.id), &sent)
    }

    /// One deadline's table as the digest, `status` and the export show it.
    pub async fn deadline_table(
        &self,
        c: &CampaignConfig,
        d: &DeadlineConfig,
    ) -> Result<DigestDeadline, ActionError> {
        let status = self.deadline_status(c, d).await?;
        self.table_of(c, d, &status).await
    }

    async fn table_of(
        &self,
        c: &CampaignConfig,
        d: &DeadlineConfig,
        status: &DeadlineStatus,
    ) -> Result<DigestDeadline, ActionError> {
        let mut by_form = BTreeMap::new();
        for form in &self.config.forms {
            let values: Vec<_> = self
                .store
                .records_for_form(&c.id, &d.id, &form.id)
                .await?
                .into_iter()
                .map(|r| (r.key, r.value))
                .collect();
            by_form.insert(form.id.clone(), values);
        }
        let totals = data::totals(&self.config, d, |id| {
            by_form.get(id).cloned().unwrap_or_default()
        });
        Ok(data::deadline_table(c, d, status, &self.directory, totals))
    }

    /// Every deadline of every campaign, in config order, each read from
    /// the store once: the digest and the workbook sent with it are made
    /// from these, so they say the same thing about each unit even when
    /// mail is stored meanwhile (and a deadline is not read four times).
    async fn load_deadlines(&self) -> Result<Vec<LoadedDeadline<'_>>, ActionError> {
        let mut loaded = Vec::new();
        for c in &self.config.campaigns {
            for d in &c.deadlines {
                let subs = self.store.submissions_for(&c.id, &d.id).await?;
                let status = self.status_of(c, d, &subs);
                let table = self.table_of(c, d, &status).await?;
                loaded.push(LoadedDeadline {
                    campaign: c,
                    deadline: d,
                    subs,
                    status,
                    table,
                });
            }
        }
        Ok(loaded)
    }

    /// Enqueues the reminder rounds due at `now`: one mail per unit that
    /// still misses something or must redo something, at most once per
    /// (unit, deadline, offset) ever.
    pub async fn enqueue_reminders(&self, now: DateTime<Utc>) -> Result<usize, ActionError> {
        let config = &self.config;
        let paused = self.store.paused_orgs().await?;
        let mut count = 0;
        for round in schedule::reminder_rounds(config, now) {
            let Some((c, d)) = self.deadline_of(Some(&round.campaign), Some(&round.deadline))
            else {
                continue;
            };
            let status = self.deadline_status(c, d).await?;
            for unit in &status.units {
                let Some(org) = self.directory.get(&unit.org) else {
                    continue;
                };
                if paused.contains(&org.id) {
                    continue;
                }
                let Some(reminder) = data::reminder(c, d, org, unit, now) else {
                    continue;
                };
                let message_id = compose::new_message_id(
                    &config.smtp.message_id_domain,
                    MailKind::Reminder,
                    now,
                );
                let msg = compose::reminder(
                    &self.templates,
                    &reminder,
                    &self.stamp(c.mailboxes.first(), &message_id, now),
                )?;
                let key = format!(
                    "reminder:{}:{}:{}:{}",
                    org.id, c.id, d.id, round.days_before
                );
                let row = outbox_row(OutboxKind::Reminder, &msg, message_id, key);
                if self.store.enqueue(row, now).await?.is_some() {
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// The digest's content: what needs a person first, then what changed
    /// since the last digest, then the deadlines that matter now.
    pub async fn digest_data(&self, now: DateTime<Utc>) -> Result<DigestData, ActionError> {
        let loaded = self.load_deadlines().await?;
        Ok(self.digest_and_snapshot(now, &loaded).await?.0)
    }

    /// The digest, and what it says about each unit for the next one.
    async fn digest_and_snapshot(
        &self,
        now: DateTime<Utc>,
        loaded: &[LoadedDeadline<'_>],
    ) -> Result<(DigestData, Snapshot), ActionError> {
        let config = &self.config;
        let before = match self.store.last_digest().await? {
            Some((at, json)) => match serde_json::from_str::<Snapshot>(&json) {
                Ok(snapshot) => Some((at, snapshot)),
                Err(e) => {
                    warn!(error = %e, "the last digest's snapshot cannot be read; this digest reports no changes");
                    None
                }
            },
            None => None,
        };
        let mut snapshot = Snapshot::default();
        let mut campaigns = Vec::new();
        for c in &config.campaigns {
            let mut deadlines = Vec::new();
            let mut earlier = Vec::new();
            for l in loaded.iter().filter(|l| std::ptr::eq(l.campaign, c)) {
                let d = l.deadline;
                snapshot.units.extend(data::unit_snapshots(c, d, &l.status));
                if data::is_recent(d, now) {
                    deadlines.push(l.table.clone());
                } else {
                    earlier.push(data::deadline_line(&l.table));
                }
            }
            campaigns.push(DigestCampaign {
                name: c.name.clone(),
                deadlines,
                earlier,
            });
        }
        let mut attention = self.attention_items().await?;
        snapshot.attention = attention.iter().map(|a| a.number.clone()).collect();
        for item in &mut attention {
            item.new = before
                .as_ref()
                .is_none_or(|(_, b)| !b.attention.contains(&item.number));
        }
        let changes = match &before {
            Some((since, prev)) => {
                let (completed, problems) =
                    data::unit_changes(prev, &snapshot, config, &self.directory);
                Some(DigestChanges {
                    since: data::local(config.schedule.timezone.0, *since),
                    received: self.received_since(*since).await?,
                    completed,
                    problems,
                })
            }
            None => None,
        };
        let digest = data::digest(config, campaigns, attention, changes, now);
        Ok((digest, snapshot))
    }

    /// 需处理: stored mail a person must look at (with its unreadable
    /// files), then mail we could not send; oldest first.
    async fn attention_items(&self) -> Result<Vec<AttentionItem>, ActionError> {
        /// Problems that mean a file could not be read at all.
        const UNREADABLE: &[ProblemCode] = &[
            ProblemCode::FileUnreadable,
            ProblemCode::FileEncrypted,
            ProblemCode::EncryptedFile,
            ProblemCode::FileTimeout,
            ProblemCode::ScanUnreadable,
            ProblemCode::ScanTimeout,
            ProblemCode::MediaUnreadable,
            ProblemCode::PhotoUnreadable,
            ProblemCode::VideoUnreadable,
            ProblemCode::ArchiveCorrupt,
            ProblemCode::ArchiveEncrypted,
            ProblemCode::ArchiveUnsupported,
        ];
        let tz = self.config.schedule.timezone.0;
        let message =
            |number: MessageId, from: Option<&str>, subject: Option<&str>, at| AttentionItem {
                number: Item::Message(number.0).to_string(),
                kind: AttentionKind::Message,
                who: clean_line(from.unwrap_or("?"), 80),
                subject: clean_line(subject.unwrap_or(""), data::QUOTE_CHARS),
                at: data::local(tz, at),
                reason: String::new(),
                new: false,
            };
        let mut items: BTreeMap<MessageId, AttentionItem> = BTreeMap::new();
        for m in self.store.attention().await? {
            let mut item = message(
                m.message,
                m.from.as_deref(),
                m.subject.as_deref(),
                m.arrived_at,
            );
            item.reason = m.reason;
            items.insert(m.message, item);
        }
        let codes: Vec<&str> = UNREADABLE.iter().map(|c| c.as_str()).collect();
        let mut unreadable: BTreeMap<MessageId, Vec<String>> = BTreeMap::new();
        for f in self.store.unreadable_files(&codes).await? {
            items.entry(f.message).or_insert_with(|| {
                message(
                    f.message,
                    f.from.as_deref(),
                    f.subject.as_deref(),
                    f.arrived_at,
                )
            });
            unreadable.entry(f.message).or_default().push(f.problem);
        }
        for (id, problems) in unreadable {
            if let Some(item) = items.get_mut(&id) {
                let files = format!("附件无法读取：{}", problems.join("；"));
                item.reason = if item.reason.is_empty() {
                    files
                } else {
                    format!("{}；{files}", item.reason)
                };
                item.reason = clean_line(&item.reason, 300);
            }
        }
        let mut out: Vec<AttentionItem> = items.into_values().collect();
        for f in self.store.failed_sends().await? {
            out.push(AttentionItem {
                number: Item::Send(f.id.0).to_string(),
                kind: AttentionKind::Send,
                who: f.to.join(", "),
                subject: clean_line(&f.subject, data::QUOTE_CHARS),
                at: data::local(tz, f.created_at),
                reason: clean_line(&format!("发送失败：{}", f.error), 300),
                new: false,
            });
        }
        out.sort_by_key(|a| a.at);
        Ok(out)
    }

    /// Mail that reached a unit's record since `since`, for the digest.
    async fn received_since(&self, since: DateTime<Utc>) -> Result<Vec<ReceivedItem>, ActionError> {
        let mut out = Vec::new();
        for r in self.store.received_since(since).await? {
            let campaign = self.config.campaign(&r.campaign);
            let mut files: Vec<String> = Vec::new();
            for (kind, form) in &r.files {
                let label = match form {
                    DocForm::Electronic | DocForm::Scan => {
                        format!("{}{}", kind.label_zh(), form.label_zh())
                    }
                    DocForm::Media | DocForm::Other => kind.label_zh().to_owned(),
                };
                if !files.contains(&label) {
                    files.push(label);
                }
            }
            out.push(ReceivedItem {
                number: r.message.0,
                org_name: self
                    .directory
                    .get(&r.org)
                    .map_or_else(|| r.org.to_string(), |o| o.name.clone()),
                deadline_name: campaign
                    .and_then(|c| c.deadline(&r.deadline))
                    .map_or_else(|| r.deadline.to_string(), DeadlineConfig::display_name),
                at: data::local(data::zone(&self.config, campaign), r.arrived_at),
                files,
                late: r.late,
            });
        }
        Ok(out)
    }

    /// Enqueues the coordinators' digest for the fire time `at` (once per
    /// fire time, also with several instances), and keeps what it says for
    /// the next one. False when nobody is to get it or it was enqueued before.
    pub async fn enqueue_digest(&self, at: DateTime<Utc>) -> Result<bool, ActionError> {
        let config = &self.config;
        if config.schedule.coordinators.is_empty() {
            return Ok(false);
        }
        let now = self.now();
        let loaded = self.load_deadlines().await?;
        let (data, snapshot) = self.digest_and_snapshot(now, &loaded).await?;
        let xlsx = export::workbook(&self.export_from(loaded).await?)?;
        let message_id =
            compose::new_message_id(&config.smtp.message_id_domain, MailKind::Digest, now);
        let mailbox = config.campaigns.first().and_then(|c| c.mailboxes.first());
        let msg = compose::digest(
            &self.templates,
            &data,
            Some(&xlsx),
            &self.stamp(mailbox, &message_id, now),
        )?;
        let key = format!("digest:{}", at.to_rfc3339());
        let snapshot = serde_json::to_string(&snapshot)
            .map_err(|e| StoreError::Corrupt(format!("digest snapshot: {e}")))?;
        Ok(self
            .store
            .enqueue_digest(
                outbox_row(OutboxKind::Digest, &msg, message_id, key),
                &snapshot,
                now,
            )
            .await?
            .is_some())
    }

    /// Enqueues what a one-shot run finds due at `now`: the reminders whose
    /// window holds it, and the digest of the last fire time if that was
    /// not enqueued yet.
    pub async fn enqueue_due(&self, now: DateTime<Utc>) -> Result<(usize, bool), ActionError> {
        let reminders = self.enqueue_reminders(now).await?;
        let schedule = &self.config.schedule;
        let digest = match schedule::last_fire(schedule, &schedule.digest_cron, now) {
            Some(at) => self.enqueue_digest(at).await?,
            None => false,
        };
        Ok((reminders, digest))
    }

    /// Everything for the consolidated workbook.
    pub async fn export_data(&self) -> Result<ExportData, ActionError> {
        let loaded = self.load_deadlines().await?;
        self.export_from(loaded).await
    }

    async fn export_from(
        &self,
        loaded: Vec<LoadedDeadline<'_>>,
    ) -> Result<ExportData, ActionError> {
        let config = &self.config;
        let mut forms = Vec::new();
        let mut status = Vec::new();
        for l in loaded {
            let (c, d, subs) = (l.campaign, l.deadline, l.subs);
            let tz = c.tz();
            status.push(l.table);
            for form in config
                .forms
                .iter()
                .filter(|f| d.requires.iter().any(|r| r.accepts(f.kind)))
            {
                let records = self.store.records_for_form(&c.id, &d.id, &form.id).await?;
                if records.is_empty() {
                    continue;
                }
                let rows = export::rows(records.into_iter().map(|r| {
                    let sub = subs.iter().find(|s| s.id == r.submission);
                    ExportRecord {
                        org_name: r
                            .org
                            .as_ref()
                            .and_then(|o| self.directory.get(o))
                            .map(|o| o.name.clone())
                            .unwrap_or_default(),
                        document: r.document.0,
                        row: r.row,
                        source_file: sub
                            .and_then(|s| s.documents.iter().find(|doc| doc.id == r.document))
                            .map(|doc| doc.path.clone())
                            .unwrap_or_default(),
                        received_at: data::local(
                            tz,
                            sub.map_or_else(|| self.now(), |s| s.arrived_at),
                        ),
                        key: r.key,
                        value: r.value,
                    }
                }));
                forms.push(ExportForm {
                    name: format!("{}-{}", form.name, d.display_name()),
                    layout: form.layout,
                    columns: ExportColumn::of_form(form),
                    rows,
                });
            }
        }
        Ok(ExportData { forms, status })
    }

    /// A coordinator says which unit sent a message (`unit`: its id, name
    /// or alias): the message moves to that unit, the sender's address is
    /// learned, the message leaves 需处理, and an ack that was held back
    /// goes out now.
    pub async fn assign(
        &self,
        message: MessageId,
        unit: &str,
        by: &str,
    ) -> Result<Outcome, ActionError> {
        let org = match self.unit(unit) {
            Ok(org) => org,
            Err(no) => return Ok(no),
        };
        let Some(detail) = self.store.show_message(message).await? else {
            return Ok(Outcome::no(format!("没有编号为 #{message} 的邮件")));
        };
        if detail.submission.is_none() {
            return Ok(Outcome::no(format!(
                "#{message} 是另一封已收邮件的副本，请指派原邮件"
            )));
        }
        let now = self.now();
        let assigned = self.store.assign(message, &org.id, by, now).await?;
        let mut said = format!("#{message} 已指派给{}（{}）", org.name, org.id);
        if let Some(from) = detail.message.from.as_deref().filter(|f| !f.is_empty()) {
            said.push_str(&format!("，已记住发件地址 {from}"));
        }
        if assigned.ack_held && self.release_ack(message).await? {
            said.push_str("，回执随即发出");
        }
        info!(message = %message, org = %org.id, by, "message assigned");
        Ok(Outcome::yes(said))
    }

    /// The unit a person wrote, or the answer that says it was not found.
    fn unit(&self, text: &str) -> Result<&Organisation, Outcome> {
        let names = |orgs: &[&Organisation]| {
            orgs.iter()
                .map(|o| format!("{}（{}）", o.name, o.id))
                .collect::<Vec<_>>()
                .join("、")
        };
        match self
            .directory
            .lookup(text, &self.config.organisations.synonyms)
        {
            Lookup::Found(org) => Ok(org),
            Lookup::Ambiguous(orgs) => Err(Outcome::no(format!(
                "“{text}”可指几个单位：{}，请写全称或编号",
                names(&orgs)
            ))),
            Lookup::NotFound(near) if near.is_empty() => Err(Outcome::no(format!(
                "单位名录中没有“{text}”，请写单位全称、简称或编号"
            ))),
            Lookup::NotFound(near) => Err(Outcome::no(format!(
                "单位名录中没有“{text}”，最接近的是：{}",
                names(&near)
            ))),
        }
    }

    /// Stops reminders to a unit (it told us by phone, say).
    pub async fn pause_reminders(&self, unit: &str) -> Result<Outcome, ActionError> {
        let org = match self.unit(unit) {
            Ok(org) => org,
            Err(no) => return Ok(no),
        };
        self.store.pause_reminders(&org.id, self.now()).await?;
        Ok(Outcome::yes(format!(
            "已暂停给{}（{}）的提醒",
            org.name, org.id
        )))
    }

    pub async fn resume_reminders(&self, unit: &str) -> Result<Outcome, ActionError> {
        let org = match self.unit(unit) {
            Ok(org) => org,
            Err(no) => return Ok(no),
        };
        self.store.resume_reminders(&org.id).await?;
        Ok(Outcome::yes(format!(
            "已恢复给{}（{}）的提醒",
            org.name, org.id
        )))
    }

    /// A message needs nobody (spam, not a submission), or a failed send is
    /// known: either leaves 需处理.
    pub async fn ignore(&self, item: Item, by: &str) -> Result<Outcome, ActionError> {
        let now = self.now();
        let marked = match item {
            Item::Message(n) => self.store.ignore_message(MessageId(n), now).await?,
            Item::Send(n) => self.store.dismiss_send(OutboxId(n), by, now).await?,
        };
        Ok(match (marked, item) {
            (Marked::Now, _) => Outcome::yes(format!("{item} 已忽略，不再列入需处理")),
            (Marked::Before, _) => Outcome::yes(format!("{item} 已不在需处理中")),
            (Marked::Missing, Item::Message(_)) => Outcome::no(format!("没有编号为 {item} 的邮件")),
            (Marked::Missing, Item::Send(_)) => {
                Outcome::no(format!("没有编号为 {item} 的发送记录"))
            }
            (Marked::NotFailed, _) => Outcome::no(format!("{item} 没有发送失败，无需忽略")),
        })
    }

    /// Reads one stored message again with the current directory, config
    /// and forms. Sends nothing.
    pub async fn reprocess_message(&self, message: MessageId) -> Result<Outcome, ActionError> {
        let Some(detail) = self.store.show_message(message).await? else {
            return Ok(Outcome::no(format!("没有编号为 #{message} 的邮件")));
        };
        if detail.submission.is_none() {
            return Ok(Outcome::no(format!(
                "#{message} 是另一封已收邮件的副本，请重新识别原邮件"
            )));
        }
        let m = detail.message;
        let raw = RawMessage::new(self.archive.read(&m.sha256).await?, m.origin, m.received_at);
        let now = self.now();
        let mut analysis = self.analyse_bounded(&raw, self.learned().await?, now).await;
        if m.ack_reason == replies::COMMAND_MAIL {
            replies::mark_command_mail(&mut analysis);
        }
        self.store.update_analysis(message, &analysis).await?;
        let unit = analysis
            .organisation
            .name
            .as_deref()
            .unwrap_or("仍未能确认单位");
        let deadline = self
            .deadline_of(analysis.campaign.as_ref(), analysis.deadline.as_ref())
            .map(|(_, d)| format!("，{}", d.display_name()))
            .unwrap_or_default();
        let still = analysis
            .attention
            .as_deref()
            .map(|a| format!("；仍需处理：{a}"))
            .unwrap_or_default();
        Ok(Outcome::yes(format!(
            "#{message} 已重新识别：{unit}{deadline}{still}"
        )))
    }

    /// The digest with the spreadsheet, enqueued for the coordinators now.
    pub async fn digest_now(&self) -> Result<Outcome, ActionError> {
        let coordinators = &self.config.schedule.coordinators;
        if coordinators.is_empty() {
            return Ok(Outcome::no(
                "没有配置协调人（[schedule] coordinators），汇总邮件无人可发".into(),
            ));
        }
        Ok(if self.enqueue_digest(self.now()).await? {
            Outcome::yes(format!(
                "汇总邮件（附汇总表）已排队发给 {}",
                coordinators.join("、")
            ))
        } else {
            Outcome::no("这一时刻的汇总邮件已排队过".into())
        })
    }

    /// Composes and enqueues the ack of a stored message that was held back.
    async fn release_ack(&self, message: MessageId) -> Result<bool, ActionError> {
        let Some(detail) = self.store.show_message(message).await? else {
            return Ok(false);
        };
        let m = detail.message;
        let raw = RawMessage::new(self.archive.read(&m.sha256).await?, m.origin, m.received_at);
        let now = self.now();
        let analysis = self.analyse_bounded(&raw, self.learned().await?, now).await;
        let decided = self.ack_for(&analysis, now).await?;
        let Some(mut ack) = decided.row else {
            let reason = decided.reason.as_ref().unwrap_or(&analysis.ack.reason);
            info!(message = %message, reason = %reason, "held ack not sent after assignment");
            return Ok(false);
        };
        ack.related_message = Some(message);
        Ok(self.store.enqueue(ack, now).await?.is_some())
    }

    /// Reads every stored message again with the current config and forms.
    /// Sends nothing.
    pub async fn reprocess(&self) -> Result<usize, ActionError> {
        let items = self.store.messages_for_reprocess().await?;
        let commands = self
            .store
            .messages_with_ack_reason(replies::COMMAND_MAIL)
            .await?;
        for item in &items {
            let raw = RawMessage::new(
                self.archive.read(&item.sha256).await?,
                item.origin.clone(),
                item.received_at,
            );
            let now = self.now();
            let mut analysis = self.analyse_bounded(&raw, self.learned().await?, now).await;
            if commands.contains(&item.id) {
                replies::mark_command_mail(&mut analysis);
            }
            self.store.update_analysis(item.id, &analysis).await?;
        }
        Ok(items.len())
    }
}

/// What a coordinator's command did, in a sentence for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Done, or there was nothing to do.
    pub ok: bool,
    pub said: String,
}

impl Outcome {
    pub fn yes(said: String) -> Self {
        Self { ok: true, said }
    }

    pub fn no(said: String) -> Self {
        Self { ok: false, said }
    }
}

/// The outbox row of a composed mail.
pub(crate) fn outbox_row(
    kind: OutboxKind,
    msg: &lettre::Message,
    message_id: String,
    key: String,
) -> NewOutbox {
    let out = compose::Outgoing::new(msg);
    NewOutbox {
        kind,
        message_id,
        envelope_from: out.envelope_from,
        to: out.recipients,
        subject: out.subject,
        raw: out.bytes,
        related_message: None,
        dedupe_key: key,
        not_before: None,
    }
}

/// Runs `f` on one of the analysis threads, at [`BACKGROUND_NICE`]: not on
/// tokio's blocking pool, whose threads would keep the lower priority for
/// the archive and outbox writes they run later (an unprivileged thread
/// cannot raise it again). Where no analysis thread can be had, `f` runs on
/// that pool at the daemon's priority. Resolves to `f`'s value, or to its
/// panic's message.
fn background<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Result<T, String>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let run = move || {
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(done.map_err(panic_message));
    };
    // Shared, so that the job is still here if no thread takes it.
    let slot = Arc::new(std::sync::Mutex::new(Some(run)));
    let theirs = slot.clone();
    let handed = analysis_threads().is_some_and(|threads| {
        // tokio panics when the OS makes no thread and the pool has none
        // left to queue the job for; the job then runs on the daemon's pool.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(threads.spawn_blocking(move || {
                let run = theirs.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(run) = run {
                    run();
                }
            }))
        }))
        .is_ok()
    });
    if !handed {
        warn!("no thread for an analysis; it runs on the blocking pool");
        let run = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(run) = run {
            drop(tokio::task::spawn_blocking(run));
        }
    }
    async move {
        rx.await
            .map_err(|_| "the analysis ended without a result".to_owned())?
    }
}

/// The analysis threads: the blocking pool of a runtime of their own, whose
/// threads lower their priority once, when made, and wait for the next mail
/// (tokio keeps an idle one for ten seconds). A thread made for each mail
/// cost a clone, a stack faulted in anew and its teardown every time. An
/// analysis that overruns its budget keeps its thread; the next mail gets
/// another. Never dropped: a runtime may not be dropped inside another.
fn analysis_threads() -> Option<&'static tokio::runtime::Handle> {
    static THREADS: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    THREADS
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .thread_name("analysis")
                // Lowering one's own priority needs no privilege; where it
                // fails, the analyses run at the daemon's.
                .on_thread_start(|| {
                    let _ = rustix::process::nice(BACKGROUND_NICE);
                })
                .build()
                .inspect_err(|e| warn!(error = %e, "no runtime for the analysis threads"))
                .ok()
        })
        .as_ref()
        .map(tokio::runtime::Runtime::handle)
}

/// What a panic said.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        rustix::process::getpriority_process(None).unwrap()
    }

    #[tokio::test]
    async fn an_analysis_runs_below_the_commit_paths_priority() {
        let caller = own_nice();
        let theirs = background(own_nice).await.unwrap();
        assert_eq!(theirs, (caller + BACKGROUND_NICE).min(19));
        assert_eq!(own_nice(), caller, "the caller's thread keeps its priority");
    }

    #[tokio::test]
    async fn analyses_one_after_another_share_threads() {
        let mut threads = std::collections::HashSet::new();
        for _ in 0..20 {
            threads.insert(background(|| std::thread::current().id()).await.unwrap());
        }
        // Other tests' analyses run on the same pool meanwhile, so not one
        // thread: a few, where a thread per mail made 20.
        assert!(
            threads.len() <= 10,
            "{} threads for 20 analyses",
            threads.len()
        );
        assert!(!threads.contains(&std::thread::current().id()));
    }

    #[tokio::test]
    async fn a_stuck_analysis_does_not_hold_up_the_next() {
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let held = background(move || stuck.recv().is_ok());
        let next = tokio::time::timeout(Duration::from_secs(10), background(|| 7)).await;
        assert_eq!(next, Ok(Ok(7)));
        release.send(()).unwrap();
        assert_eq!(held.await, Ok(true));
    }

    #[tokio::test]
    async fn a_panicking_analysis_is_reported_with_its_message() {
        let got = background(|| -> u32 { panic!("表格解析失败") }).await;
        assert_eq!(got, Err("表格解析失败".to_owned()));
    }
}

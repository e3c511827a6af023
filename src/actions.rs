//! What baosong does, as library functions: record a message with its ack,
//! enqueue reminders and the digest, build the status and the export,
//! assign a message to a unit, pause reminders, reprocess. The daemon's
//! tasks and the command line call the same functions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{CampaignConfig, Config, ConfigError, DeadlineConfig};
use crate::directory::{Directory, Organisation};
use crate::export::{self, ExportColumn, ExportData, ExportError, ExportForm, ExportRecord};
use crate::extract::{Extractor, InProcess};
use crate::model::{Analysis, Problem, ProblemCode, RawMessage};
use crate::outbound::compose::{self, ComposeError, Stamp};
use crate::outbound::{
    DigestCampaign, DigestDeadline, FailedSend, MailKind, TemplateError, Templates, data,
};
use crate::pipeline::{self, Context};
use crate::schedule;
use crate::status::{self, DeadlineStatus, Sent};
use crate::store::{Archive, MessageId, NewOutbox, OutboxKind, Recorded, Store, StoreError};
use crate::types::{CampaignId, DeadlineId, MailboxName, OrgId};

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
    pub async fn process(&self, raw: &RawMessage) -> Result<Recorded, ActionError> {
        self.archive.put(raw.bytes.clone()).await?;
        let now = self.now();
        let learned = self.store.learned_addresses().await?;
        let mut analysis = self.analyse_bounded(raw, learned, now).await;
        let ack = self.ack_for(&mut analysis, now).await?;
        Ok(self.store.record(raw, &analysis, ack, now).await?)
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

    /// Runs the pipeline on a blocking thread with a time budget; a message
    /// that overruns it (or panics a parser) is still analysed from its
    /// headers, marked, and answered.
    pub async fn analyse_bounded(
        &self,
        raw: &RawMessage,
        learned: Vec<(String, OrgId)>,
        now: DateTime<Utc>,
    ) -> Analysis {
        let this = self.clone();
        let owned = raw.clone();
        let learned_for_job = learned.clone();
        let job = tokio::task::spawn_blocking(move || {
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
                Problem::new(
                    ProblemCode::MessageUnreadable,
                    "邮件无法解析，已保存原件，工作人员将人工处理。",
                )
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
    /// bytes are fixed before the row exists; None when none is due (the
    /// analysis says why).
    async fn ack_for(
        &self,
        analysis: &mut Analysis,
        now: DateTime<Utc>,
    ) -> Result<Option<NewOutbox>, ActionError> {
        if !analysis.ack.send {
            return Ok(None);
        }
        let Some(to) = analysis.ack.to.clone() else {
            return Ok(None);
        };
        let smtp = &self.config.smtp;
        let since = now - chrono::Duration::hours(1);
        let to_them = self.store.count_acks_to(to.as_str(), since).await?;
        let to_all = self.store.count_acks_since(since).await?;
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
            analysis.ack.send = false;
            analysis.ack.reason = format!("rate limit: {why}");
            return Ok(None);
        }
        let deadline = self.deadline_of(analysis.campaign.as_ref(), analysis.deadline.as_ref());
        let unit = match (deadline, &analysis.organisation.id) {
            (Some((c, d)), Some(org)) => {
                let mut sent: Vec<Sent> = self
                    .store
                    .unit_submissions(&c.id, &d.id, org)
                    .await?
                    .iter()
                    .map(|s| s.sent())
                    .collect();
                sent.push(Sent::of_analysis(analysis, now));
                Some(status::unit_status(d, org, &sent))
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
        Ok(Some(outbox_row(
            OutboxKind::Ack,
            &msg,
            message_id,
            format!("ack:{}", analysis.sha256),
        )))
    }

    /// From, Reply-To, Message-ID and Date of a mail sent for `mailbox`
    /// (its `from`, else `[smtp] from`).
    fn stamp<'a>(
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
        let sent: Vec<(OrgId, Sent)> = self
            .store
            .submissions_for(&c.id, &d.id)
            .await?
            .iter()
            .filter_map(|s| Some((s.org.clone()?, s.sent())))
            .collect();
        let orgs = self.addressed(c);
        Ok(status::deadline_status(
            d,
            orgs.iter().map(|o| &o.id),
            &sent,
        ))
    }

    /// One deadline's table as the digest, `status` and the export show it.
    pub async fn deadline_table(
        &self,
        c: &CampaignConfig,
        d: &DeadlineConfig,
    ) -> Result<DigestDeadline, ActionError> {
        let status = self.deadline_status(c, d).await?;
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
        Ok(data::deadline_table(c, d, &status, &self.directory, totals))
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

    /// The digest's content: what needs a person first, then every
    /// deadline's matrix, then failed sends.
    pub async fn digest_data(
        &self,
        now: DateTime<Utc>,
    ) -> Result<crate::outbound::DigestData, ActionError> {
        let config = &self.config;
        let mut campaigns = Vec::new();
        for c in &config.campaigns {
            let mut deadlines = Vec::new();
            for d in &c.deadlines {
                deadlines.push(self.deadline_table(c, d).await?);
            }
            campaigns.push(DigestCampaign {
                name: c.name.clone(),
                deadlines,
            });
        }
        let tz = config.schedule.timezone.0;
        let attention = self
            .store
            .attention()
            .await?
            .into_iter()
            .map(|m| crate::outbound::AttentionItem {
                number: m.message.0,
                from: crate::fold::clean_line(m.from.as_deref().unwrap_or("?"), 80),
                subject: crate::fold::clean_line(
                    m.subject.as_deref().unwrap_or(""),
                    data::QUOTE_CHARS,
                ),
                received_at: data::local(tz, m.arrived_at),
                reason: m.reason,
            })
            .collect();
        let failed_sends = self
            .store
            .outbox_failed()
            .await?
            .into_iter()
            .map(|r| FailedSend {
                to: r.to.join(", "),
                subject: r.subject,
                error: r.last_error.unwrap_or_default(),
            })
            .collect();
        Ok(data::digest(
            config,
            campaigns,
            attention,
            failed_sends,
            now,
        ))
    }

    /// Enqueues the coordinators' digest for the fire time `at` (once per
    /// fire time, also with several instances). False when nobody is to get
    /// it or it was enqueued before.
    pub async fn enqueue_digest(&self, at: DateTime<Utc>) -> Result<bool, ActionError> {
        let config = &self.config;
        if config.schedule.coordinators.is_empty() {
            return Ok(false);
        }
        let now = self.now();
        let data = self.digest_data(now).await?;
        let xlsx = export::workbook(&self.export_data().await?)?;
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
        Ok(self
            .store
            .enqueue(outbox_row(OutboxKind::Digest, &msg, message_id, key), now)
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
        let config = &self.config;
        let mut forms = Vec::new();
        let mut status = Vec::new();
        for c in &config.campaigns {
            let tz = c.tz();
            for d in &c.deadlines {
                status.push(self.deadline_table(c, d).await?);
                let subs = self.store.submissions_for(&c.id, &d.id).await?;
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
        }
        Ok(ExportData { forms, status })
    }

    /// A coordinator says which unit sent a message: it moves to that unit,
    /// the sender's address is learned, the message leaves the 需人工处理
    /// list, and an ack that was held back goes out now.
    pub async fn assign(
        &self,
        message: MessageId,
        org: &OrgId,
        by: &str,
    ) -> Result<String, ActionError> {
        let Some(o) = self.directory.get(org) else {
            return Err(ActionError::NotFound(format!(
                "no organisation `{org}` in the directory; ids are in the first column of {}",
                self.config.organisations.file.display()
            )));
        };
        let now = self.now();
        let assigned = self.store.assign(message, org, by, now).await?;
        let mut out = format!("message #{message} assigned to {} ({org})", o.name);
        if assigned.ack_held && self.release_ack(message).await? {
            out.push_str("; its ack is queued");
        }
        Ok(out)
    }

    /// Composes and enqueues the ack of a stored message that was held back.
    async fn release_ack(&self, message: MessageId) -> Result<bool, ActionError> {
        let Some(detail) = self.store.show_message(message).await? else {
            return Ok(false);
        };
        let m = detail.message;
        let raw = RawMessage {
            bytes: self.archive.read(&m.sha256).await?,
            origin: m.origin,
            received_at: m.received_at,
        };
        let now = self.now();
        let learned = self.store.learned_addresses().await?;
        let mut analysis = self.analyse_bounded(&raw, learned, now).await;
        let Some(mut ack) = self.ack_for(&mut analysis, now).await? else {
            info!(message = %message, reason = %analysis.ack.reason, "held ack not sent after assignment");
            return Ok(false);
        };
        ack.related_message = Some(message);
        Ok(self.store.enqueue(ack, now).await?.is_some())
    }

    /// Reads every stored message again with the current config and forms.
    /// Sends nothing.
    pub async fn reprocess(&self) -> Result<usize, ActionError> {
        let items = self.store.messages_for_reprocess().await?;
        for item in &items {
            let raw = RawMessage {
                bytes: self.archive.read(&item.sha256).await?,
                origin: item.origin.clone(),
                received_at: item.received_at,
            };
            let now = self.now();
            let learned = self.store.learned_addresses().await?;
            let analysis = self.analyse_bounded(&raw, learned, now).await;
            self.store.update_analysis(item.id, &analysis).await?;
        }
        Ok(items.len())
    }
}

/// The outbox row of a composed mail.
fn outbox_row(
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

//! The daemon: mailbox sources feed one pipeline that archives, analyses and
//! records every message (with its acknowledgement) in one transaction; an
//! outbox worker sends; a scheduler enqueues reminders and digests; systemd
//! hears READY, WATCHDOG and STOPPING. Shutdown is the `cancel` token.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock;
use crate::config::{CampaignConfig, Config, ConfigError, DeadlineConfig};
use crate::directory::Directory;
use crate::export::{self, ExportColumn, ExportData, ExportForm, ExportRow};
use crate::model::{Analysis, Problem, ProblemCode};
use crate::outbound::compose::{self, ComposeError};
use crate::outbound::transport::{Transport, TransportError};
use crate::outbound::{
    AckData, AckFile, Cell, DigestCampaign, DigestCounts, DigestData, DigestDeadline, DigestRow,
    FailedSend, MailKind, ReminderData, TemplateError, Templates, Total, UnmatchedMail,
};
use crate::pipeline::{self, Context};
use crate::schedule::{self, Crons};
use crate::source::{self, Delivery, Disposition, RawMessage, SourceError};
use crate::status::{self, CellState, Received};
use crate::store::{Archive, NewOutbox, OutboxKind, Recorded, StatusCell, Store, StoreError};
use crate::types::{CampaignId, DeadlineId, OrgId};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("building the spreadsheet failed: {0}")]
    Export(#[from] export::ExportError),
    #[error("{0}")]
    Other(String),
}

impl DaemonError {
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Source(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Everything the daemon's tasks share.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub directory: Arc<Directory>,
    pub store: Store,
    pub archive: Archive,
    pub templates: Arc<Templates>,
}

impl Services {
    /// Opens the store and the archive and loads the templates: every
    /// startup error (database, template file and line) surfaces here.
    pub async fn open(config: Config, directory: Directory) -> Result<Self, DaemonError> {
        let store = Store::open(&config.database_url()).await?;
        let archive = Archive::new(config.resolve(&config.store.archive));
        let templates = match &config.smtp.templates {
            Some(dir) => Templates::load(Some(&config.resolve(dir)))?,
            None => Templates::builtin(),
        };
        Ok(Self {
            config: Arc::new(config),
            directory: Arc::new(directory),
            store,
            archive,
            templates: Arc::new(templates),
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Read what the mailboxes hold now, send what is due, and return.
    pub once: bool,
}

/// Runs until `cancel` fires (or, with `once`, until the mailboxes are read
/// and the outbox is empty).
pub async fn run(
    services: Services,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<(), DaemonError> {
    let config = services.config.clone();
    let transport = Arc::new(Transport::from_config(
        &config.smtp,
        &config.base_dir,
        smtp_password(&config)?.as_deref(),
    )?);
    let (tx, rx) = mpsc::channel::<Delivery>(8);
    let sources_done = CancellationToken::new();
    let stop_sources = cancel.child_token();
    let mut sources = JoinSet::new();
    for mb in &config.mailboxes {
        let resume = services
            .store
            .mailbox_state(&mb.name)
            .await?
            .map(|(v, uid)| (v, uid.0));
        let mb = mb.clone();
        let tx = tx.clone();
        let token = stop_sources.clone();
        match &mb.imap {
            Some(imap) => {
                let password = imap
                    .password
                    .resolve(&format!("mailbox {}.imap.password", mb.name))?;
                sources.spawn(async move {
                    let name = mb.name.clone();
                    (
                        name,
                        source::imap::run(mb, password, resume, tx, token, opts.once).await,
                    )
                });
            }
            None => {
                sources.spawn(async move {
                    let name = mb.name.clone();
                    (name, source::maildir::run(mb, tx, token, opts.once).await)
                });
            }
        }
    }
    drop(tx);

    let outbox_wake = Arc::new(Notify::new());
    let processor = tokio::spawn(processor(services.clone(), rx, outbox_wake.clone()));
    let worker_stop = CancellationToken::new();
    let worker = tokio::spawn(outbox_worker(
        services.clone(),
        transport,
        outbox_wake.clone(),
        worker_stop.clone(),
        opts.once,
        sources_done.clone(),
    ));
    let background = CancellationToken::new();
    let mut timers = JoinSet::new();
    if !opts.once {
        timers.spawn(scheduler(
            services.clone(),
            outbox_wake.clone(),
            background.clone(),
        ));
        timers.spawn(watchdog(background.clone()));
    }
    notify(&[sd_notify::NotifyState::Ready]);
    info!(
        mailboxes = config.mailboxes.len(),
        once = opts.once,
        "baosong is running"
    );

    if sources.is_empty() && !opts.once {
        // No mailbox: reminders and digests only, until told to stop.
        cancel.cancelled().await;
    }
    let mut gave_up = 0;
    while let Some(res) = sources.join_next().await {
        match res {
            Ok((name, Ok(()))) => info!(mailbox = %name, "mailbox source stopped"),
            Ok((name, Err(e))) => {
                gave_up += 1;
                error!(mailbox = %name, error = %e, "mailbox source gave up");
            }
            Err(e) => {
                gave_up += 1;
                error!(error = %e, "mailbox source task failed");
            }
        }
    }
    if !opts.once {
        notify(&[sd_notify::NotifyState::Stopping]);
    }
    // Every source has finished its message in hand and dropped its sender:
    // the processor drains what is queued and ends.
    sources_done.cancel();
    if let Err(e) = processor.await {
        error!(error = %e, "the message processor failed");
    }
    // A one-shot run sends what is due; the daemon finishes the send in hand.
    if !opts.once {
        worker_stop.cancel();
    }
    if let Err(e) = worker.await {
        error!(error = %e, "the outbox worker failed");
    }
    background.cancel();
    while timers.join_next().await.is_some() {}
    info!("baosong stopped");
    if gave_up > 0 && !cancel.is_cancelled() {
        // Exit non-zero so systemd restarts the service (Restart=on-failure).
        return Err(DaemonError::Other(format!(
            "{gave_up} mailbox source(s) stopped on an error; see the log above"
        )));
    }
    Ok(())
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "cannot notify systemd");
    }
}

fn smtp_password(config: &Config) -> Result<Option<String>, ConfigError> {
    config
        .smtp
        .password
        .as_ref()
        .map(|s| s.resolve("smtp.password"))
        .transpose()
}

/// Takes each delivery through archive, analysis and the store, then tells
/// the source whether it may flag the message.
async fn processor(services: Services, mut rx: mpsc::Receiver<Delivery>, wake: Arc<Notify>) {
    while let Some(delivery) = rx.recv().await {
        let Delivery { raw, done } = delivery;
        let origin = raw.origin.display();
        let disposition = match process(&services, raw).await {
            Ok(Recorded::New { message_id, .. }) => {
                info!(origin, message = %message_id, "message stored");
                wake.notify_one();
                Disposition::Committed
            }
            Ok(Recorded::Duplicate { message_id }) => {
                info!(origin, message = %message_id, "message was stored before");
                Disposition::Committed
            }
            Err(e) => {
                error!(origin, error = %e, "storing the message failed");
                Disposition::Failed(e.to_string())
            }
        };
        // A source that stopped meanwhile offers the message again next time.
        let _ = done.send(disposition);
    }
}

/// One message: raw bytes made durable first, then analysed (bounded in
/// time), then recorded with its acknowledgement in one transaction.
pub async fn process(services: &Services, raw: RawMessage) -> Result<Recorded, DaemonError> {
    services.archive.put(raw.bytes.clone()).await?;
    let learned = services.store.learned_addresses().await?;
    let mut analysis = analyse_bounded(services, &raw, learned).await;
    let ack = ack_outbox(services, &mut analysis).await?;
    Ok(services.store.record(&raw, &analysis, ack).await?)
}

/// Runs the pipeline on a blocking thread with a time budget; a message that
/// overruns it (or panics a parser) is still stored, marked, and answered.
pub async fn analyse_bounded(
    services: &Services,
    raw: &RawMessage,
    learned: Vec<(String, OrgId)>,
) -> Analysis {
    let config = services.config.clone();
    let directory = services.directory.clone();
    let owned = raw.clone();
    let job = tokio::task::spawn_blocking(move || {
        let ctx = Context {
            config: &config,
            directory: &directory,
            learned: &learned,
            extractor: &crate::extract::InProcess,
            now: clock::now(),
        };
        pipeline::analyse(&owned, &ctx)
    });
    // Each file has its own extraction budget; the whole message gets a few.
    let budget = Duration::from_secs(services.config.limits.extract_timeout_secs * 4);
    let problem = match tokio::time::timeout(budget, job).await {
        Ok(Ok(a)) => return a,
        Ok(Err(e)) => {
            error!(origin = raw.origin.display(), error = %e, "analysis panicked");
            Problem::new(
                ProblemCode::MessageUnreadable,
                "邮件无法解析，已保存原件，工作人员将人工处理。",
            )
        }
        Err(_) => {
            warn!(
                origin = raw.origin.display(),
                budget_secs = budget.as_secs(),
                "analysis overran its time budget"
            );
            Problem::new(
                ProblemCode::ProcessingTimeout,
                "邮件中的附件过多或过大，未能在规定时间内读完，已保存原件，工作人员将人工处理。",
            )
        }
    };
    let ctx = Context {
        config: &services.config,
        directory: &services.directory,
        learned: &[],
        extractor: &crate::extract::InProcess,
        now: clock::now(),
    };
    pipeline::headers_only(raw, &ctx, problem)
}

/// The acknowledgement for a message, composed now so its Message-ID and
/// bytes are fixed before the row exists; None when none is due.
async fn ack_outbox(
    services: &Services,
    analysis: &mut Analysis,
) -> Result<Option<NewOutbox>, DaemonError> {
    if !analysis.ack.send {
        return Ok(None);
    }
    let Some(to) = analysis.ack.to.clone() else {
        return Ok(None);
    };
    let config = &services.config;
    let since = clock::now() - chrono::Duration::hours(1);
    let sent = services.store.count_acks_to(&to, since).await?;
    if sent >= config.smtp.ack_per_recipient_per_hour {
        warn!(to, sent, "ack rate limit reached; no ack");
        analysis.ack.send = false;
        analysis.ack.reason = format!(
            "rate limit: {sent} acks to {to} in the last hour (limit {})",
            config.smtp.ack_per_recipient_per_hour
        );
        return Ok(None);
    }
    let data = ack_data(services, analysis, &to).await?;
    let message_id = compose::new_message_id(&config.smtp.message_id_domain, MailKind::Ack);
    let msg = compose::ack(&services.templates, &data, &config.smtp, &message_id)?;
    Ok(Some(outbox_row(
        OutboxKind::Ack,
        &msg,
        message_id,
        format!("ack:{}", analysis.sha256),
    )))
}

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

fn local(
    config: &Config,
    campaign: Option<&CampaignConfig>,
    t: DateTime<Utc>,
) -> DateTime<FixedOffset> {
    let tz = campaign.map(CampaignConfig::tz).unwrap_or_else(|| {
        config
            .schedule
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    });
    t.with_timezone(&tz).fixed_offset()
}

fn deadline_of<'c>(
    config: &'c Config,
    campaign: Option<&CampaignId>,
    deadline: Option<&DeadlineId>,
) -> Option<(&'c CampaignConfig, &'c DeadlineConfig)> {
    let c = config.campaign(campaign?)?;
    let d = c.deadlines.iter().find(|d| Some(&d.id) == deadline)?;
    Some((c, d))
}

fn received_of(cells: &[StatusCell], org: &OrgId) -> Vec<Received> {
    cells
        .iter()
        .filter(|c| &c.org == org)
        .map(|c| Received {
            kind: c.kind,
            form: c.form,
            late: c.late,
            sealed: c.sealed,
            problems: c.problems,
        })
        .collect()
}

/// What the acknowledgement says: every file, every problem, and what the
/// unit still misses for the deadline counting what it sent before.
async fn ack_data(services: &Services, a: &Analysis, to: &str) -> Result<AckData, DaemonError> {
    let config = &services.config;
    let dl = deadline_of(config, a.campaign.as_ref(), a.deadline.as_ref());
    let mut received: Vec<Received> = a
        .documents
        .iter()
        .map(|d| Received {
            kind: d.kind,
            form: d.form,
            late: a.late == Some(true),
            sealed: d.sealed,
            problems: d.problems.len(),
        })
        .collect();
    if let (Some((c, d)), Some(org)) = (dl, &a.organisation.id) {
        let cells = services.store.unit_status(&c.id, &d.id, org).await?;
        received.extend(received_of(&cells, org));
    }
    let missing = dl
        .map(|(_, d)| status::missing(d, &received))
        .unwrap_or_default();
    let files = a
        .documents
        .iter()
        .map(|d| AckFile {
            name: d.filename.clone(),
            path: d.path.clone(),
            kind_label: d.kind.label_zh().to_owned(),
            form_label: d.form.label_zh().to_owned(),
            sealed: d.sealed,
            read: d.table.as_ref().and_then(|t| match (&t.rows, &t.fields) {
                (Some(r), _) => Some(format!("读取{}项{}", r.len(), t.form)),
                (_, Some(f)) => Some(format!("读取{}个数据项", f.len())),
                _ => None,
            }),
            problems: d.problems.iter().map(|p| p.message.clone()).collect(),
        })
        .collect();
    let received_at = a.arrived_at.unwrap_or_else(clock::now);
    Ok(AckData {
        to: to.to_owned(),
        to_name: a.header.from_name.clone(),
        org_name: a.organisation.name.clone(),
        campaign_name: dl.map(|(c, _)| c.name.clone()),
        deadline_name: dl.map(|(_, d)| d.display_name()),
        deadline_due: dl.and_then(|(c, d)| {
            d.due_instant(c.tz())
                .ok()
                .map(|t| local(config, Some(c), t))
        }),
        received_at: local(config, dl.map(|(c, _)| c), received_at),
        late: a.late == Some(true),
        files,
        problems: a.problems.iter().map(|p| p.message.clone()).collect(),
        missing,
        unknown_sender: a.organisation.id.is_none(),
        original_subject: a.header.subject.clone().unwrap_or_default(),
        original_message_id: a.header.message_id.clone(),
        original_references: a.header.references.clone(),
    })
}

/// Sends outbox rows: claims a few under a lease, sends each, records the
/// outcome. Transient failures come back later with backoff; permanent ones
/// are kept as failed and shown in the digest.
async fn outbox_worker(
    services: Services,
    transport: Arc<Transport>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    once: bool,
    sources_done: CancellationToken,
) {
    let owner = format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        compose::new_message_id("w", MailKind::Ack)
    );
    let lease = Duration::from_secs(300);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let rows = match services
            .store
            .claim_outbox(&owner, lease, clock::now(), 10)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                error!(error = %e, "claiming outbox rows failed");
                Vec::new()
            }
        };
        let idle = rows.is_empty();
        for row in rows {
            let result = transport
                .send_raw(&row.envelope_from, &row.to, &row.raw)
                .await;
            let outcome = match result {
                Ok(()) => {
                    info!(outbox = %row.id, kind = row.kind.as_str(), to = ?row.to, "sent");
                    services.store.mark_sent(row.id, &owner).await
                }
                Err(e) if e.is_transient() && row.attempts < 12 => {
                    let delay = retry_delay(services.config.smtp.retry_base_secs, row.attempts);
                    warn!(outbox = %row.id, error = %e, attempt = row.attempts, retry_in_secs = delay.as_secs(), "send failed; will retry");
                    let next = clock::now()
                        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(5));
                    services
                        .store
                        .mark_retry(row.id, &owner, next, &e.to_string())
                        .await
                }
                Err(e) => {
                    error!(outbox = %row.id, error = %e, "send failed for good");
                    services
                        .store
                        .mark_failed(row.id, &owner, &e.to_string())
                        .await
                }
            };
            if let Err(e) = outcome {
                error!(outbox = %row.id, error = %e, "recording the send outcome failed");
            }
        }
        if idle {
            if once && sources_done.is_cancelled() {
                return;
            }
            let pause = if once {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(15)
            };
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

/// `base_secs` (30 s by default) doubling per attempt up to 2 h, ±20 % jitter.
fn retry_delay(base_secs: u64, attempts: u32) -> Duration {
    let base = base_secs.saturating_mul(1 << attempts.min(8)).min(7200);
    let jitter = rand::random_range(0.8..1.2);
    Duration::from_secs_f64(base as f64 * jitter)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Wakes at the cron fire times and enqueues reminders and digests.
async fn scheduler(services: Services, wake: Arc<Notify>, cancel: CancellationToken) {
    let crons = match Crons::new(&services.config.schedule) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "schedule is invalid; no reminders or digests");
            return;
        }
    };
    loop {
        let now = clock::now();
        let next_rem = crons.next_after(&crons.reminders, now);
        let next_dig = crons.next_after(&crons.digest, now);
        let Some(next) = [next_rem, next_dig].into_iter().flatten().min() else {
            return;
        };
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return,
        }
        if Some(next) == next_rem {
            match enqueue_reminders(&services, next).await {
                Ok(n) => info!(count = n, "reminders enqueued"),
                Err(e) => error!(error = %e, "enqueueing reminders failed"),
            }
        }
        if Some(next) == next_dig {
            match enqueue_digest(&services, next).await {
                Ok(true) => info!("digest enqueued"),
                Ok(false) => {}
                Err(e) => error!(error = %e, "enqueueing the digest failed"),
            }
        }
        wake.notify_one();
    }
}

async fn watchdog(cancel: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tokio::select! {
            _ = tick.tick() => notify(&[sd_notify::NotifyState::Watchdog]),
            () = cancel.cancelled() => return,
        }
    }
}

/// Organisations a campaign addresses: those of its categories, or all.
pub fn addressed<'d>(
    directory: &'d Directory,
    c: &CampaignConfig,
) -> Vec<&'d crate::directory::Organisation> {
    directory
        .all()
        .iter()
        .filter(|o| c.categories.is_empty() || c.categories.contains(&o.category))
        .collect()
}

/// Enqueues the reminder rounds due at `now`: one mail per unit that still
/// misses something, at most once per (unit, deadline, offset) ever.
pub async fn enqueue_reminders(
    services: &Services,
    now: DateTime<Utc>,
) -> Result<usize, DaemonError> {
    let config = &services.config;
    let paused = services.store.paused_orgs().await?;
    let mut count = 0;
    for round in schedule::reminder_rounds(config, now) {
        let Some((c, d)) = deadline_of(config, Some(&round.campaign), Some(&round.deadline)) else {
            continue;
        };
        let cells = services.store.status_matrix(&c.id, &d.id).await?;
        for org in addressed(&services.directory, c) {
            if paused.contains(&org.id) || org.emails.is_empty() {
                continue;
            }
            let received = received_of(&cells, &org.id);
            let missing = status::missing(d, &received);
            if missing.is_empty() {
                continue;
            }
            let got: Vec<String> = status::columns(d)
                .iter()
                .filter(|col| status::cell(col, &received).state != CellState::Missing)
                .map(status::Column::label)
                .collect();
            let data = ReminderData {
                to: org.emails.clone(),
                org_name: org.name.clone(),
                campaign_name: c.name.clone(),
                deadline_name: d.display_name(),
                due: local(config, Some(c), round.due),
                days_left: (round.due - now).num_days().max(0),
                missing,
                received: got,
            };
            let message_id =
                compose::new_message_id(&config.smtp.message_id_domain, MailKind::Reminder);
            let msg = compose::reminder(&services.templates, &data, &config.smtp, &message_id)?;
            let key = format!(
                "reminder:{}:{}:{}:{}",
                org.id, c.id, d.id, round.days_before
            );
            let row = outbox_row(OutboxKind::Reminder, &msg, message_id, key);
            if services.store.enqueue(row).await?.is_some() {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// The status of one deadline as the digest and `status` show it.
pub async fn deadline_status(
    services: &Services,
    c: &CampaignConfig,
    d: &DeadlineConfig,
) -> Result<DigestDeadline, DaemonError> {
    let config = &services.config;
    let cells = services.store.status_matrix(&c.id, &d.id).await?;
    let columns = status::columns(d);
    let mut rows = Vec::new();
    let mut counts = DigestCounts::default();
    for org in addressed(&services.directory, c) {
        let received = received_of(&cells, &org.id);
        let mut late = false;
        let row_cells: Vec<Cell> = columns
            .iter()
            .map(|col| {
                let cell = status::cell(col, &received);
                let when = cells
                    .iter()
                    .filter(|s| {
                        s.org == org.id
                            && s.kind == col.kind
                            && col.form.is_none_or(|f| f == s.form)
                    })
                    .map(|s| s.arrived_at)
                    .max();
                let text = match (cell.state, when) {
                    (CellState::Missing, _) | (_, None) => String::new(),
                    (_, Some(t)) => local(config, Some(c), t).format("%-m月%-d日").to_string(),
                };
                late |= cell.late;
                Cell {
                    state: cell.state,
                    sealed: cell.sealed,
                    // A late copy with problems shows as a problem; say it is late too.
                    text: if cell.late && cell.state == CellState::Problem {
                        format!("{text} 逾期")
                    } else {
                        text
                    },
                }
            })
            .collect();
        let problems = received.iter().map(|r| r.problems).sum();
        let got = row_cells
            .iter()
            .filter(|c| c.state != CellState::Missing)
            .count();
        let complete = got == row_cells.len();
        counts.orgs += 1;
        if complete {
            counts.complete += 1;
        } else if got > 0 {
            counts.partial += 1;
        } else {
            counts.none += 1;
        }
        if late {
            counts.late += 1;
        }
        rows.push(DigestRow {
            org_name: org.name.clone(),
            cells: row_cells,
            problems,
            complete,
        });
    }
    let totals = totals(services, c, d).await?;
    Ok(DigestDeadline {
        name: d.display_name(),
        due: local(
            config,
            Some(c),
            d.due_instant(c.tz()).map_err(DaemonError::Other)?,
        ),
        columns: columns.iter().map(status::Column::label).collect(),
        rows,
        counts,
        totals,
    })
}

/// Sums of the numeric fields of every `fields` form (统计表) across units.
async fn totals(
    services: &Services,
    c: &CampaignConfig,
    d: &DeadlineConfig,
) -> Result<Vec<Total>, DaemonError> {
    let mut out = Vec::new();
    for form in services
        .config
        .forms
        .iter()
        .filter(|f| f.layout == crate::config::Layout::Fields)
        .filter(|f| d.requires.iter().any(|r| r.kind == f.kind))
    {
        let records = services
            .store
            .records_for_form(&c.id, &d.id, &form.id)
            .await?;
        for field in &form.fields {
            if !matches!(
                field.ty,
                crate::config::FieldType::Integer | crate::config::FieldType::Decimal
            ) {
                continue;
            }
            let values: Vec<f64> = records
                .iter()
                .filter(|r| r.key == field.key)
                .filter_map(|r| r.value.value.as_f64())
                .collect();
            if values.is_empty() {
                continue;
            }
            // Summing from +0.0: an f64 sum starts at -0.0 and would print "-0".
            let sum = values.iter().fold(0.0, |a, b| a + b);
            let unit = field.unit.as_deref().unwrap_or("");
            let value = if sum.fract() == 0.0 {
                format!("{sum:.0}{unit}")
            } else {
                format!("{}{unit}", (sum * 100.0).round() / 100.0)
            };
            out.push(Total {
                label: field.display_name().to_owned(),
                value,
            });
        }
    }
    Ok(out)
}

/// Everything for the consolidated workbook.
pub async fn export_data(services: &Services) -> Result<ExportData, DaemonError> {
    let config = &services.config;
    let mut forms = Vec::new();
    let mut status = Vec::new();
    for c in &config.campaigns {
        for d in &c.deadlines {
            status.push(deadline_status(services, c, d).await?);
            for form in config
                .forms
                .iter()
                .filter(|f| d.requires.iter().any(|r| r.kind == f.kind))
            {
                let records = services
                    .store
                    .records_for_form(&c.id, &d.id, &form.id)
                    .await?;
                if records.is_empty() {
                    continue;
                }
                let subs = services.store.submissions_for(&c.id, &d.id).await?;
                let mut rows: Vec<ExportRow> = Vec::new();
                let mut index: std::collections::BTreeMap<(i64, i64, Option<u32>), usize> =
                    std::collections::BTreeMap::new();
                for r in records {
                    let key = (r.submission.0, r.document.0, r.row);
                    let i = *index.entry(key).or_insert_with(|| {
                        let sub = subs.iter().find(|s| s.id == r.submission);
                        let org_name = r
                            .org
                            .as_ref()
                            .and_then(|o| services.directory.get(o))
                            .map(|o| o.name.clone())
                            .unwrap_or_default();
                        rows.push(ExportRow {
                            org_name,
                            values: Default::default(),
                            source_file: sub
                                .and_then(|s| s.documents.iter().find(|doc| doc.id == r.document))
                                .map(|doc| doc.path.clone())
                                .unwrap_or_default(),
                            received_at: local(
                                config,
                                Some(c),
                                sub.map(|s| s.arrived_at).unwrap_or_else(clock::now),
                            ),
                        });
                        rows.len() - 1
                    });
                    rows[i].values.insert(r.key.clone(), r.value.clone());
                }
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

/// Enqueues the coordinators' digest for the fire time `at` (once per fire
/// time, also with several instances). False when nobody is to get it.
pub async fn enqueue_digest(services: &Services, at: DateTime<Utc>) -> Result<bool, DaemonError> {
    let config = &services.config;
    if config.schedule.coordinators.is_empty() {
        return Ok(false);
    }
    let data = digest_data(services).await?;
    let xlsx = export::workbook(&export_data(services).await?)?;
    let message_id = compose::new_message_id(&config.smtp.message_id_domain, MailKind::Digest);
    let msg = compose::digest(
        &services.templates,
        &data,
        Some(&xlsx),
        &config.smtp,
        &message_id,
    )?;
    let key = format!("digest:{}", at.to_rfc3339());
    Ok(services
        .store
        .enqueue(outbox_row(OutboxKind::Digest, &msg, message_id, key))
        .await?
        .is_some())
}

/// The digest's content: every deadline's matrix, unmatched mail, failed sends.
pub async fn digest_data(services: &Services) -> Result<DigestData, DaemonError> {
    let config = &services.config;
    let mut campaigns = Vec::new();
    for c in &config.campaigns {
        let mut deadlines = Vec::new();
        for d in &c.deadlines {
            deadlines.push(deadline_status(services, c, d).await?);
        }
        campaigns.push(DigestCampaign {
            name: c.name.clone(),
            deadlines,
        });
    }
    let unmatched = services
        .store
        .unmatched_messages()
        .await?
        .into_iter()
        .filter(|m| m.auto_generated.is_none())
        .map(|m| UnmatchedMail {
            from: m.from.unwrap_or_default(),
            subject: m.subject.unwrap_or_default(),
            received_at: local(config, None, m.arrived_at.unwrap_or(m.stored_at)),
        })
        .collect();
    let failed_sends = services
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
    Ok(DigestData {
        to: config.schedule.coordinators.clone(),
        generated_at: local(config, None, clock::now()),
        campaigns,
        unmatched,
        failed_sends,
    })
}

//! What each command-line verb does, so `main.rs` only parses arguments.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::actions::{ActionError, Services};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, MailboxConfig};
use crate::daemon::{self, DaemonError, RunOptions};
use crate::directory::{Directory, DirectoryError};
use crate::extract::Extractor;
use crate::fold::printable;
use crate::leases::{LeaseTimes, Leases, MakeSource};
use crate::mailcmd::{Command, Item, Verb};
use crate::model::RawMessage;
use crate::outbound::data::local;
use crate::outbound::transport::{MailSender, Transport, TransportError};
use crate::outbound::{CellState, DigestDeadline, Templates};
use crate::pipeline::{self, Context};
use crate::replies::Actor;
use crate::report::Report;
use crate::source::imap::ImapSource;
use crate::source::maildir::MaildirSource;
use crate::source::{MailboxSource, SourceError, files};
use crate::status::{self, Sent};
use crate::store::{Backend, MessageId, StoreError};
use crate::types::OrgId;
use crate::worker::{Pool, PoolOptions, WorkerError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Files(#[from] files::FileSourceError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The configuration and directory: from `--config`, else the bundled example.
pub fn load(config: Option<&Path>) -> Result<(Config, Directory), CommandError> {
    match config {
        Some(p) => {
            let c = Config::load(p)?;
            let d = Directory::load(&c.organisations.file)?;
            Ok((c, d))
        }
        None => {
            let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            Ok((Config::example(&base)?, Directory::example()))
        }
    }
}

/// `baosong ingest`: reads messages from files and prints one report each,
/// in the order read. Writes nothing, sends nothing.
///
/// Messages are analysed one more at a time than `extractor` reads files in
/// parallel, each on a thread of its own, so the dry run uses every core as
/// the daemon does; a reading error stops it after the reports before it.
pub fn ingest(
    config: &Config,
    directory: &Directory,
    extractor: &dyn Extractor,
    paths: &[PathBuf],
    json: bool,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<usize, CommandError> {
    let ctx = Context {
        config,
        directory,
        learned: &[],
        extractor,
        now,
    };
    let paths = files::expand(paths)?;
    let width = extractor.parallelism().max(1) + 1;
    // Bounded, so that a large mbox is not read ahead of the analysis.
    let (to_analyse, queue) = mpsc::sync_channel::<(usize, RawMessage)>(width);
    // Held by the analysing threads alone: when they stop (the output is
    // gone), the reader's next send fails and it stops too.
    let queue = Arc::new(Mutex::new(queue));
    let (analysed, reports) = mpsc::channel::<(usize, String)>();
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut n = 0;
            for path in &paths {
                for raw in files::read(path)? {
                    if to_analyse.send((n, raw)).is_err() {
                        return Ok(());
                    }
                    n += 1;
                }
            }
            Ok::<(), CommandError>(())
        });
        for _ in 0..width {
            let (queue, analysed, ctx) = (queue.clone(), analysed.clone(), &ctx);
            s.spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((i, raw)) = next else { break };
                    if analysed.send((i, report(&raw, ctx, json))).is_err() {
                        break;
                    }
                }
            });
        }
        drop((queue, analysed));
        // Reports come back in any order and are printed in the order read.
        let mut waiting = BTreeMap::new();
        let mut count = 0;
        for (i, text) in reports {
            waiting.insert(i, text);
            while let Some(text) = waiting.remove(&count) {
                out.write_all(text.as_bytes())?;
                count += 1;
            }
        }
        reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        Ok(count)
    })
}

/// One message's report as `ingest` prints it. A panic in the analysis is
/// reported as the daemon records it: from the headers, marked unreadable.
fn report(raw: &RawMessage, ctx: &Context<'_>, json: bool) -> String {
    let analysis = std::panic::catch_unwind(AssertUnwindSafe(|| pipeline::analyse(raw, ctx)))
        .unwrap_or_else(|_| pipeline::headers_only(raw, ctx, pipeline::unreadable()));
    let rules = rule_problems(ctx.config, &analysis, ctx.now);
    let report = Report::new(raw.origin.display(), &analysis).with_rule_problems(&rules);
    if json {
        format!("{}\n", report.to_json())
    } else {
        report.to_text()
    }
}

/// What the deadline's rules say about one mail taken alone.
fn rule_problems(
    config: &Config,
    a: &crate::model::Analysis,
    now: DateTime<Utc>,
) -> Vec<crate::model::Problem> {
    let (Some(c), Some(d)) = (
        a.campaign.as_ref().and_then(|c| config.campaign(c)),
        a.deadline.as_ref(),
    ) else {
        return Vec::new();
    };
    let Some(dl) = c.deadline(d) else {
        return Vec::new();
    };
    let org = a
        .organisation
        .id
        .clone()
        .unwrap_or_else(|| OrgId::from("?"));
    status::unit_status(dl, &org, &[Sent::of_analysis(a, now)]).problems
}

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("{0}")]
    Usage(String),
}

/// The services with their files read in [`pool`]'s workers, as the daemon
/// must.
pub fn with_workers(services: Services) -> Result<Services, RunError> {
    let pool = pool(&services.config)?;
    Ok(services.with_extractor(Arc::new(pool)))
}

/// Contained worker processes of this executable, as `[limits]` sets them: a
/// parser's crash, runaway or allocation bomb then costs one file, never the
/// process.
pub fn pool(config: &Config) -> Result<Pool, RunError> {
    let program = std::env::current_exe().map_err(|source| WorkerError::Spawn {
        program: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let limits = &config.limits;
    let mut options = PoolOptions::new(program);
    options.memory_bytes = limits.worker_memory_mb.max(16) << 20;
    if limits.workers > 0 {
        options.workers = limits.workers;
    }
    Ok(Pool::with_options(options)?)
}

/// Cancels `token` on SIGTERM or SIGINT, so the daemon finishes the mail in
/// hand, drains and exits.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: finishing the mail in hand, then stopping"),
            _ = int.recv() => info!("SIGINT: finishing the mail in hand, then stopping"),
        }
        token.cancel();
    });
    Ok(())
}

/// The configured mailboxes as sources, each resuming where the store says
/// it stopped.
pub async fn mailbox_sources(services: &Services) -> Result<Vec<Box<dyn MailboxSource>>, RunError> {
    let mut out = Vec::new();
    for mb in &services.config.mailboxes {
        out.push(mailbox_source(services, mb).await?);
    }
    Ok(out)
}

/// One configured mailbox's source, resuming from what the store holds.
pub async fn mailbox_source(
    services: &Services,
    mb: &MailboxConfig,
) -> Result<Box<dyn MailboxSource>, RunError> {
    Ok(match &mb.imap {
        Some(imap) => {
            let password = imap
                .password
                .resolve(&format!("mailbox {}.imap.password", mb.name))
                .map_err(CommandError::from)?;
            let resume = services
                .store
                .mailbox_state(&mb.name)
                .await?
                .map(|(v, uid)| (v, uid.0));
            Box::new(ImapSource::new(mb.clone(), password, resume)?)
        }
        None => Box::new(MaildirSource::new(mb.clone())?),
    })
}

/// The mailboxes' sources, each read only while this instance holds its
/// lease ([`crate::leases`]); the first round of leases is taken now, so a
/// one-shot run reads what is its share.
pub async fn leased_sources(
    services: &Services,
    times: LeaseTimes,
) -> Result<(Leases, Vec<Box<dyn MailboxSource>>), RunError> {
    let owner = services.config.store.instance_name();
    let mut leases = Leases::new(
        services.store.clone(),
        services.clock.clone(),
        owner.clone(),
        times,
    );
    let mut out: Vec<Box<dyn MailboxSource>> = Vec::new();
    for mb in &services.config.mailboxes {
        let source = mailbox_source(services, mb).await?;
        let (this, mb) = (services.clone(), mb.clone());
        let make: MakeSource = Arc::new(move || {
            let (this, mb) = (this.clone(), mb.clone());
            Box::pin(async move {
                mailbox_source(&this, &mb)
                    .await
                    .map_err(|e| SourceError::Lease(e.to_string()))
            })
        });
        out.push(Box::new(leases.wrap(source, make)));
    }
    if services.store.backend() == Backend::Postgres && !times.settle.is_zero() {
        // Only a shared database has other instances to split with.
        leases.announce().await?;
    }
    leases.tick().await?;
    let held = leases.held();
    for mb in &services.config.mailboxes {
        if !held.contains(&mb.name) {
            info!(mailbox = %mb.name, instance = %owner, "mailbox read by another instance for now");
        }
    }
    Ok((leases, out))
}

/// The configured transport (SMTP or .eml files).
pub fn mail_sender(config: &Config) -> Result<Arc<dyn MailSender>, RunError> {
    let password = config
        .smtp
        .password
        .as_ref()
        .map(|s| s.resolve("smtp.password"))
        .transpose()
        .map_err(CommandError::from)?;
    Ok(Arc::new(Transport::from_config(
        &config.smtp,
        password.as_deref(),
    )?))
}

/// `baosong run`: the daemon (or one pass with `once`).
pub async fn run(
    config: Config,
    directory: Directory,
    once: bool,
    clock: Arc<dyn Clock>,
) -> Result<(), RunError> {
    let services = with_workers(Services::open(config, directory, clock).await?)?;
    let times = if once {
        // A one-shot run reads what its first round takes and stops: there
        // is no later round to split with instances starting beside it.
        LeaseTimes {
            settle: Duration::ZERO,
            ..LeaseTimes::default()
        }
    } else {
        LeaseTimes::default()
    };
    let (leases, sources) = leased_sources(&services, times).await?;
    let sender = mail_sender(&services.config)?;
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone()).map_err(|e| RunError::Usage(e.to_string()))?;
    let stop_leases = CancellationToken::new();
    let keeper = {
        let stop = stop_leases.clone();
        tokio::spawn(async move { leases.run(stop).await })
    };
    let result = daemon::run(
        services.clone(),
        sources,
        sender,
        RunOptions { once },
        cancel,
    )
    .await;
    // The leases are given back only after the sources have stopped.
    stop_leases.cancel();
    let _ = keeper.await;
    services.store.close().await;
    Ok(result?)
}

/// Display width of a string in a terminal: CJK and full-width take two columns.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            if (0x1100..=0x115F).contains(&u)
                || (0x2E80..=0xA4CF).contains(&u)
                || (0xAC00..=0xD7A3).contains(&u)
                || (0xF900..=0xFAFF).contains(&u)
                || (0xFE30..=0xFE4F).contains(&u)
                || (0xFF00..=0xFF60).contains(&u)
                || (0xFFE0..=0xFFE6).contains(&u)
                || c == '✔'
                || c == '✘'
            {
                2
            } else {
                1
            }
        })
        .sum()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// The status matrix of one deadline as a text table.
pub fn status_table(campaign: &str, d: &DigestDeadline) -> String {
    let mut out = String::new();
    let c = &d.counts;
    let _ = writeln!(
        out,
        "{campaign} — {}（截止 {}）: {} 个单位，齐全 {}，部分 {}，未报 {}，逾期 {}",
        d.name,
        crate::outbound::templates::due_text(&d.due),
        c.orgs,
        c.complete,
        c.partial,
        c.none,
        c.late
    );
    let mut header = vec!["单位".to_owned()];
    header.extend(d.columns.iter().cloned());
    header.push("需修改".to_owned());
    let rows: Vec<Vec<String>> = d
        .rows
        .iter()
        .map(|r| {
            let mut v = vec![r.org_name.clone()];
            v.extend(r.cells.iter().map(|cell| {
                let seal = match cell.sealed {
                    Some(true) => "·章",
                    Some(false) => "·无章",
                    None => "",
                };
                match cell.state {
                    CellState::Missing => "—".to_owned(),
                    s => format!("{}{seal} {}", s.label_zh(), cell.text)
                        .trim()
                        .to_owned(),
                }
            }));
            v.push(if r.problems.is_empty() {
                String::new()
            } else {
                format!("{}处", r.problems.len())
            });
            v
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(&header[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| pad(c, *w))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let _ = writeln!(out, "  {}", line(&header));
    for r in &rows {
        let _ = writeln!(out, "  {}", line(r));
    }
    for r in d.rows.iter().filter(|r| !r.problems.is_empty()) {
        let _ = writeln!(out, "  {} 需修改：", r.org_name);
        for p in &r.problems {
            let _ = writeln!(out, "    - {p}");
        }
    }
    if !d.totals.is_empty() {
        let t: Vec<String> = d
            .totals
            .iter()
            .map(|t| format!("{} {}", t.label, t.value))
            .collect();
        if !t.is_empty() {
            let _ = writeln!(out, "  合计：{}", t.join("；"));
        }
    }
    out
}

/// `baosong status`: the organisation × requirement matrix of each
/// deadline, then the mail that needs a person.
pub async fn status(
    services: &Services,
    campaign: Option<&str>,
    deadline: Option<&str>,
) -> Result<String, RunError> {
    let mut out = String::new();
    for c in services
        .config
        .campaigns
        .iter()
        .filter(|c| campaign.is_none_or(|x| c.id.as_str() == x))
    {
        for d in c
            .deadlines
            .iter()
            .filter(|d| deadline.is_none_or(|x| d.id.as_str() == x))
        {
            let table = services.deadline_table(c, d).await?;
            out.push_str(&status_table(&c.name, &table));
            out.push('\n');
        }
    }
    let attention = services.store.attention().await?;
    if !attention.is_empty() {
        let _ = writeln!(
            out,
            "需人工处理的邮件（baosong show 邮件号 查看；baosong assign 邮件号 单位ID 指定单位）："
        );
        let tz = services.config.schedule.timezone.0;
        for m in attention {
            let _ = writeln!(
                out,
                "  #{}  {}  {}  《{}》  {}",
                m.message,
                local(tz, m.arrived_at).format("%m-%d %H:%M"),
                m.from.as_deref().unwrap_or("?"),
                m.subject.as_deref().unwrap_or(""),
                m.reason
            );
        }
    }
    Ok(printable(&out))
}

/// `baosong show MESSAGE`: everything stored about one message.
pub async fn show(services: &Services, id: i64) -> Result<String, RunError> {
    let Some(d) = services.store.show_message(MessageId(id)).await? else {
        return Err(RunError::Usage(format!(
            "no message #{id}; `baosong status` lists them"
        )));
    };
    let m = &d.message;
    // Times as people read them where the campaign is.
    let campaign = d
        .submission
        .as_ref()
        .and_then(|s| s.campaign.as_ref())
        .and_then(|c| services.config.campaign(c));
    let tz = crate::outbound::data::zone(&services.config, campaign);
    let mut out = String::new();
    let _ = writeln!(out, "message #{}  {}", m.id, m.origin.display());
    let _ = writeln!(
        out,
        "  from:     {} <{}>",
        m.from_name.as_deref().unwrap_or(""),
        m.from.as_deref().unwrap_or("?")
    );
    let _ = writeln!(out, "  subject:  {}", m.subject.as_deref().unwrap_or(""));
    let _ = writeln!(out, "  date:     {}", m.date.as_deref().unwrap_or(""));
    let _ = writeln!(
        out,
        "  arrived:  {}",
        m.arrived_at
            .map(|t| local(tz, t).to_rfc3339())
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  sha256:   {}  ({} bytes, archive/{})",
        m.sha256, m.size, m.archive_path
    );
    if let Some(a) = &m.auto_generated {
        let _ = writeln!(out, "  auto-generated: {a}");
    }
    let _ = writeln!(out, "  ack:      {}", m.ack_reason);
    if let Some(s) = &d.submission {
        let _ = writeln!(
            out,
            "  unit:     {} ({}: {})",
            s.org_name
                .as_deref()
                .or(s.org.as_ref().map(OrgId::as_str))
                .unwrap_or("unknown"),
            s.matched_by.as_str(),
            s.evidence
        );
        let _ = writeln!(
            out,
            "  for:      {} / {}{}{}",
            s.campaign
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "?".into()),
            s.deadline
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "?".into()),
            if s.late == Some(true) { "  LATE" } else { "" },
            if s.supersedes.is_some() {
                "  (supersedes an earlier submission)"
            } else {
                ""
            }
        );
        for doc in &s.documents {
            let seal = match doc.sealed {
                Some(true) => ", sealed",
                Some(false) => ", no seal",
                None => "",
            };
            let _ = writeln!(out, "  - {} [{} / {}{seal}]", doc.path, doc.kind, doc.form);
            for p in &doc.problems {
                let _ = writeln!(out, "      ! {}", p.message);
            }
        }
        for p in &s.problems {
            let _ = writeln!(out, "  ! {}", p.message);
        }
    }
    if !d.records.is_empty() {
        let _ = writeln!(out, "  values read: {}", d.records.len());
    }
    for o in &d.outbox {
        let _ = writeln!(
            out,
            "  outbox #{} {} to {} — {}{}",
            o.id,
            o.kind.as_str(),
            o.to.join(", "),
            o.status.as_str(),
            o.last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    for a in &d.assignments {
        let _ = writeln!(
            out,
            "  assigned to {} by {} at {}",
            a.org,
            a.by,
            local(tz, a.at).to_rfc3339()
        );
    }
    Ok(printable(&out))
}

/// Who runs a command on this machine, for the audit log.
fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".into())
}

/// Runs one coordinator command as the operator, through the same library
/// function and audit log as a command by mail. A command that could not
/// be done (no such message, no such unit) is an error, with the reason.
async fn perform(services: &Services, command: Command) -> Result<String, RunError> {
    let outcome = services
        .perform(&command.to_string(), &command, &Actor::cli(&operator()))
        .await?;
    if outcome.ok {
        Ok(format!("{}\n", outcome.said))
    } else {
        Err(RunError::Usage(outcome.said))
    }
}

/// `baosong assign MESSAGE UNIT` (an id, name or alias): the sender's
/// address is learned for the next mail, and a held ack goes out.
pub async fn assign(services: &Services, message: i64, unit: &str) -> Result<String, RunError> {
    perform(
        services,
        Command::Assign {
            message,
            unit: unit.to_owned(),
        },
    )
    .await
}

/// `baosong ignore ITEM`: `42` (a message) or `S3` (a failed send) leaves 需处理.
pub async fn ignore(services: &Services, item: &str) -> Result<String, RunError> {
    let item = Item::parse(item).ok_or_else(|| {
        RunError::Usage(format!(
            "`{item}` is neither a message number (42) nor a failed send (S3)"
        ))
    })?;
    perform(services, Command::Ignore { item }).await
}

/// `baosong digest`: the digest as it would go out now, as text; with
/// `--send` it is enqueued for the coordinators (the running daemon sends it).
pub async fn digest(services: &Services, send: bool) -> Result<String, RunError> {
    if !send {
        let data = services.digest_data(services.now()).await?;
        let rendered = services
            .templates
            .digest(&data)
            .map_err(ActionError::from)?;
        return Ok(printable(&format!(
            "Subject: {}\n\n{}",
            rendered.subject, rendered.text
        )));
    }
    let outcome = services.digest_now().await?;
    let actor = Actor::cli(&operator());
    services
        .log(&actor, "digest --send", Verb::Digest, None, &outcome)
        .await?;
    if outcome.ok {
        Ok(format!("{}\n", outcome.said))
    } else {
        Err(RunError::Usage(outcome.said))
    }
}

/// `baosong log`: the coordinators' commands, newest first.
pub async fn log(services: &Services, limit: u32) -> Result<String, RunError> {
    let tz = services.config.schedule.timezone.0;
    let mut out = String::new();
    for e in services.store.command_log(limit).await? {
        let mail = e.mail.map(|m| format!(" (mail #{m})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{}  {} via {}{mail}: {}\n    {} {}",
            local(tz, e.at).format("%Y-%m-%d %H:%M"),
            e.actor,
            e.via.as_str(),
            e.line,
            if e.ok { "✔" } else { "✘" },
            e.said
        );
    }
    if out.is_empty() {
        out.push_str("no commands yet\n");
    }
    Ok(printable(&out))
}

/// `baosong export --xlsx FILE`.
pub async fn export_xlsx(services: &Services, path: &Path) -> Result<String, RunError> {
    let data = services.export_data().await?;
    let bytes = crate::export::workbook(&data).map_err(ActionError::from)?;
    std::fs::write(path, &bytes)
        .map_err(|e| RunError::Usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(format!(
        "wrote {} ({} sheets of forms, {} bytes)\n",
        path.display(),
        data.forms.len(),
        bytes.len()
    ))
}

/// `baosong reprocess [MESSAGE]`: reads one stored message, or every one,
/// again with the current config and forms. Sends nothing.
pub async fn reprocess(services: &Services, message: Option<i64>) -> Result<String, RunError> {
    if let Some(message) = message {
        return perform(services, Command::Reprocess { message }).await;
    }
    let done = services.reprocess().await?;
    Ok(format!(
        "re-read {done} stored messages; no mail was sent\n"
    ))
}

/// `baosong remind --pause UNIT` / `--resume UNIT` (an id, name or
/// alias) / list.
pub async fn remind(
    services: &Services,
    pause: Option<&str>,
    resume: Option<&str>,
) -> Result<String, RunError> {
    if let Some(unit) = pause {
        return perform(
            services,
            Command::PauseReminders {
                unit: unit.to_owned(),
            },
        )
        .await;
    }
    if let Some(unit) = resume {
        return perform(
            services,
            Command::ResumeReminders {
                unit: unit.to_owned(),
            },
        )
        .await;
    }
    let paused = services.store.paused_orgs().await?;
    if paused.is_empty() {
        return Ok("no reminders are paused\n".into());
    }
    Ok(paused.iter().map(|o| format!("paused: {o}\n")).collect())
}

/// `baosong check-config`: logs in everywhere and renders every template.
pub async fn check_config(
    config: &Config,
    directory: &Directory,
) -> Result<(String, bool), RunError> {
    let mut out = String::new();
    let mut ok = true;
    let _ = writeln!(
        out,
        "config: valid; {} organisations in the directory",
        directory.all().len()
    );
    match &config.smtp.templates {
        Some(dir) => match Templates::load(Some(dir.as_path())) {
            Ok(_) => {
                let _ = writeln!(out, "templates: {} render with sample data", dir.display());
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "templates: {e}");
            }
        },
        None => {
            let _ = writeln!(out, "templates: built-in");
        }
    }
    for mb in &config.mailboxes {
        match (&mb.imap, &mb.maildir) {
            (Some(imap), _) => {
                let pw = match imap
                    .password
                    .resolve(&format!("mailbox {}.imap.password", mb.name))
                {
                    Ok(p) => p,
                    Err(e) => {
                        ok = false;
                        let _ = writeln!(out, "mailbox {}: {e}", mb.name);
                        continue;
                    }
                };
                match crate::source::imap::check(mb, &pw).await {
                    Ok(r) => {
                        let _ = writeln!(
                            out,
                            "mailbox {}: logged in to {} as {}; folder {} has {} messages (UIDVALIDITY {}); {}; capabilities: {}",
                            mb.name,
                            imap.host,
                            imap.username,
                            mb.folder,
                            r.exists,
                            r.uidvalidity,
                            if r.idle { "IDLE" } else { "no IDLE: polling" },
                            r.capabilities.join(" ")
                        );
                    }
                    Err(e) => {
                        ok = false;
                        let _ = writeln!(out, "mailbox {}: {e}", mb.name);
                    }
                }
            }
            (None, Some(dir)) => {
                if dir.join("new").is_dir() && dir.join("cur").is_dir() {
                    let _ = writeln!(out, "mailbox {}: Maildir {}", mb.name, dir.display());
                } else {
                    ok = false;
                    let _ = writeln!(
                        out,
                        "mailbox {}: {} is not a Maildir (no new/ and cur/)",
                        mb.name,
                        dir.display()
                    );
                }
            }
            (None, None) => {}
        }
    }
    let pw = match config
        .smtp
        .password
        .as_ref()
        .map(|s| s.resolve("smtp.password"))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(out, "smtp: {e}");
            return Ok((out, false));
        }
    };
    match crate::outbound::transport::check(&config.smtp, pw.as_deref()).await {
        Ok(s) => {
            let _ = writeln!(out, "smtp: {s}");
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(out, "smtp: {e}");
        }
    }
    Ok((out, ok))
}

/// `baosong demo`: the bundled demo mailboxes through the whole daemon on
/// SQLite in `dir`, acks and a digest written as .eml files, then the status.
pub async fn demo(dir: &Path, clock: Arc<dyn Clock>) -> Result<String, RunError> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let source = if source.is_dir() {
        source
    } else {
        PathBuf::from("examples/demo")
    };
    if !source.is_dir() {
        return Err(RunError::Usage(
            "run `baosong demo` from a clone of the repository (examples/demo holds the demo mail)"
                .into(),
        ));
    }
    let marker = dir.join(".baosong-demo");
    if dir.exists() {
        if !marker.exists() {
            return Err(RunError::Usage(format!(
                "{} exists and is not a demo folder; give another with --dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(|e| RunError::Usage(e.to_string()))?;
    }
    let io = |e: std::io::Error| RunError::Usage(format!("preparing {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(&marker, b"").map_err(io)?;
    copy_tree(&source, &dir.join("maildir")).map_err(io)?;
    let dir = dir.canonicalize().map_err(io)?;
    let base = std::env::current_dir().map_err(io)?;
    let mut config = Config::example(&base).map_err(CommandError::from)?;
    config.store.database = format!("sqlite://{}", dir.join("baosong.db").display());
    config.store.archive = dir.join("archive");
    config.smtp.directory = dir.join("outbox");
    for mb in &mut config.mailboxes {
        mb.maildir = Some(dir.join("maildir").join(mb.name.as_str()));
    }
    let services = with_workers(Services::open(config, Directory::example(), clock).await?)?;
    let sources = mailbox_sources(&services).await?;
    let sender = mail_sender(&services.config)?;
    // One pass, as `run --once`: every mail, its ack, and the digest due now.
    daemon::run(
        services.clone(),
        sources,
        sender,
        RunOptions { once: true },
        CancellationToken::new(),
    )
    .await?;
    let mut out = status(&services, None, None).await?;
    services.store.close().await;
    let emls = std::fs::read_dir(dir.join("outbox"))
        .map(|d| d.count())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{emls} mails (acks and the digest) written as .eml to {}\ndatabase: {}\nconsolidated sheet: baosong --config … export --xlsx FILE (the digest carries it too)",
        dir.join("outbox").display(),
        dir.join("baosong.db").display()
    );
    Ok(out)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else if e.file_name() != ".keep" {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

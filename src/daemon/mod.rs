//! The daemon's tasks: one per mailbox source feeding the message
//! processor, which records every message (with its ack) through
//! [`crate::actions`]; the outbox worker that sends; the scheduler that
//! enqueues reminders and digests; the watchdog that tells systemd all is
//! well while every task's heartbeat is fresh.
//!
//! [`run`] takes its sources, its mail sender and its cancellation token as
//! parameters (as mini-redis takes its listener and shutdown), and the clock
//! is in the services, so tests script faults in-process.
//!
//! The daemon exits only for a configuration error, a task that died, or
//! cancellation: a message that cannot be recorded is a per-message failure
//! ([`crate::source::Disposition`]), never a reason to stop.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Notify, OnceCell, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::actions::{ActionError, Learned, Prepared, Services, panic_message};
use crate::clock::Heartbeat;
use crate::model::RawMessage;
use crate::outbound::transport::MailSender;
use crate::schedule;
use crate::source::{self, Delivery, Disposition, MailboxSource, SourceError};
use crate::store::{Durability, Lease, OutboxId, OutboxRow, Recorded};

mod handover;
use handover::{Handover, Place, Queue};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A mailbox cannot be read as configured (or, in a one-shot run, kept failing).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A task ended on its own: the daemon exits so systemd restarts it.
    #[error("the {0} task ended unexpectedly: {1}")]
    TaskDied(String, String),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Read what the mailboxes hold now, send what is due, and return.
    pub once: bool,
}

/// How long a task may go without a heartbeat before the watchdog stops
/// telling systemd all is well (the unit's WatchdogSec is 120 s).
const STALE: Duration = Duration::from_secs(90);
/// Outbox rows are leased for this long and renewed every [`RENEW`] while a
/// send goes on: another instance takes a dead one's rows within this time.
const LEASE: Duration = Duration::from_secs(30);
const RENEW: Duration = Duration::from_secs(10);
/// Outbox rows claimed at a time.
const BATCH: u32 = 10;
/// Acks handed from the processor to the outbox worker, at most, per
/// mailbox; past that they are stored pending and claimed.
const HANDED: usize = 20;
/// The processor commits messages [`Durability::Deferred`] and puts them on
/// disk a group at a time, with one `syncfs` of the archive and one WAL
/// fsync: a group ends when it holds
/// [`GROUP`] messages, when its first is [`GROUP_WAIT`] old, or when the
/// processor would wait for mail. Only then are the messages flagged on
/// the server and their acks sent.
const GROUP: usize = 32;
const GROUP_WAIT: Duration = Duration::from_millis(50);
/// Messages the processor has in flight (archived, being read, or read and
/// waiting their turn to commit): so many per extraction worker, and at most
/// [`IN_FLIGHT`] in all, which bounds the analyses held in memory.
const PER_WORKER: usize = 6;
const IN_FLIGHT: usize = 32;

/// Runs until `cancel` fires (or, with `once`, until the mailboxes are read,
/// what is due is enqueued and the outbox is empty).
pub async fn run(
    services: Services,
    sources: Vec<Box<dyn MailboxSource>>,
    sender: Arc<dyn MailSender>,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<(), DaemonError> {
    // Short, so a fresh mail in one mailbox waits behind a few messages of
    // another's backlog, not a long queue of them; the processor keeps its
    // own window of messages in flight besides.
    let (tx, rx) = mpsc::channel::<Delivery>(services.parallelism().max(2) * 2);
    let stop_sources = cancel.child_token();
    let stop_worker = CancellationToken::new();
    let stop_background = CancellationToken::new();
    let sources_done = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    // Acks stored as being sent by this instance, straight to its sender.
    let handover = Handover::new(HANDED);
    let mut beats: Vec<(String, Heartbeat)> = Vec::new();
    let mut beat = |name: String| {
        let b = Heartbeat::default();
        beats.push((name, b.clone()));
        b
    };

    let mut source_tasks = JoinSet::new();
    let mailboxes = sources.len();
    for src in sources {
        let name = src.name().to_string();
        let b = beat(format!("mailbox {name}"));
        let (tx, token) = (tx.clone(), stop_sources.clone());
        source_tasks.spawn(async move { (name, source::run(src, tx, token, opts.once, b).await) });
    }
    drop(tx);

    let mut tasks: JoinSet<(&'static str, Result<(), String>)> = JoinSet::new();
    tasks.spawn(processor(
        services.clone(),
        rx,
        handover.clone(),
        wake.clone(),
        beat("processor".into()),
    ));
    tasks.spawn(outbox_worker(
        services.clone(),
        sender,
        handover,
        wake.clone(),
        stop_worker.clone(),
        opts.once.then(|| sources_done.clone()),
        beat("outbox".into()),
    ));
    if !opts.once {
        tasks.spawn(scheduler(
            services.clone(),
            wake.clone(),
            stop_background.clone(),
            beat("scheduler".into()),
        ));
        tasks.spawn(watchdog(beats, stop_background.clone()));
    }
    notify(&[sd_notify::NotifyState::Ready]);
    info!(mailboxes, once = opts.once, "baosong is running");

    // Supervise. Sources end when cancelled (or, once, when read); the
    // other tasks end on their own only by failing or panicking, which is
    // fatal: the daemon stops and systemd restarts it.
    let mut failure: Option<DaemonError> = None;
    while failure.is_none() && !(opts.once && source_tasks.is_empty()) {
        tokio::select! {
            Some(res) = source_tasks.join_next() => match res {
                Ok((name, Ok(()))) => debug!(mailbox = %name, "mailbox source stopped"),
                Ok((name, Err(e))) => {
                    error!(mailbox = %name, error = %e, "mailbox source stopped on an error");
                    failure = Some(DaemonError::Source(e));
                }
                Err(e) => failure = Some(DaemonError::TaskDied("mailbox".into(), panic_text(e))),
            },
            Some(res) = tasks.join_next() => match res {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => failure = Some(DaemonError::TaskDied(name.into(), e)),
                Err(e) => failure = Some(DaemonError::TaskDied("daemon".into(), panic_text(e))),
            },
            () = cancel.cancelled() => break,
        }
    }
    if let Some(e) = &failure {
        error!(error = %e, "stopping; systemd restarts baosong");
    }
    if !opts.once {
        notify(&[sd_notify::NotifyState::Stopping]);
    }
    // Sources finish the message in hand and drop their senders; the
    // processor drains what is queued and ends.
    stop_sources.cancel();
    while source_tasks.join_next().await.is_some() {}
    if opts.once && failure.is_none() {
        let now = services.now();
        match services.enqueue_due(now).await {
            Ok((reminders, digest)) => info!(reminders, digest, "enqueued what is due"),
            Err(e) => error!(error = %e, "enqueueing reminders and the digest failed"),
        }
        wake.notify_one();
        sources_done.cancel();
    }
    if !opts.once || failure.is_some() {
        stop_worker.cancel();
    }
    stop_background.cancel();
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(res) = tasks.join_next().await {
            if let Ok((name, Err(e))) = res {
                warn!(task = name, error = %e, "task ended with an error while stopping");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("tasks did not finish within 120 s; stopping anyway");
    }
    if let Err(e) = services.sync().await {
        warn!(error = %e, "putting the last marks of sent mail on disk failed");
    }
    info!("baosong stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "cannot notify systemd");
    }
}

/// What a task's panic said.
fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => panic_message(payload),
        Err(e) => e.to_string(),
    }
}

/// A message being prepared: the message, the source's verdict channel, the
/// task preparing it.
type InFlight = (
    Arc<RawMessage>,
    oneshot::Sender<Disposition>,
    JoinHandle<Result<Prepared, ActionError>>,
);

/// A committed message of the group not yet on disk: what it is to be told.
struct Held {
    done: oneshot::Sender<Disposition>,
    disposition: Disposition,
    /// Its ack, leased to this instance, and its place in the worker's queue.
    leased: Option<(Place, OutboxRow)>,
    /// Its ack is stored pending: the worker is to claim it.
    wake: bool,
}

/// Takes the deliveries through [`Services::prepare`] several at a time (as
/// many as files can be read at once) and through [`Services::commit`] one
/// by one in arrival order, so acks see every earlier message and each
/// source gets its verdicts in order; the verdicts and acks of a group go
/// out once the group is on disk ([`syncer`]), while the next group is
/// committed. Ends when every source has gone and the last group is out.
async fn processor(
    services: Services,
    mut rx: mpsc::Receiver<Delivery>,
    hand: Arc<Handover>,
    wake: Arc<Notify>,
    beat: Heartbeat,
) -> (&'static str, Result<(), String>) {
    let owner = services.config.store.instance_name();
    // Mails differ a hundredfold in cost (a text mail, a scanned PDF), and
    // they are committed in order: with one more in flight than there are
    // workers, the workers ran dry behind each slow mail at the head (1000
    // Maildir mails on 2 cores: 1.2 analyses at a time with 3 in flight,
    // 1.9 with 8; 12 took 9 % less wall time than 3; bench/RESULTS.md).
    let width = (services.parallelism() * PER_WORKER).clamp(2, IN_FLIGHT);
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(width);
    // The learned addresses, read once per group rather than once per
    // message: an assignment (here or by another process) reaches the
    // messages started after the group it came in.
    let mut learned = Arc::new(OnceCell::new());
    let start = |Delivery { raw, done }: Delivery, learned: &Arc<OnceCell<Learned>>| {
        let (this, raw, learned) = (services.clone(), Arc::new(raw), learned.clone());
        let mine = raw.clone();
        // A task of its own, so a message's archive write and analysis go on
        // while an earlier one is being committed.
        let archived = this.archive_durability(&mine.origin);
        let job = tokio::spawn(async move {
            let learned = learned.get_or_try_init(|| this.learned()).await?.clone();
            this.prepare(&mine, archived, learned).await
        });
        (raw, done, job)
    };
    // One group on its way to disk and one waiting for it, at most.
    let (groups, synced) = mpsc::channel::<Vec<Held>>(1);
    let syncer = tokio::spawn(syncer(services.clone(), synced, wake.clone()));
    let mut held: Vec<Held> = Vec::with_capacity(GROUP);
    let mut group_ends = Instant::now();
    let mut open = true;
    let mut gone = false;
    while !gone {
        while open && inflight.len() < width {
            match rx.try_recv() {
                Ok(d) => inflight.push_back(start(d, &learned)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        let Some((raw, done, mut job)) = inflight.pop_front() else {
            // The sources wait for these verdicts before they send more.
            gone = !release(&groups, &mut held, &mut learned).await;
            if !open || gone {
                break;
            }
            match beat.while_pending(rx.recv()).await {
                Some(d) => inflight.push_back(start(d, &learned)),
                None => open = false,
            }
            continue;
        };
        let prepared = if held.is_empty() {
            beat.while_pending(job).await
        } else {
            match tokio::time::timeout_at(group_ends, beat.while_pending(&mut job)).await {
                Ok(prepared) => prepared,
                Err(_) => {
                    gone = !release(&groups, &mut held, &mut learned).await;
                    beat.while_pending(job).await
                }
            }
        };
        // A place in the worker's queue first: an ack leased to it must
        // reach it. Without one the ack is stored pending, and claimed.
        let place = hand.try_reserve(raw.origin.mailbox());
        let lease = place.as_ref().map(|_| Lease {
            owner: owner.clone(),
            until: lease_end(services.now()),
        });
        let (disposition, leased, pending) = beat
            .while_pending(handle(&services, &raw, prepared, lease.as_ref()))
            .await;
        if held.is_empty() {
            group_ends = Instant::now() + GROUP_WAIT;
        }
        held.push(Held {
            done,
            disposition,
            leased: place.zip(leased),
            wake: pending,
        });
        if held.len() >= GROUP || Instant::now() >= group_ends {
            gone = !release(&groups, &mut held, &mut learned).await;
        }
    }
    drop(groups);
    match syncer.await {
        Ok(()) if !gone => ("processor", Ok(())),
        Ok(()) => ("processor", Err("the syncer ended early".into())),
        Err(e) => (
            "processor",
            Err(format!("the syncer died: {}", panic_text(e))),
        ),
    }
}

/// Hands the held group to the [`syncer`]; messages started after it read
/// the learned addresses afresh. False when the syncer is gone (it
/// panicked): the group's sources then hear their messages were dropped,
/// and offer them again.
async fn release(
    groups: &mpsc::Sender<Vec<Held>>,
    held: &mut Vec<Held>,
    learned: &mut Arc<OnceCell<Learned>>,
) -> bool {
    if held.is_empty() {
        return true;
    }
    *learned = Arc::new(OnceCell::new());
    let group = std::mem::replace(held, Vec::with_capacity(GROUP));
    groups.send(group).await.is_ok()
}

/// Puts each group on disk, in the order they come, then tells each
/// source its verdicts and the outbox worker its acks. It runs beside the
/// processor, which commits the next group meanwhile: waiting for the
/// disk held the commits up for a quarter of the wall time (1000 Maildir
/// mails: 2.8 s on ext4, 2.1 s on tmpfs). A sync covers every commit that
/// ended before it began, so it covers its group. A group that cannot be
/// synced is offered again: its messages are in the store already and
/// come back as duplicates, which are then flagged; their acks, leased,
/// are sent when the lease runs out.
async fn syncer(services: Services, mut groups: mpsc::Receiver<Vec<Held>>, wake: Arc<Notify>) {
    while let Some(mut held) = groups.recv().await {
        let synced = services.sync().await;
        if let Err(e) = &synced {
            warn!(messages = held.len(), error = %e, "putting the messages on disk failed; they will be offered again");
        }
        for h in held.drain(..) {
            let disposition = match (&synced, h.disposition) {
                (Err(e), Disposition::Committed) => Disposition::Failed {
                    transient: true,
                    reason: format!("the store could not put the message on disk: {e}"),
                },
                (_, d) => d,
            };
            if let (Ok(()), Some((place, row))) = (&synced, h.leased) {
                place.send(row);
            }
            if h.wake {
                wake.notify_one();
            }
            // A source that stopped meanwhile offers the message again next time.
            let _ = h.done.send(disposition);
        }
    }
}

/// One message, committed [`Durability::Deferred`]. A passing cause
/// (database, disk) is retried by the source; any other failure, a panic
/// included, is recorded for a person and the mailbox moves on. With
/// `lease`, a new message's ack comes back leased, to be sent; the last
/// value says one was stored pending, for the outbox worker to claim.
async fn handle(
    services: &Services,
    raw: &RawMessage,
    prepared: Result<Result<Prepared, ActionError>, tokio::task::JoinError>,
    lease: Option<&Lease>,
) -> (Disposition, Option<OutboxRow>, bool) {
    let origin = raw.origin.display();
    let committed = match prepared {
        Ok(Ok(prepared)) => {
            AssertUnwindSafe(services.commit(raw, prepared, lease, Durability::Deferred))
                .catch_unwind()
                .await
                .map_err(panic_message)
        }
        Ok(Err(e)) => Ok(Err(e)),
        Err(e) => Err(panic_text(e)),
    };
    let failure = match committed {
        Ok(Ok((recorded, leased))) => {
            let mut pending = false;
            match recorded {
                Recorded::New { message_id, .. } => {
                    info!(origin, message = %message_id, "message stored");
                    pending = leased.is_none();
                }
                Recorded::Duplicate { message_id } => {
                    info!(origin, message = %message_id, "message was stored before")
                }
                Recorded::Copy {
                    message_id,
                    original,
                } => {
                    info!(origin, message = %message_id, original = %original, "another copy of a stored message; kept, not answered again")
                }
            }
            return (Disposition::Committed, leased, pending);
        }
        Ok(Err(e)) if e.is_transient() => {
            warn!(origin, error = %e, "storing the message failed for now; it will be offered again");
            return (
                Disposition::Failed {
                    transient: true,
                    reason: e.to_string(),
                },
                None,
                false,
            );
        }
        Ok(Err(e)) => e.to_string(),
        Err(panic) => format!("a panic while processing: {panic}"),
    };
    error!(origin, error = %failure, "processing the message failed; recording it for a person");
    let disposition = match AssertUnwindSafe(services.record_failure(raw, &failure))
        .catch_unwind()
        .await
    {
        Ok(Ok(recorded)) => {
            info!(origin, message = %recorded.message_id(), "message recorded for a person to handle");
            Disposition::Committed
        }
        Ok(Err(e)) => Disposition::Failed {
            transient: e.is_transient(),
            reason: format!("{failure}; recording it failed too: {e}"),
        },
        Err(panic) => Disposition::Failed {
            transient: false,
            reason: format!("{failure}; recording it panicked: {}", panic_message(panic)),
        },
    };
    (disposition, None, false)
}

/// Sends outbox rows: the acks the processor hands over, already leased,
/// and rows it claims under a lease (due reminders, digests, retries, acks
/// stored while their mailbox's hand-over queue was full) when woken, every
/// 15 s, and while a claim comes back full. The queues of the hand-over
/// take turns, so a mailbox's backlog does not hold up another's acks.
/// Sends each and records the outcome.
/// Transient failures come back later with backoff; permanent ones are kept
/// as failed and shown in the digest; a broken `[smtp]` setup holds every
/// mail until it is fixed. `once_done`: return when it fires and nothing is
/// left to send.
async fn outbox_worker(
    services: Services,
    sender: Arc<dyn MailSender>,
    handed: Arc<Handover>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    once_done: Option<CancellationToken>,
    beat: Heartbeat,
) -> (&'static str, Result<(), String>) {
    // The same name across restarts: rows this instance was sending when it
    // was killed are taken back at once.
    let owner = services.config.store.instance_name();
    match services.store.release_leases(&owner).await {
        Ok(0) => {}
        Ok(n) => info!(
            rows = n,
            "took back outbox rows left unfinished by the last run"
        ),
        Err(e) => {
            warn!(error = %e, "cannot take back unfinished outbox rows; their leases will run out")
        }
    }
    // Whether rows nobody handed over may be due.
    let mut due = true;
    // Whether the last claim came after `once_done` fired, and found nothing.
    let mut swept = false;
    let mut marks = Marks::default();
    loop {
        beat.beat();
        if stop.is_cancelled() {
            // Sent rows are still leased until marked: mark them before
            // giving the rest back.
            marks.flush(&services, &owner).await;
            if !handed.is_empty() {
                // Leased but not tried: due again at once, for any instance.
                if let Err(e) = services.store.release_leases(&owner).await {
                    warn!(error = %e, "cannot give back claimed outbox rows; their leases will run out");
                }
            }
            return ("outbox", Ok(()));
        }
        // Claimed rows take their turn beside the handed ones; the next
        // batch is claimed when the last is sent.
        if due && !handed.holds_claimed() {
            let finishing = once_done.as_ref().is_some_and(|d| d.is_cancelled());
            let rows = match services
                .store
                .claim_outbox(&owner, LEASE, services.now(), BATCH)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    error!(error = %e, "claiming outbox rows failed");
                    Vec::new()
                }
            };
            due = !rows.is_empty();
            swept = finishing && rows.is_empty();
            handed.put_claimed(rows);
        }
        let Some((row, queue)) = handed.pop() else {
            marks.flush(&services, &owner).await;
            if once_done.as_ref().is_some_and(|d| d.is_cancelled()) {
                if swept {
                    return ("outbox", Ok(()));
                }
                // A wake may have come while rows were handed over.
                due = true;
                continue;
            }
            let pause = if once_done.is_some() {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(15)
            };
            tokio::select! {
                () = handed.ready() => {}
                () = wake.notified() => due = true,
                () = tokio::time::sleep(pause) => {
                    due = true;
                    // Idle: sends marked since the last synced commit go on
                    // disk now, not whenever the next message comes.
                    if let Err(e) = services.store.sync().await {
                        warn!(error = %e, "putting the marks of sent mail on disk failed; will try again");
                    }
                }
                () = stop.cancelled() => {}
            }
            continue;
        };
        if !still_leased(&services, &row, &owner).await {
            continue;
        }
        let result = beat
            .while_pending(renewing(
                &services,
                row.id,
                &owner,
                &mut marks,
                sender.send(&row.envelope_from, &row.to, &row.raw),
            ))
            .await;
        let now = services.now();
        let outcome = match result {
            Ok(()) => {
                info!(outbox = %row.id, kind = row.kind.as_str(), to = ?row.to, "sent");
                marks.push(row.id, now);
                if queue == Queue::Store && due && !handed.holds_claimed() {
                    let sent = marks.take();
                    services
                        .store
                        .mark_sent_and_claim(&sent, &owner, LEASE, now, BATCH)
                        .await
                        .map(|(marked, next)| {
                            lost_leases(sent.len() - marked);
                            due = !next.is_empty();
                            handed.put_claimed(next);
                            true
                        })
                } else {
                    if marks.due() {
                        marks.flush(&services, &owner).await;
                    }
                    Ok(true)
                }
            }
            Err(e) if e.is_setup() => {
                let next = now + chrono::Duration::minutes(15);
                error!(outbox = %row.id, error = %e, "the mail server refuses us; fix [smtp] and restart; mail waits meanwhile");
                services
                    .store
                    .mark_retry(row.id, &owner, next, &e.to_string())
                    .await
            }
            Err(e) if e.is_transient() && row.attempts < 12 => {
                let delay = retry_delay(services.config.smtp.retry_base_secs, row.attempts);
                warn!(outbox = %row.id, error = %e, attempt = row.attempts, retry_in_secs = delay.as_secs(), "send failed; will retry");
                let next =
                    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(5));
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
}

/// When a lease taken or renewed at `now` runs out.
fn lease_end(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

/// Whether `owner` still holds the row it is about to send. A row that
/// waited in hand longer than [`RENEW`] (behind slow sends) has its lease
/// renewed first; one whose lease ran out and another instance took is
/// left to it, so no mail goes twice.
async fn still_leased(services: &Services, row: &OutboxRow, owner: &str) -> bool {
    let now = services.now();
    let fresh = chrono::Duration::from_std(LEASE - RENEW).unwrap_or_default();
    if row.lease_until.is_some_and(|until| until - now >= fresh) {
        return true;
    }
    match services
        .store
        .renew_lease(row.id, owner, lease_end(now))
        .await
    {
        Ok(true) => true,
        Ok(false) => {
            warn!(outbox = %row.id, "the row's lease ran out before its turn and another instance took it");
            false
        }
        Err(e) => {
            warn!(outbox = %row.id, error = %e, "renewing the lease failed; not sending the row now");
            false
        }
    }
}

/// Sends not yet recorded: recorded together, in one transaction, once
/// [`MARKS`] have gathered, the oldest is [`MARK_WAIT`] old, or nothing is
/// left to send. One transaction a send took the writer from the
/// processor's commits (a tenth of the wall time of 1000 mails on 2
/// cores). A sent row stays leased until marked: the wait is kept well
/// inside the lease, and a long send marks the others meanwhile.
#[derive(Default)]
struct Marks {
    sent: Vec<(OutboxId, chrono::DateTime<chrono::Utc>)>,
    since: Option<Instant>,
}

const MARKS: usize = 16;
const MARK_WAIT: Duration = Duration::from_secs(1);

impl Marks {
    fn push(&mut self, id: OutboxId, at: chrono::DateTime<chrono::Utc>) {
        self.since.get_or_insert_with(Instant::now);
        self.sent.push((id, at));
    }

    fn due(&self) -> bool {
        self.sent.len() >= MARKS || self.since.is_some_and(|t| t.elapsed() >= MARK_WAIT)
    }

    fn take(&mut self) -> Vec<(OutboxId, chrono::DateTime<chrono::Utc>)> {
        self.since = None;
        std::mem::take(&mut self.sent)
    }

    /// A row whose mark fails is sent again when its lease runs out.
    async fn flush(&mut self, services: &Services, owner: &str) {
        if self.sent.is_empty() {
            return;
        }
        let sent = self.take();
        match services.store.mark_sent(&sent, owner).await {
            Ok(marked) => lost_leases(sent.len() - marked),
            Err(e) => {
                let rows: Vec<i64> = sent.iter().map(|(id, _)| id.0).collect();
                error!(outbox = ?rows, error = %e, "recording the sends failed; they may go again");
            }
        }
    }
}

fn lost_leases(rows: usize) {
    if rows > 0 {
        warn!(
            rows,
            "rows were sent after their lease ran out; another instance may send them too"
        );
    }
}

/// Runs a send, renewing the row's lease while it takes, and recording
/// the sends before it meanwhile.
async fn renewing<F: std::future::Future>(
    services: &Services,
    id: OutboxId,
    owner: &str,
    marks: &mut Marks,
    send: F,
) -> F::Output {
    tokio::pin!(send);
    let mut tick = tokio::time::interval(RENEW);
    tick.tick().await;
    loop {
        tokio::select! {
            out = &mut send => return out,
            _ = tick.tick() => {
                marks.flush(services, owner).await;
                match services.store.renew_lease(id, owner, lease_end(services.now())).await {
                    Ok(true) => {}
                    Ok(false) => warn!(outbox = %id, "lost the lease on a row while sending it"),
                    Err(e) => warn!(outbox = %id, error = %e, "renewing the lease failed"),
                }
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

/// Wakes at the cron fire times and enqueues reminders and digests.
async fn scheduler(
    services: Services,
    wake: Arc<Notify>,
    stop: CancellationToken,
    beat: Heartbeat,
) -> (&'static str, Result<(), String>) {
    let s = &services.config.schedule;
    loop {
        let now = services.now();
        let next_rem = schedule::next_fire(s, &s.reminder_cron, now);
        let next_dig = schedule::next_fire(s, &s.digest_cron, now);
        let Some(next) = [next_rem, next_dig].into_iter().flatten().min() else {
            // Cron lines that never fire again: nothing to schedule.
            stop.cancelled().await;
            return ("scheduler", Ok(()));
        };
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = beat.while_pending(tokio::time::sleep(wait)) => {}
            () = stop.cancelled() => return ("scheduler", Ok(())),
        }
        if Some(next) == next_rem {
            match services.enqueue_reminders(next).await {
                Ok(n) => info!(count = n, "reminders enqueued"),
                Err(e) => error!(error = %e, "enqueueing reminders failed"),
            }
        }
        if Some(next) == next_dig {
            match services.enqueue_digest(next).await {
                Ok(true) => info!("digest enqueued"),
                Ok(false) => {}
                Err(e) => error!(error = %e, "enqueueing the digest failed"),
            }
        }
        wake.notify_one();
    }
}

/// Tells systemd all is well while every task's heartbeat is fresh; a task
/// that hangs or died stops the pings, and systemd restarts the service.
async fn watchdog(
    beats: Vec<(String, Heartbeat)>,
    stop: CancellationToken,
) -> (&'static str, Result<(), String>) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        stop.cancelled().await;
        return ("watchdog", Ok(()));
    };
    let mut tick = tokio::time::interval(period / 3);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match beats.iter().find(|(_, b)| b.age() > STALE) {
                    None => notify(&[sd_notify::NotifyState::Watchdog]),
                    Some((name, b)) => error!(task = %name, silent_secs = b.age().as_secs(), "a task has stopped beating; not telling systemd all is well"),
                }
            }
            () = stop.cancelled() => return ("watchdog", Ok(())),
        }
    }
}

//! Sources of raw messages: files (.eml, .mbox, Maildir folders) for `ingest`,
//! and the daemon's mailboxes.

pub mod files;
pub mod imap;
pub mod maildir;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::clock::Heartbeat;
use crate::model::{Origin, RawMessage};
use crate::types::MailboxName;

/// A directive the daemon's tracing filter must end with (`EnvFilter::add_directive`):
/// async-imap traces every command it sends through `log`, the LOGIN password
/// and whole messages included.
pub const LOG_FILTER_DIRECTIVE: &str = "async_imap=info";

/// What the consumer says after handling a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// The raw bytes are durable and the message row is committed: the source
    /// may now flag or move the message.
    Committed,
    /// The message could not be recorded. `transient`: the cause may pass
    /// (database or disk), so the source offers the message again after a
    /// backoff; otherwise it is left unflagged and not offered again in this
    /// run, and the mailbox moves on.
    Failed { transient: bool, reason: String },
}

/// A message handed to the pipeline. The source waits for `done` before it
/// flags or moves the message; dropping `done` counts as a transient failure.
#[derive(Debug)]
pub struct Delivery {
    pub raw: RawMessage,
    pub done: tokio::sync::oneshot::Sender<Disposition>,
}

/// Why a mailbox source could not go on. [`run`] retries everything with
/// backoff except a configuration error (and a consumer that is gone).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("mailbox `{mailbox}` is misconfigured: {message}")]
    Config { mailbox: String, message: String },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("TLS with {host}: {message}")]
    Tls { host: String, message: String },
    #[error("login refused for user `{user}`: {message}")]
    Auth { user: String, message: String },
    #[error("folder `{folder}`: {message}")]
    Folder { folder: String, message: String },
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("no answer within {secs} s to {what}")]
    Timeout { what: &'static str, secs: u64 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The consumer could not record a message for a passing cause.
    #[error("storing a message failed: {0}")]
    Consumer(String),
    #[error("the message consumer has stopped")]
    ConsumerGone,
    /// Opening a mailbox taken over from another instance failed.
    #[error("opening the leased mailbox: {0}")]
    Lease(String),
}

impl SourceError {
    /// Whether trying again soon may help. Login, TLS, folder and
    /// configuration problems need an operator: [`run`] retries those only
    /// slowly (a fixed password file is read again), and a configuration
    /// error ends the source.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Imap(_)
            | Self::Timeout { .. }
            | Self::Io { .. }
            | Self::Consumer(_)
            | Self::Lease(_) => true,
            Self::Config { .. }
            | Self::Tls { .. }
            | Self::Auth { .. }
            | Self::Folder { .. }
            | Self::ConsumerGone => false,
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A mailbox the daemon reads: IMAP ([`imap::ImapSource`]) or a local
/// Maildir ([`maildir::MaildirSource`]); tests script their own. [`run`]
/// drives it: fetch, hand over, finish what was committed, wait, and on
/// errors reset and back off.
#[async_trait::async_trait]
pub trait MailboxSource: Send {
    fn name(&self) -> &MailboxName;

    /// The next messages not yet finished, oldest first, at most `max`;
    /// empty when there is nothing new. Opens the mailbox (connects, logs in)
    /// when it is not open.
    async fn fetch(&mut self, max: usize) -> Result<Vec<RawMessage>, SourceError>;

    /// Flags or moves committed messages as configured (`after`); they are
    /// not offered again.
    async fn finish(&mut self, committed: &[Origin]) -> Result<(), SourceError>;

    /// A message that could not be recorded at all: left as it is on the
    /// server, not offered again while this source lives.
    fn skip(&mut self, origin: &Origin);

    /// Waits until new mail may have come (IDLE, or the poll interval), or
    /// until `cancel` fires.
    async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), SourceError>;

    /// Drops the connection after an error; the next `fetch` opens it again.
    async fn reset(&mut self);
}

/// Most messages one `fetch` hands over before their verdicts are awaited,
/// and about the most bytes (a larger message still comes, alone). The
/// pipeline drains at each batch's end, while the verdicts are awaited and
/// the next batch fetched: so the count is large, and the bytes, which are
/// all in memory at once, are not.
pub const BATCH: usize = 64;
pub const BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// A one-shot run gives up on a mailbox after this many failed rounds in a row.
const ONCE_ATTEMPTS: u32 = 4;

/// Drives `source` until `cancel` fires (or, with `once`, until it holds
/// nothing new). Returns `Err` only for a configuration error, a consumer
/// that is gone, or, with `once`, a mailbox that kept failing. A message the
/// consumer could not record for good is skipped; one that failed for a
/// passing cause is offered again after a backoff, before anything newer.
pub async fn run(
    mut source: Box<dyn MailboxSource>,
    tx: mpsc::Sender<Delivery>,
    cancel: CancellationToken,
    once: bool,
    beat: Heartbeat,
) -> Result<(), SourceError> {
    let name = source.name().clone();
    let mut backoff = Backoff::new();
    let mut failed_rounds = 0u32;
    loop {
        beat.beat();
        if cancel.is_cancelled() {
            source.reset().await;
            return Ok(());
        }
        // A round finishes the messages it handed over even when cancelled.
        let round = beat
            .while_pending(round(source.as_mut(), &tx, &cancel, once))
            .await;
        let err = match round {
            Ok(Round::Idle) if once || cancel.is_cancelled() => {
                source.reset().await;
                return Ok(());
            }
            Ok(Round::Idle) | Ok(Round::Done) => {
                backoff.reset();
                failed_rounds = 0;
                continue;
            }
            Err(e @ (SourceError::Config { .. } | SourceError::ConsumerGone)) => {
                error!(mailbox = %name, error = %e, "mailbox source stopped");
                return Err(e);
            }
            Err(e) => e,
        };
        // The connection is fine when only the consumer failed.
        if !matches!(err, SourceError::Consumer(_)) {
            source.reset().await;
        }
        failed_rounds += 1;
        if once && failed_rounds >= ONCE_ATTEMPTS {
            error!(mailbox = %name, error = %err, attempts = failed_rounds, "mailbox unreadable; giving up this run");
            return Err(err);
        }
        let delay = backoff.delay(&err);
        if err.is_transient() {
            warn!(mailbox = %name, error = %err, retry_in_secs = delay.as_secs(), "mailbox failed; retrying");
        } else {
            error!(mailbox = %name, error = %err, retry_in_secs = delay.as_secs(), "mailbox unusable until an operator fixes it; retrying slowly");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Ok(()),
        }
    }
}

enum Round {
    /// Nothing new: the source waited for mail (or, with `once`, did not).
    Idle,
    /// A batch was handed over and its committed messages finished.
    Done,
}

/// One fetch and what follows it.
async fn round(
    source: &mut dyn MailboxSource,
    tx: &mpsc::Sender<Delivery>,
    cancel: &CancellationToken,
    once: bool,
) -> Result<Round, SourceError> {
    let batch = tokio::select! {
        b = source.fetch(BATCH) => b?,
        () = cancel.cancelled() => return Ok(Round::Idle),
    };
    if batch.is_empty() {
        if !once && !cancel.is_cancelled() {
            source.wait(cancel).await?;
        }
        return Ok(Round::Idle);
    }
    // Hand every message over first, so the consumer can work on several
    // at once, then take the verdicts in order.
    let mut verdicts = Vec::with_capacity(batch.len());
    for raw in batch {
        let origin = raw.origin.clone();
        let (done, verdict) = tokio::sync::oneshot::channel();
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            sent = tx.send(Delivery { raw, done }) => sent.map_err(|_| SourceError::ConsumerGone)?,
        }
        verdicts.push((origin, verdict));
    }
    let mut committed = Vec::with_capacity(verdicts.len());
    let mut retry = None;
    for (origin, verdict) in verdicts {
        // Once taken, a message is finished even when cancelled meanwhile.
        match verdict.await.unwrap_or(Disposition::Failed {
            transient: true,
            reason: "the consumer dropped the message".into(),
        }) {
            Disposition::Committed => committed.push(origin),
            Disposition::Failed {
                transient: true,
                reason,
            } => {
                warn!(origin = origin.display(), %reason, "message not stored; it will be offered again");
                retry.get_or_insert(reason);
            }
            Disposition::Failed {
                transient: false,
                reason,
            } => {
                error!(origin = origin.display(), %reason, "message could not be recorded; left unflagged, going on");
                source.skip(&origin);
            }
        }
    }
    if !committed.is_empty() {
        source.finish(&committed).await?;
    }
    match retry {
        Some(reason) => Err(SourceError::Consumer(reason)),
        None => Ok(Round::Done),
    }
}
/// Exponential backoff with jitter between reconnects: 1 s doubling to 5 min,
/// each delay ±20 % so that many mailboxes do not reconnect in step.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    pub(crate) const MAX: Duration = Duration::from_secs(300);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay after `err`: problems that need an operator wait the longest.
    pub(crate) fn delay(&mut self, err: &SourceError) -> Duration {
        let base = if err.is_transient() {
            let d = self.next;
            self.next = (self.next * 2).min(Self::MAX);
            d
        } else {
            Self::MAX
        };
        base.mul_f64(rand::rng().random_range(0.8..=1.2))
    }
}

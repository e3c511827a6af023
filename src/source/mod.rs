//! Sources of raw messages: files (.eml, .mbox, Maildir folders) for `ingest`,
//! and the daemon's mailboxes.

pub mod files;
pub mod imap;
pub mod maildir;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::types::{MailboxName, Uid};

/// Where a raw message came from; identifies it for idempotence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file given on the command line; `index` counts messages inside an mbox.
    File { path: PathBuf, index: Option<usize> },
    /// A Maildir message, by its unique name (without the `:2,` flags).
    Maildir { mailbox: MailboxName, key: String },
    Imap {
        mailbox: MailboxName,
        uidvalidity: u32,
        uid: Uid,
    },
}

impl Origin {
    /// How the report names the source.
    pub fn display(&self) -> String {
        match self {
            Origin::File { path, index: None } => path.display().to_string(),
            Origin::File {
                path,
                index: Some(i),
            } => format!("{}#{}", path.display(), i + 1),
            Origin::Maildir { mailbox, key } => format!("maildir:{mailbox}/{key}"),
            Origin::Imap {
                mailbox,
                uidvalidity,
                uid,
            } => format!("imap:{mailbox}/{uidvalidity}/{}", uid.0),
        }
    }
}

/// A message as it arrived, before anything is parsed.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub bytes: Vec<u8>,
    pub origin: Origin,
    /// When the message reached the mailbox (IMAP INTERNALDATE, Maildir delivery
    /// time); None for loose files, where the Received header is used.
    pub received_at: Option<DateTime<Utc>>,
}

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
    /// Storing failed (database, archive); the source leaves the message as it
    /// is and offers it again later.
    Failed(String),
}

/// A message handed to the pipeline. The source waits for `done` before it
/// flags or moves the message; dropping `done` counts as `Failed`.
#[derive(Debug)]
pub struct Delivery {
    pub raw: RawMessage,
    pub done: tokio::sync::oneshot::Sender<Disposition>,
}

/// Why a mailbox source could not go on. The run loops log these and retry;
/// only [`SourceError::Config`] and [`SourceError::ConsumerGone`] end a run.
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
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("storing the message failed: {0}")]
    Consumer(String),
    #[error("the message consumer has stopped")]
    ConsumerGone,
}

impl SourceError {
    /// Whether trying again soon may help. Login, TLS and folder problems need
    /// an operator, so the run loops retry those only slowly.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Imap(_)
            | Self::Timeout { .. }
            | Self::Io(_)
            | Self::Consumer(_) => true,
            Self::Config { .. }
            | Self::Tls { .. }
            | Self::Auth { .. }
            | Self::Folder { .. }
            | Self::ConsumerGone => false,
        }
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
        let base = if err.is_retryable() {
            let d = self.next;
            self.next = (self.next * 2).min(Self::MAX);
            d
        } else {
            Self::MAX
        };
        base.mul_f64(rand::rng().random_range(0.8..=1.2))
    }
}

/// Hands `raw` to the consumer and waits for its verdict; None when cancelled
/// before the consumer took it. Once taken, cancellation does not cut the wait
/// short: the message in hand is finished first.
pub(crate) async fn deliver(
    tx: &tokio::sync::mpsc::Sender<Delivery>,
    raw: RawMessage,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Option<Disposition>, SourceError> {
    let (done, verdict) = tokio::sync::oneshot::channel();
    tokio::select! {
        biased;
        () = cancel.cancelled() => return Ok(None),
        sent = tx.send(Delivery { raw, done }) => sent.map_err(|_| SourceError::ConsumerGone)?,
    }
    Ok(Some(verdict.await.unwrap_or_else(|_| {
        Disposition::Failed("the consumer dropped the message".into())
    })))
}

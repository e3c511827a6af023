//! Sources of raw messages: files (.eml, .mbox, Maildir folders) for `ingest`,
//! and the daemon's mailboxes.

pub mod files;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

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

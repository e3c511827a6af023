//! Intake: a raw message becomes headers, body text and a flat list of files
//! (attachments, archive entries, files of forwarded mail), plus problems.
//! Parsing only: no I/O.

use chrono::{DateTime, FixedOffset};

use crate::config::Limits;
use crate::types::{Problem, Sha256};

/// Who we are, so our own mail and loops are recognised.
#[derive(Debug, Clone, Default)]
pub struct OwnIdentity {
    /// Our mailbox addresses (lower case).
    pub addresses: Vec<String>,
    /// Domain of the Message-IDs we generate.
    pub message_id_domain: String,
}

/// The headers the later stages need, decoded.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub message_id: Option<String>,
    /// Sender address, lower case.
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Delivered-To / X-Original-To, lower case.
    pub delivered_to: Vec<String>,
    pub subject: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
    /// Time in the topmost Received header: when the message reached our server.
    pub received: Option<DateTime<FixedOffset>>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// One file found in the message, wherever it was nested.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Decoded file name (last path component).
    pub filename: String,
    /// Where it was: `材料.zip/推荐表.xlsx`, `转发：xx.eml/附件.pdf`.
    pub path: String,
    /// Content-Type the sender declared (lower case, no parameters).
    pub declared_type: Option<String>,
    /// Media type from the content itself (magic bytes), else from the name.
    pub media_type: String,
    pub data: Vec<u8>,
    pub sha256: Sha256,
    /// Problems with this file found while unpacking it.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Default)]
pub struct Intake {
    pub header: Header,
    /// Plain text of the body (HTML converted), for content matching.
    pub body_text: String,
    /// Why the message is machine-generated (no ack), or None.
    pub auto_generated: Option<String>,
    pub files: Vec<FileEntry>,
    /// Problems with the message as a whole.
    pub problems: Vec<Problem>,
    /// Download links of "超大附件" (QQ/163 large attachments) found in the body.
    pub links: Vec<String>,
}

/// Parses a raw message. Never panics; what cannot be read becomes a problem.
pub fn parse(_raw: &[u8], _limits: &Limits, _own: &OwnIdentity) -> Intake {
    Intake::default()
}

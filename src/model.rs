//! The data every stage shares: what was concluded about a message
//! ([`Analysis`] and its parts), the decoded headers, the tables read out of
//! forms, and the problems told to senders ([`Problem`], [`ProblemCode`]).
//! Plain data: no stage logic, no I/O. It imports only [`crate::types`], so
//! any stage may import it without an import circle.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{
    CampaignId, DeadlineId, DocForm, DocumentKind, FormId, MailAddress, MailboxName, OrgId, Sha256,
    Uid,
};

macro_rules! problem_codes {
    ($($(#[$m:meta])* $variant:ident = $code:literal,)*) => {
        /// Why a message or a file needs attention. The code is stable: it is
        /// stored, tested and documented; the Chinese sentence beside it in a
        /// [`Problem`] is what people read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProblemCode {
            $($(#[$m])* $variant,)*
        }

        impl ProblemCode {
            pub const ALL: &'static [ProblemCode] = &[$(Self::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

problem_codes! {
    // The message as a whole.
    MessageUnreadable = "message_unreadable",
    MessageTooLarge = "message_too_large",
    NoAttachment = "no_attachment",
    TooManyAttachments = "too_many_attachments",
    LargeAttachmentLink = "large_attachment_link",
    WinmailDat = "winmail_dat",
    /// Analysis overran its time budget.
    ProcessingTimeout = "processing_timeout",
    /// Storing or answering the message failed for a reason a retry cannot
    /// fix; the raw message is kept for a person to look at.
    ProcessingFailed = "processing_failed",
    /// No address an acknowledgement could be sent to.
    AckUnaddressable = "ack_unaddressable",
    // Files as intake finds them.
    EmptyFile = "empty_file",
    FileTooLarge = "file_too_large",
    EncryptedFile = "encrypted_file",
    MacroFile = "macro_file",
    Executable = "executable",
    ArchiveUnsupported = "archive_unsupported",
    ArchiveCorrupt = "archive_corrupt",
    ArchiveEncrypted = "archive_encrypted",
    ArchiveTooDeep = "archive_too_deep",
    ArchiveTooManyEntries = "archive_too_many_entries",
    ArchiveTooLarge = "archive_too_large",
    ArchiveRatio = "archive_ratio",
    // Reading a file.
    FileUnreadable = "file_unreadable",
    FileEncrypted = "file_encrypted",
    FileTimeout = "file_timeout",
    ScanUnreadable = "scan_unreadable",
    ScanTooLarge = "scan_too_large",
    ScanTimeout = "scan_timeout",
    ScanPagesSkipped = "scan_pages_skipped",
    ScanLowResolution = "scan_low_resolution",
    ScanBlank = "scan_blank",
    SealNotFound = "seal_not_found",
    MediaUnreadable = "media_unreadable",
    PhotoUnreadable = "photo_unreadable",
    PhotoTooSmall = "photo_too_small",
    PhotoTooLarge = "photo_too_large",
    PhotoFormat = "photo_format",
    VideoUnreadable = "video_unreadable",
    VideoTooLong = "video_too_long",
    VideoDurationUnknown = "video_duration_unknown",
    // What a form says.
    FieldMissing = "field_missing",
    SummaryTooLong = "summary_too_long",
    PlaceNotCountyLevel = "place_not_county_level",
    ContactNoPhone = "contact_no_phone",
    ValueNotNumber = "value_not_number",
    ValueNotInteger = "value_not_integer",
    ValueApproximate = "value_approximate",
    ValueUnitConverted = "value_unit_converted",
    UnitMismatch = "unit_mismatch",
    // A deadline's rules.
    TooManyItems = "too_many_items",
    TooFewPhotos = "too_few_photos",
    // What a file is sent as.
    /// A form sent as a PDF exported from Word/WPS, unsealed: neither the
    /// editable 电子版 nor a stamped scan.
    ElectronicNotEditable = "electronic_not_editable",
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProblemCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProblemCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown problem code `{s}`")))
    }
}

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
    /// The configured mailbox the message came from, if any.
    pub fn mailbox(&self) -> Option<&MailboxName> {
        match self {
            Origin::Imap { mailbox, .. } | Origin::Maildir { mailbox, .. } => Some(mailbox),
            Origin::File { .. } => None,
        }
    }

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
///
/// Cheap to clone: the bytes and their hash are shared, so the archive,
/// the analysis and the row see one copy, hashed once.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub bytes: Bytes,
    pub origin: Origin,
    /// When the message reached the mailbox (IMAP INTERNALDATE, Maildir delivery
    /// time); None for loose files, where the Received header is used.
    pub received_at: Option<DateTime<Utc>>,
    /// Computed on first use, by whichever stage (usually the archive, off
    /// the runtime) needs it first.
    digest: Arc<OnceLock<Sha256>>,
}

impl RawMessage {
    pub fn new(
        bytes: impl Into<Bytes>,
        origin: Origin,
        received_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            bytes: bytes.into(),
            origin,
            received_at,
            digest: Arc::default(),
        }
    }

    /// SHA-256 of the bytes: the archive's key and the row's.
    pub fn sha256(&self) -> &Sha256 {
        self.digest.get_or_init(|| Sha256::of(&self.bytes))
    }
}

/// Something wrong with a message or a file, said so a unit contact can fix it.
///
/// `code` is stable (for the database and tests); `message` is the Chinese
/// sentence that goes into the report and the acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: ProblemCode,
    pub message: String,
}

impl Problem {
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
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
    /// `Authentication-Results` fields as the receiving servers wrote them.
    pub authentication_results: Vec<String>,
}

/// A value read from a form: typed where it could be, with the text as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    /// A number, a string, or null when the cell was empty (无, /, —).
    pub value: serde_json::Value,
    /// The text as the unit wrote it.
    pub text: String,
}

/// A form's table read from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub form_id: FormId,
    /// The form's short name, e.g. `推荐表`.
    pub form: String,
    /// `rows` layout: one map per record, canonical key → value.
    pub rows: Option<Vec<BTreeMap<String, FieldValue>>>,
    /// `fields` layout: canonical key → value.
    pub fields: Option<BTreeMap<String, FieldValue>>,
}

impl Table {
    /// Records in a rows form (activities recommended); None for a fields form.
    /// Per-unit limits (青岛: at most 3) are applied by the pipeline on this.
    pub fn row_count(&self) -> Option<usize> {
        self.rows.as_ref().map(Vec::len)
    }
}

/// Facts about a photo or video.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// `jpeg`, `png`, `mp4`, …
    pub format: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_secs: Option<f64>,
}

/// How the organisation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    Address,
    Domain,
    Content,
    /// A coordinator assigned it (`baosong assign`), or an address learned from that.
    Manual,
    None,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Domain => "domain",
            Self::Content => "content",
            Self::Manual => "manual",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrgMatch {
    pub id: Option<OrgId>,
    pub name: Option<String>,
    pub matched_by: MatchedBy,
    /// What the match rests on, e.g. `From njkjjrcc@nanjing.gov.cn is in the directory`.
    pub evidence: String,
}

/// One file of a message, classified and read.
#[derive(Debug, Clone)]
pub struct Document {
    pub filename: String,
    pub path: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: Sha256,
    pub kind: DocumentKind,
    pub form: DocForm,
    pub sealed: Option<bool>,
    pub seal_confidence: Option<f32>,
    pub table: Option<Table>,
    /// Format, size in pixels, duration: for the deadline's photo and video rules.
    pub media: Option<MediaInfo>,
    pub problems: Vec<Problem>,
}

/// Whether to acknowledge the message, to whom, and why (not).
#[derive(Debug, Clone, PartialEq)]
pub struct AckDecision {
    pub send: bool,
    /// Not sent until a coordinator confirms the sender (unknown sender,
    /// failed DMARC): then it goes out.
    pub held: bool,
    /// Reply-To if usable, else From; None when neither is an address a
    /// mail can be sent to.
    pub to: Option<MailAddress>,
    /// The sender's display name, made safe for a header.
    pub to_name: Option<String>,
    /// Which of our mailboxes answers: the one the mail was sent To.
    pub from_mailbox: Option<MailboxName>,
    pub reason: String,
}

/// Everything baosong concluded about one message.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub sha256: Sha256,
    pub size: u64,
    pub header: Header,
    pub auto_generated: Option<String>,
    pub organisation: OrgMatch,
    pub campaign: Option<CampaignId>,
    pub deadline: Option<DeadlineId>,
    /// When the message reached the mailbox (INTERNALDATE, else top Received, else Date).
    pub arrived_at: Option<DateTime<Utc>>,
    pub late: Option<bool>,
    pub documents: Vec<Document>,
    /// Problems with the message as a whole (no attachment, unreadable, …).
    pub problems: Vec<Problem>,
    pub ack: AckDecision,
    pub body_excerpt: String,
    /// The same for every copy of this mail delivered to the campaign's
    /// mailboxes (Message-ID, sender, attachments, campaign); None when the
    /// mail has no Message-ID to tell copies by.
    pub content_key: Option<String>,
    /// Why a coordinator must look at this mail (需人工处理), in Chinese;
    /// None when nobody needs to.
    pub attention: Option<String>,
}

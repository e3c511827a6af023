//! One raw message through every stage: intake, extract, classify, match.
//! No I/O: the result is what the store records and the report prints.

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::directory::Directory;
use crate::extract::Table;
use crate::intake::Header;
use crate::source::RawMessage;
use crate::types::{CampaignId, DeadlineId, DocForm, DocumentKind, OrgId, Problem, Sha256};

/// How the organisation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
    pub problems: Vec<Problem>,
}

/// Whether to acknowledge the message, to whom, and why (not).
#[derive(Debug, Clone, PartialEq)]
pub struct AckDecision {
    pub send: bool,
    pub to: Option<String>,
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
}

/// What the pipeline needs besides the message.
pub struct Context<'a> {
    pub config: &'a Config,
    pub directory: &'a Directory,
    /// Addresses a coordinator has tied to an organisation (`baosong assign`).
    pub learned: &'a [(String, OrgId)],
}

/// Runs every stage over one message.
pub fn analyse(_raw: &RawMessage, _ctx: &Context<'_>) -> Analysis {
    unimplemented!()
}

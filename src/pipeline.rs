//! One raw message through every stage: intake, extract, classify, match.
//! No I/O: the result is what the store records and the report prints.

use chrono::{DateTime, Utc};

use crate::classify::classify;
use crate::config::{Config, DeadlineConfig, Limits};
use crate::directory::Directory;
use crate::extract::{Extraction, Extractor, media};
use crate::intake::{self, OwnIdentity};
use crate::matching::{self, ContentEvidence};
use crate::model::Header;
use crate::model::{AckDecision, Analysis, Document, OrgMatch, Problem, ProblemCode};
use crate::source::{Origin, RawMessage};
use crate::types::{DocForm, DocumentKind, OrgId, Sha256};

/// What the pipeline needs besides the message.
pub struct Context<'a> {
    pub config: &'a Config,
    pub directory: &'a Directory,
    /// Addresses a coordinator has tied to an organisation (`baosong assign`).
    pub learned: &'a [(String, OrgId)],
    /// Who reads the files: contained workers in the daemon, in-process elsewhere.
    pub extractor: &'a dyn Extractor,
    /// The time of the analysis: what "now" is when a message has no arrival time.
    pub now: DateTime<Utc>,
}

/// Intake problems after which a file is not opened again.
const BLOCKING: &[ProblemCode] = &[
    ProblemCode::EncryptedFile,
    ProblemCode::Executable,
    ProblemCode::EmptyFile,
    ProblemCode::FileTooLarge,
    ProblemCode::ArchiveEncrypted,
    ProblemCode::ArchiveCorrupt,
    ProblemCode::ArchiveTooDeep,
    ProblemCode::ArchiveTooManyEntries,
    ProblemCode::ArchiveTooLarge,
    ProblemCode::ArchiveRatio,
    ProblemCode::ArchiveUnsupported,
];

/// Runs every stage over one message.
pub fn analyse(raw: &RawMessage, ctx: &Context<'_>) -> Analysis {
    let config = ctx.config;
    let own = own_identity(config);
    let intake = intake::parse(&raw.bytes, &config.limits, &own);
    let header = intake.header.clone();
    let subject = header.subject.clone().unwrap_or_default();

    let mut documents = Vec::with_capacity(intake.files.len());
    let mut form_units = Vec::new();
    let mut extraction_text = String::new();
    for file in &intake.files {
        // A file intake already refused (password, program, empty, too big,
        // unopened archive) has nothing more to read.
        let ex = if file.problems.iter().any(|p| BLOCKING.contains(&p.code)) {
            Extraction::default()
        } else {
            ctx.extractor.extract(file, &config.forms, &config.limits)
        };
        let (kind, form) = classify(file, &ex, &subject, &config.forms);
        if let Some(u) = &ex.unit {
            form_units.push(u.clone());
        }
        if extraction_text.len() < 8 * 1024 {
            extraction_text.push_str(&ex.text);
            extraction_text.push('\n');
        }
        let mut problems = file.problems.clone();
        problems.extend(ex.problems.iter().map(|p| name_file(p, &file.filename)));
        let is_form = matches!(
            kind,
            DocumentKind::RecommendationForm | DocumentKind::StatisticsForm
        );
        if is_form && form == DocForm::Scan && ex.sealed == Some(false) {
            problems.push(Problem::new(
                ProblemCode::SealNotFound,
                format!(
                    "《{}》中未检测到红色公章。如已盖章请忽略；如未盖章，请盖章后重新扫描发送。",
                    file.filename
                ),
            ));
        }
        // Photos are not judged for seals; an electronic file only reports a
        // seal it carries (an electronic seal image).
        let sealed = match form {
            DocForm::Scan => ex.sealed,
            _ => ex.sealed.filter(|s| *s),
        };
        documents.push(Document {
            filename: file.filename.clone(),
            path: file.path.clone(),
            media_type: file.media_type.clone(),
            size: file.data.len() as u64,
            sha256: file.sha256.clone(),
            kind,
            form,
            sealed,
            seal_confidence: sealed.and(ex.seal_confidence),
            table: ex.table,
            media: ex.media,
            problems,
        });
    }

    let evidence = ContentEvidence {
        form_units: form_units.clone(),
        subject: subject.clone(),
        filenames: intake.files.iter().map(|f| f.path.clone()).collect(),
        from_name: header.from_name.clone().unwrap_or_default(),
        signature: tail_chars(&intake.body_text, 400),
    };
    let organisation = matching::match_organisation(
        header.from.as_deref(),
        &evidence,
        ctx.directory,
        ctx.learned,
        config,
    );

    let arrived_at = arrival(raw, &header);
    let mailbox = match &raw.origin {
        Origin::Imap { mailbox, .. } | Origin::Maildir { mailbox, .. } => Some(mailbox),
        Origin::File { .. } => None,
    };
    let mut recipients = header.to.clone();
    recipients.extend(header.cc.iter().cloned());
    recipients.extend(header.delivered_to.iter().cloned());
    let names: Vec<&str> = documents.iter().map(|d| d.filename.as_str()).collect();
    let campaign_text = format!(
        "{subject}\n{}\n{}\n{extraction_text}",
        names.join("\n"),
        intake.body_text
    );
    let campaign =
        matching::match_campaign(config, mailbox, &recipients, &campaign_text, arrived_at);
    let kinds: Vec<DocumentKind> = documents.iter().map(|d| d.kind).collect();
    let deadline =
        campaign.and_then(|c| matching::match_deadline(c, &kinds, arrived_at.unwrap_or(ctx.now)));
    let late = match (campaign, &deadline) {
        (Some(c), Some(d)) => matching::is_late(c, d, arrived_at),
        _ => None,
    };

    let mut problems = intake.problems.clone();
    if let (Some(c), Some(d)) = (campaign, &deadline)
        && let Some(dl) = c.deadlines.iter().find(|x| &x.id == d)
    {
        problems.extend(deadline_checks(dl, &documents));
    }
    if let Some(org_id) = &organisation.id {
        for doc in &mut documents {
            doc.problems.extend(unit_mismatch(doc, org_id, ctx));
        }
    }
    let unreadable = problems
        .iter()
        .any(|p| p.code == ProblemCode::MessageUnreadable);
    if intake.files.is_empty()
        && intake.auto_generated.is_none()
        && intake.links.is_empty()
        && !unreadable
    {
        problems.push(Problem::new(
            ProblemCode::NoAttachment,
            "邮件中没有附件。如果忘记添加附件，请把材料作为附件重新发送。",
        ));
    }

    let ack = decide_ack(&header, intake.auto_generated.as_deref(), &organisation);
    Analysis {
        sha256: Sha256::of(&raw.bytes),
        size: raw.bytes.len() as u64,
        header,
        auto_generated: intake.auto_generated.clone(),
        organisation,
        campaign: campaign.map(|c| c.id.clone()),
        deadline,
        arrived_at,
        late,
        documents,
        problems,
        ack,
        body_excerpt: intake.body_text.chars().take(2000).collect(),
    }
}

/// The analysis of a message whose files could not be read in time (or made
/// a parser panic): headers only, the given problem, and an ack that says so.
pub fn headers_only(raw: &RawMessage, ctx: &Context<'_>, problem: Problem) -> Analysis {
    let config = ctx.config;
    let limits = Limits {
        max_attachments: 1,
        max_message_bytes: 1,
        ..config.limits.clone()
    };
    let intake = intake::parse(&raw.bytes, &limits, &own_identity(config));
    let header = intake.header;
    let evidence = ContentEvidence {
        subject: header.subject.clone().unwrap_or_default(),
        from_name: header.from_name.clone().unwrap_or_default(),
        ..Default::default()
    };
    let organisation = matching::match_organisation(
        header.from.as_deref(),
        &evidence,
        ctx.directory,
        ctx.learned,
        config,
    );
    let arrived_at = arrival(raw, &header);
    let ack = decide_ack(&header, intake.auto_generated.as_deref(), &organisation);
    Analysis {
        sha256: Sha256::of(&raw.bytes),
        size: raw.bytes.len() as u64,
        header,
        auto_generated: intake.auto_generated,
        organisation,
        campaign: None,
        deadline: None,
        arrived_at,
        late: None,
        documents: Vec::new(),
        problems: vec![problem],
        ack,
        body_excerpt: String::new(),
    }
}

/// When the message reached the mailbox: INTERNALDATE (or the Maildir
/// delivery time), else the top Received header, else the sender's Date.
fn arrival(raw: &RawMessage, header: &Header) -> Option<DateTime<Utc>> {
    raw.received_at
        .or(header.received.map(|t| t.with_timezone(&Utc)))
        .or(header.date.map(|t| t.with_timezone(&Utc)))
}

/// Who we are, for loop detection: our mailboxes and our Message-ID domain.
pub fn own_identity(config: &Config) -> OwnIdentity {
    let mut addresses: Vec<String> = config
        .mailboxes
        .iter()
        .map(|m| m.address.to_lowercase())
        .collect();
    if let Some(a) = crate::types::bare_address(&config.smtp.from) {
        addresses.push(a);
    }
    OwnIdentity {
        addresses,
        message_id_domain: config.smtp.message_id_domain.to_lowercase(),
    }
}

/// Problem messages from the extractor speak of "the file"; name it.
fn name_file(p: &Problem, filename: &str) -> Problem {
    if p.message.contains(filename) {
        p.clone()
    } else {
        Problem::new(p.code, format!("《{filename}》：{}", p.message))
    }
}

fn tail_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}

/// Rules a deadline sets beyond which documents are required: item limits,
/// photo and video rules.
fn deadline_checks(dl: &DeadlineConfig, documents: &[Document]) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(max) = dl.max_items_per_unit {
        let items: usize = documents
            .iter()
            .filter(|d| d.kind == DocumentKind::RecommendationForm)
            .filter_map(|d| d.table.as_ref()?.rows.as_ref().map(Vec::len))
            .max()
            .unwrap_or(0);
        if items > max as usize {
            out.push(Problem::new(
                ProblemCode::TooManyItems,
                format!("推荐表中共{items}项活动，每个单位最多推荐{max}项，请删减后重新发送。"),
            ));
        }
    }
    if let Some(rule) = &dl.photos {
        let photos: Vec<&Document> = documents
            .iter()
            .filter(|d| d.kind == DocumentKind::Photo)
            .collect();
        for p in &photos {
            let info = p.media.clone().unwrap_or_default();
            out.extend(media::check_photo(&p.filename, p.size, &info, rule));
        }
        if (photos.len() as u32) < rule.min_count {
            out.push(Problem::new(
                ProblemCode::TooFewPhotos,
                format!(
                    "收到活动照片{}张，要求不少于{}张，请补充后发送。",
                    photos.len(),
                    rule.min_count
                ),
            ));
        }
    }
    if let Some(rule) = &dl.video {
        for v in documents.iter().filter(|d| d.kind == DocumentKind::Video) {
            let info = v.media.clone().unwrap_or_default();
            out.extend(media::check_video(&v.filename, &info, rule));
        }
    }
    out
}

/// A form whose unit cell names another organisation than the sender's.
fn unit_mismatch(doc: &Document, org: &OrgId, ctx: &Context<'_>) -> Option<Problem> {
    let table = doc.table.as_ref()?;
    let unit = table
        .fields
        .as_ref()
        .and_then(|f| f.get("unit"))
        .or_else(|| table.rows.as_ref()?.first()?.get("unit"))?;
    let text = unit.text.trim();
    if text.is_empty() {
        return None;
    }
    let ev = ContentEvidence {
        form_units: vec![text.to_owned()],
        ..Default::default()
    };
    let m = matching::match_organisation(None, &ev, ctx.directory, &[], ctx.config);
    let other = m.id.filter(|id| id != org)?;
    let ours = ctx
        .directory
        .get(org)
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let theirs = m.name.unwrap_or_else(|| other.to_string());
    Some(Problem::new(
        ProblemCode::UnitMismatch,
        format!(
            "《{}》中填写的单位为“{text}”（{theirs}），与发件单位{ours}不一致，请核对。",
            doc.filename
        ),
    ))
}

fn decide_ack(header: &Header, auto: Option<&str>, org: &OrgMatch) -> AckDecision {
    if let Some(reason) = auto {
        return AckDecision {
            send: false,
            to: None,
            reason: format!("auto-generated mail ({reason})"),
        };
    }
    let to = header.reply_to.clone().or_else(|| header.from.clone());
    match to {
        None => AckDecision {
            send: false,
            to: None,
            reason: "no sender address to answer".into(),
        },
        Some(to) => AckDecision {
            send: true,
            to: Some(to),
            reason: if org.id.is_some() {
                "acknowledge receipt".into()
            } else {
                "acknowledge receipt and ask which unit sent it".into()
            },
        },
    }
}

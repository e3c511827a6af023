//! One raw message through every stage: intake, extract, classify, match.
//! No I/O: the result is what the store records and the report prints.

use chrono::{DateTime, Utc};

use crate::classify::classify;
use crate::config::{CampaignConfig, Config, DeadlineConfig, Limits};
use crate::directory::Directory;
use crate::extract::{Extraction, Extractor, media};
use crate::intake::{self, OwnIdentity};
use crate::matching::{self, ContentEvidence, DocumentText};
use crate::model::{
    AckDecision, Analysis, Document, Header, OrgMatch, Problem, ProblemCode, RawMessage,
};
use crate::status;
use crate::trust::{self, AuthVerdict};
use crate::types::{DocForm, DocumentKind, MailAddress, MailboxName, OrgId, Sha256};

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
    ProblemCode::FileUnreadable,
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
    let mut document_texts = Vec::new();
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
        if !ex.text.trim().is_empty() {
            document_texts.push(DocumentText {
                path: file.path.clone(),
                text: ex.text.clone(),
            });
        }
        if extraction_text.len() < 8 * 1024 {
            extraction_text.push_str(&ex.text);
            extraction_text.push('\n');
        }
        let mut problems = file.problems.clone();
        problems.extend(ex.problems.iter().map(|p| name_file(p, &file.filename)));
        problems.extend(crate::classify::problems(file, &ex, kind, form));
        // Photos are not judged for seals; an electronic file only reports a
        // seal it carries (an electronic seal image).
        let sealed = match form {
            DocForm::Scan => ex.sealed,
            DocForm::Media => None,
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
        documents: document_texts,
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
    let mailbox = raw.origin.mailbox();
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
    seal_rule(campaign, &mut documents);
    if let (Some(c), Some(d)) = (campaign, &deadline)
        && let Some(dl) = c.deadlines.iter().find(|x| &x.id == d)
    {
        file_rules(dl, &mut documents);
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

    let wanted = campaign.is_some_and(|c| {
        documents.iter().any(|d| {
            c.deadlines
                .iter()
                .any(|dl| dl.requires.iter().any(|r| r.accepts(d.kind)))
        })
    });
    let answering = answering_mailbox(config, &header, mailbox);
    let mut ack = decide_ack(
        &header,
        intake.auto_generated.as_deref(),
        &organisation,
        wanted,
        answering,
        ctx,
    );
    if ack.to.is_none() && intake.auto_generated.is_none() {
        problems.push(unaddressable());
        ack.send = false;
    }
    let content_key = content_key(&header, campaign, &documents);
    let attention = attention(
        &ack,
        &organisation,
        intake.auto_generated.as_deref(),
        &problems,
    );
    Analysis {
        sha256: raw.sha256().clone(),
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
        content_key,
        attention,
    }
}

/// Why a person must look at a mail, if anyone must: said in the digest's
/// 需人工处理 list. Machine mail (auto-replies, bounces) needs nobody.
fn attention(
    ack: &AckDecision,
    org: &OrgMatch,
    auto: Option<&str>,
    problems: &[Problem],
) -> Option<String> {
    if auto.is_some() {
        return None;
    }
    const SERIOUS: &[ProblemCode] = &[
        ProblemCode::MessageUnreadable,
        ProblemCode::ProcessingTimeout,
        ProblemCode::ProcessingFailed,
        ProblemCode::AckUnaddressable,
    ];
    let mut why = Vec::new();
    if org.id.is_none() {
        why.push("未能确认单位".to_owned());
    }
    if ack.held {
        why.push(if ack.reason.contains("DMARC") {
            "发件人未通过收件服务器的身份验证（DMARC/SPF），回执暂未发送".to_owned()
        } else {
            "发件人不在单位名录中，回执暂未发送，确认单位后发出".to_owned()
        });
    }
    why.extend(
        problems
            .iter()
            .filter(|p| SERIOUS.contains(&p.code))
            .map(|p| p.message.clone()),
    );
    (!why.is_empty()).then(|| why.join("；"))
}

/// Which of our mailboxes answers a mail: the first of ours it was sent To,
/// else Cc, else the one that received it.
fn answering_mailbox(
    config: &Config,
    header: &Header,
    received_by: Option<&MailboxName>,
) -> Option<MailboxName> {
    header
        .to
        .iter()
        .chain(&header.cc)
        .find_map(|addr| {
            config
                .mailboxes
                .iter()
                .find(|m| m.address.eq_ignore_ascii_case(addr))
        })
        .map(|m| m.name.clone())
        .or_else(|| received_by.cloned())
}

/// What every copy of one mail delivered to several of a campaign's
/// mailboxes shares: Message-ID, sender, campaign and attachments. Their
/// delivery headers (Received, Delivered-To) differ, so their bytes do.
fn content_key(
    header: &Header,
    campaign: Option<&CampaignConfig>,
    documents: &[Document],
) -> Option<String> {
    let id = header.message_id.as_deref()?;
    let mut digests: Vec<&str> = documents.iter().map(|d| d.sha256.as_str()).collect();
    digests.sort_unstable();
    let key = serde_json::json!([id, header.from, campaign.map(|c| c.id.as_str()), digests]);
    Some(Sha256::of(key.to_string().as_bytes()).0)
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
    let answering = answering_mailbox(config, &header, raw.origin.mailbox());
    let mut ack = decide_ack(
        &header,
        intake.auto_generated.as_deref(),
        &organisation,
        false,
        answering,
        ctx,
    );
    let mut problems = vec![problem];
    if ack.to.is_none() && intake.auto_generated.is_none() {
        problems.push(unaddressable());
        ack.send = false;
    }
    let attention = attention(
        &ack,
        &organisation,
        intake.auto_generated.as_deref(),
        &problems,
    );
    Analysis {
        sha256: raw.sha256().clone(),
        size: raw.bytes.len() as u64,
        header,
        auto_generated: intake.auto_generated,
        organisation,
        campaign: None,
        deadline: None,
        arrived_at,
        late: None,
        documents: Vec::new(),
        problems,
        ack,
        body_excerpt: String::new(),
        content_key: None,
        attention,
    }
}

/// A message whose analysis broke off (a panic): recorded from its headers.
pub fn unreadable() -> Problem {
    Problem::new(
        ProblemCode::MessageUnreadable,
        "邮件无法解析，已保存原件，工作人员将人工处理。",
    )
}

fn unaddressable() -> Problem {
    Problem::new(
        ProblemCode::AckUnaddressable,
        "发件地址无法回复（格式不正确），未发送回执，工作人员将人工联系。",
    )
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
    addresses.push(config.smtp.from.address());
    addresses.extend(
        config
            .mailboxes
            .iter()
            .filter_map(|m| Some(m.from.as_ref()?.address())),
    );
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

/// A scan without a seal, as a problem of that file, where the notice asks
/// for the 盖章扫描件 of its kind (青岛 asks for the 电子版 only).
fn seal_rule(campaign: Option<&CampaignConfig>, documents: &mut [Document]) {
    for d in documents.iter_mut() {
        if d.form == DocForm::Scan
            && d.sealed == Some(false)
            && status::wants_scan(campaign, d.kind)
        {
            d.problems.push(Problem::new(
                ProblemCode::SealNotFound,
                format!(
                    "《{}》中未检测到红色公章。如已盖章请忽略；如未盖章，请盖章后重新扫描发送。",
                    d.filename
                ),
            ));
        }
    }
}

/// A deadline's rules about single files (photo size and format, video
/// length), as problems of those files. Rules over all a unit sent (item
/// limit, photo count) are the status view's ([`crate::status`]).
fn file_rules(dl: &DeadlineConfig, documents: &mut [Document]) {
    for d in documents.iter_mut() {
        let info = d.media.clone().unwrap_or_default();
        match (d.kind, &dl.photos, &dl.video) {
            (DocumentKind::Photo, Some(rule), _) => {
                let found = media::check_photo(&d.filename, d.size, &info, rule);
                d.problems.extend(found);
            }
            (DocumentKind::Video, _, Some(rule)) => {
                d.problems
                    .extend(media::check_video(&d.filename, &info, rule));
            }
            _ => {}
        }
    }
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

/// Whether to acknowledge, to whom, from which of our mailboxes, and why
/// (not). See [`crate::trust`] for who may be answered automatically.
fn decide_ack(
    header: &Header,
    auto: Option<&str>,
    org: &OrgMatch,
    wanted_document: bool,
    answering: Option<MailboxName>,
    ctx: &Context<'_>,
) -> AckDecision {
    let decision = |send: bool, to: Option<MailAddress>, reason: String| AckDecision {
        send,
        held: !send && to.is_some(),
        to_name: header
            .from_name
            .as_deref()
            .map(|n| crate::fold::clean_line(n, 60)),
        to,
        from_mailbox: answering.clone(),
        reason,
    };
    if let Some(reason) = auto {
        return decision(false, None, format!("auto-generated mail ({reason})"));
    }
    let known = |addr: &str| {
        ctx.directory.by_email(addr).is_some()
            || ctx
                .learned
                .iter()
                .any(|(a, _)| a.eq_ignore_ascii_case(addr))
    };
    let Some(to) = trust::ack_address(header, known) else {
        return decision(
            false,
            None,
            "no usable sender address (From and Reply-To are not addresses a mail can be sent to)"
                .into(),
        );
    };
    if trust::auth_verdict(
        &header.authentication_results,
        &ctx.config.trust.authserv_ids,
    ) == AuthVerdict::Fail
    {
        return decision(
            false,
            Some(to),
            "held: the receiving server says the sender failed DMARC/SPF".into(),
        );
    }
    if trust::is_known(org) {
        return decision(true, Some(to), "acknowledge receipt".into());
    }
    if org.id.is_some() && wanted_document {
        return decision(
            true,
            Some(to),
            "acknowledge receipt: the mail names its unit and carries a required document".into(),
        );
    }
    decision(
        false,
        Some(to),
        "held: unknown sender; a coordinator confirms the unit first".into(),
    )
}

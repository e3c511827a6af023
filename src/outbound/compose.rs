//! RFC 5322 messages from rendered templates.
//!
//! Loop prevention (DESIGN invariant 5): every mail carries `Auto-Submitted`
//! (RFC 3834: `auto-replied` for acks, `auto-generated` otherwise) and
//! `X-Auto-Response-Suppress: All` (Exchange/Outlook). No `Precedence: bulk`:
//! RFC 3834 does not define it, the responders we care about (Zammad, RT,
//! FreeScout, Exchange) read `Auto-Submitted`, and `bulk` pushes mail into the
//! spam folder at some providers, where a unit contact would never see the ack.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use rand::Rng;

use super::templates::{Rendered, TemplateError, Templates};
use super::{AckData, DigestData, MailKind, ReminderData, ReplyData};
use crate::fold::clean_line;
use crate::types::MailAddress;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

impl ComposeError {
    /// A template that fails on some data or a message lettre refuses fails
    /// the same way the next time.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// What every outgoing mail carries besides its body: fixed when it is
/// enqueued, so a resend is byte for byte the same mail.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub message_id: &'a str,
    pub date: DateTime<Utc>,
}

/// What an outbox row stores for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub message_id: String,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub bytes: Vec<u8>,
}

impl Outgoing {
    pub fn new(message: &Message) -> Self {
        let env = message.envelope();
        let header = |name| {
            message
                .headers()
                .get_raw(name)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            message_id: header("Message-ID"),
            envelope_from: env.from().map(ToString::to_string).unwrap_or_default(),
            recipients: env.to().iter().map(ToString::to_string).collect(),
            subject: header("Subject"),
            bytes: to_bytes(message),
        }
    }
}

/// A fresh Message-ID, e.g. `<20250505.k3j9x2m4q8.ack@baosong.example.cn>`.
/// Its random part is unguessable: replies that cite it prove they answer
/// a mail we sent.
pub fn new_message_id(domain: &str, kind: MailKind, now: DateTime<Utc>) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let token: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let date = now.format("%Y%m%d");
    format!("<{date}.{token}.{}@{domain}>", kind.as_str())
}

/// The exact bytes to store and later send.
pub fn to_bytes(message: &Message) -> Vec<u8> {
    message.formatted()
}

/// The acknowledgement of one received message, threaded under it.
pub fn ack(
    templates: &Templates,
    data: &AckData,
    stamp: &Stamp<'_>,
) -> Result<Message, ComposeError> {
    let rendered = templates.ack(data)?;
    let to = mailbox(data.to_name.as_deref(), &data.to);
    let builder = base(stamp, &rendered.subject, "auto-replied").to(to);
    let builder = threaded(
        builder,
        data.original_message_id.as_deref(),
        &data.original_references,
    );
    Ok(builder.multipart(alternative(&rendered))?)
}

/// The answer to a coordinator's command reply, threaded under it, with the
/// consolidated workbook attached when given.
pub fn reply(
    templates: &Templates,
    data: &ReplyData,
    xlsx: Option<&[u8]>,
    stamp: &Stamp<'_>,
) -> Result<Message, ComposeError> {
    let rendered = templates.reply(data)?;
    let builder = base(stamp, &rendered.subject, "auto-replied").to(mailbox(None, &data.to));
    let builder = threaded(
        builder,
        data.original_message_id.as_deref(),
        &data.original_references,
    );
    Ok(builder.multipart(with_workbook(&rendered, xlsx, data.generated_at))?)
}

/// In-Reply-To and References of a mail that answers `original`.
fn threaded(
    builder: lettre::message::MessageBuilder,
    original: Option<&str>,
    references: &[String],
) -> lettre::message::MessageBuilder {
    let Some(id) = original.and_then(msg_id) else {
        return builder;
    };
    let mut refs: Vec<String> = references.iter().filter_map(|r| msg_id(r)).collect();
    if !refs.contains(&id) {
        refs.push(id.clone());
    }
    // A long thread would make a header nobody needs: keep the root and the last few.
    if refs.len() > 10 {
        refs.drain(1..refs.len() - 9);
    }
    builder.in_reply_to(id).references(refs.join(" "))
}

/// A reminder to one unit before a deadline.
pub fn reminder(
    templates: &Templates,
    data: &ReminderData,
    stamp: &Stamp<'_>,
) -> Result<Message, ComposeError> {
    let rendered = templates.reminder(data)?;
    let mut builder = base(stamp, &rendered.subject, "auto-generated");
    for to in &data.to {
        builder = builder.to(mailbox(Some(&data.org_name), to));
    }
    Ok(builder.multipart(alternative(&rendered))?)
}

/// The coordinators' digest, with the consolidated workbook attached when given.
pub fn digest(
    templates: &Templates,
    data: &DigestData,
    xlsx: Option<&[u8]>,
    stamp: &Stamp<'_>,
) -> Result<Message, ComposeError> {
    let rendered = templates.digest(data)?;
    let mut builder = base(stamp, &rendered.subject, "auto-generated");
    for to in &data.to {
        builder = builder.to(mailbox(None, to));
    }
    Ok(builder.multipart(with_workbook(&rendered, xlsx, data.generated_at))?)
}

/// The text and HTML, and the workbook of `day` attached when given.
fn with_workbook(
    rendered: &Rendered,
    xlsx: Option<&[u8]>,
    day: chrono::DateTime<chrono::FixedOffset>,
) -> MultiPart {
    let Some(bytes) = xlsx else {
        return alternative(rendered);
    };
    let day = day.format("%Y%m%d");
    // Clients that do not read RFC 2231 (lettre's only form for the
    // Chinese file name) fall back to the ASCII `name` parameter.
    let content_type = ContentType::parse(&format!(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet; name=\"baosong-{day}.xlsx\""
    ))
    .expect("a literal media type parses");
    MultiPart::mixed()
        .multipart(alternative(rendered))
        .singlepart(
            Attachment::new(format!("报送情况汇总{day}.xlsx")).body(bytes.to_vec(), content_type),
        )
}

fn base(stamp: &Stamp<'_>, subject: &str, auto_submitted: &str) -> lettre::message::MessageBuilder {
    let mut builder = Message::builder()
        .from(stamp.from.clone())
        .subject(clean_line(subject, 200))
        .message_id(msg_id(stamp.message_id))
        .date(SystemTime::from(stamp.date))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            auto_submitted.to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".to_owned(),
        ));
    if let Some(rt) = stamp.reply_to {
        builder = builder.reply_to(rt.clone());
    }
    builder
}

fn alternative(r: &Rendered) -> MultiPart {
    MultiPart::alternative()
        .singlepart(SinglePart::plain(crlf(&r.text)))
        .singlepart(SinglePart::html(crlf(&r.html)))
}

/// `s` with every bare LF made CRLF, as lettre makes a body's line endings
/// itself, but in one pass: lettre inserts each CR into the string, which
/// is quadratic. The digest of a 21,000-mail store spent 8 % of a run's CPU
/// there; given CRLF already, lettre inserts nothing.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let mut lines = s.split('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        if lines.peek().is_some() {
            out.push_str(if line.ends_with('\r') { "\n" } else { "\r\n" });
        }
    }
    out
}

/// A recipient: the checked address, with the display name made header-safe.
fn mailbox(name: Option<&str>, addr: &MailAddress) -> Mailbox {
    let email = addr
        .as_str()
        .parse()
        .expect("a MailAddress is checked against lettre when it is made");
    let name = name.map(|n| clean_line(n, 60)).filter(|n| !n.is_empty());
    Mailbox::new(name, email)
}

/// `<id>` for a Message-ID whether or not the caller kept the brackets
/// (mail-parser strips them); None for one that could break the header.
fn msg_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = !id.is_empty()
        && id.len() <= 250
        && id.contains('@')
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>\"\\".contains(c));
    ok.then(|| format!("<{id}>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::sample;

    #[test]
    fn bodies_made_crlf_beforehand_come_out_as_lettre_makes_them() {
        for text in [
            "",
            "\n",
            "\r\n",
            "\r",
            "一\n二\r\n三\r四\n\n",
            "\n\n开头与结尾\r\n\r\n",
            "<p>已收到</p>\r\n<p>缺少：推荐表</p>\n",
        ] {
            for part in [SinglePart::plain, SinglePart::html] {
                assert_eq!(
                    part(crlf(text)).formatted(),
                    part(text.to_owned()).formatted(),
                    "{text:?}"
                );
            }
        }
    }

    fn at() -> DateTime<Utc> {
        "2025-05-05T06:03:00Z".parse().unwrap()
    }

    fn from() -> Mailbox {
        "江苏省科技活动周报送 <kjt@example.cn>".parse().unwrap()
    }

    fn stamp<'a>(from: &'a Mailbox, id: &'a str) -> Stamp<'a> {
        Stamp {
            from,
            reply_to: None,
            message_id: id,
            date: at(),
        }
    }

    #[test]
    fn message_ids_are_unique_and_bracketed() {
        let a = new_message_id("baosong.example.cn", MailKind::Ack, at());
        let b = new_message_id("baosong.example.cn", MailKind::Ack, at());
        assert_ne!(a, b);
        assert!(
            a.starts_with("<20250505.") && a.ends_with(".ack@baosong.example.cn>"),
            "{a}"
        );
    }

    #[test]
    fn ack_threads_under_the_original_and_says_auto_replied() {
        let mut d = sample::ack();
        d.original_message_id = Some("orig@x.cn".into());
        d.original_references = vec!["<root@x.cn>".into()];
        let f = from();
        let m = ack(&Templates::builtin(), &d, &stamp(&f, "<id1@b.cn>")).unwrap();
        let text = String::from_utf8(to_bytes(&m)).unwrap();
        assert!(text.contains("In-Reply-To: <orig@x.cn>"), "{text}");
        assert!(
            text.contains("References: <root@x.cn> <orig@x.cn>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert!(text.contains("Message-ID: <id1@b.cn>"), "{text}");
        assert!(!text.contains("Precedence"), "{text}");
    }

    #[test]
    fn sender_text_never_breaks_a_header() {
        let mut d = sample::ack();
        d.to_name = Some("张\r\nBcc: victim@example.com".into());
        d.original_subject = "材料\r\nBcc: victim@example.com".into();
        d.original_message_id = Some("a@b>\r\nBcc: victim@example.com".into());
        let f = from();
        let m = ack(&Templates::builtin(), &d, &stamp(&f, "<id1@b.cn>")).unwrap();
        let text = String::from_utf8(to_bytes(&m)).unwrap();
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        assert!(!head.contains("\r\nBcc:"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("\nbcc"), "{head}");
        assert_eq!(clean_line("a\u{202E}b\tc  d\x1b[31m", 60), "a b c d [31m");
        assert_eq!(clean_line(&"长".repeat(100), 10).chars().count(), 10);
    }

    #[test]
    fn outgoing_carries_the_envelope() {
        let f = from();
        let m = reminder(
            &Templates::builtin(),
            &sample::reminder(),
            &stamp(&f, "<r@b.cn>"),
        )
        .unwrap();
        let o = Outgoing::new(&m);
        assert_eq!(o.message_id, "<r@b.cn>");
        assert!(o.subject.starts_with("提醒："), "{}", o.subject);
        assert_eq!(o.envelope_from, "kjt@example.cn");
        assert_eq!(o.recipients, ["xzkx@xz.gov.cn"]);
        assert_eq!(o.bytes, to_bytes(&m));
    }
}

//! RFC 5322 messages from rendered templates.
//!
//! Loop prevention (DESIGN invariant 5): every mail carries `Auto-Submitted`
//! (RFC 3834: `auto-replied` for acks, `auto-generated` otherwise) and
//! `X-Auto-Response-Suppress: All` (Exchange/Outlook). No `Precedence: bulk`:
//! RFC 3834 does not define it, the responders we care about (Zammad, RT,
//! FreeScout, Exchange) read `Auto-Submitted`, and `bulk` pushes mail into the
//! spam folder at some providers, where a unit contact would never see the ack.

use std::time::SystemTime;

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use rand::Rng;

use super::templates::{Rendered, TemplateError, Templates};
use super::{AckData, DigestData, MailKind, ReminderData};
use crate::config::SmtpConfig;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{field}: `{value}` is not a mail address: {message}")]
    Address {
        field: &'static str,
        value: String,
        message: String,
    },
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
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
/// Fixed when the mail is enqueued, so a resend is recognisably the same mail.
pub fn new_message_id(domain: &str, kind: MailKind) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let token: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let date = crate::clock::now().format("%Y%m%d");
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
    smtp: &SmtpConfig,
    message_id: &str,
) -> Result<Message, ComposeError> {
    let rendered = templates.ack(data)?;
    let to = mailbox("to", data.to_name.as_deref(), &data.to)?;
    let mut builder = base(smtp, message_id, &rendered.subject, "auto-replied")?.to(to);
    if let Some(id) = &data.original_message_id {
        let id = angle(id);
        let mut refs: Vec<String> = data.original_references.iter().map(|r| angle(r)).collect();
        if !refs.contains(&id) {
            refs.push(id.clone());
        }
        builder = builder.in_reply_to(id).references(refs.join(" "));
    }
    Ok(builder.multipart(alternative(&rendered))?)
}

/// A reminder to one unit before a deadline.
pub fn reminder(
    templates: &Templates,
    data: &ReminderData,
    smtp: &SmtpConfig,
    message_id: &str,
) -> Result<Message, ComposeError> {
    let rendered = templates.reminder(data)?;
    let mut builder = base(smtp, message_id, &rendered.subject, "auto-generated")?;
    for to in &data.to {
        builder = builder.to(mailbox("to", Some(&data.org_name), to)?);
    }
    Ok(builder.multipart(alternative(&rendered))?)
}

/// The coordinators' digest, with the consolidated workbook attached when given.
pub fn digest(
    templates: &Templates,
    data: &DigestData,
    xlsx: Option<&[u8]>,
    smtp: &SmtpConfig,
    message_id: &str,
) -> Result<Message, ComposeError> {
    let rendered = templates.digest(data)?;
    let mut builder = base(smtp, message_id, &rendered.subject, "auto-generated")?;
    for to in &data.to {
        builder = builder.to(mailbox("to", None, to)?);
    }
    let body = match xlsx {
        None => alternative(&rendered),
        Some(bytes) => {
            let day = data.generated_at.format("%Y%m%d");
            // Clients that do not read RFC 2231 (lettre's only form for the
            // Chinese file name) fall back to the ASCII `name` parameter.
            let content_type = ContentType::parse(&format!(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet; name=\"baosong-{day}.xlsx\""
            ))
            .expect("a literal media type parses");
            MultiPart::mixed()
                .multipart(alternative(&rendered))
                .singlepart(
                    Attachment::new(format!("报送情况汇总{day}.xlsx"))
                        .body(bytes.to_vec(), content_type),
                )
        }
    };
    Ok(builder.multipart(body)?)
}

fn base(
    smtp: &SmtpConfig,
    message_id: &str,
    subject: &str,
    auto_submitted: &str,
) -> Result<lettre::message::MessageBuilder, ComposeError> {
    let from: Mailbox = smtp.from.parse().map_err(|e| ComposeError::Address {
        field: "smtp.from",
        value: smtp.from.clone(),
        message: format!("{e}"),
    })?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(angle(message_id)))
        .date(SystemTime::from(crate::clock::now()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            auto_submitted.to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".to_owned(),
        ));
    if let Some(reply_to) = &smtp.reply_to {
        let rt: Mailbox = reply_to.parse().map_err(|e| ComposeError::Address {
            field: "smtp.reply_to",
            value: reply_to.clone(),
            message: format!("{e}"),
        })?;
        builder = builder.reply_to(rt);
    }
    Ok(builder)
}

fn alternative(r: &Rendered) -> MultiPart {
    MultiPart::alternative()
        .singlepart(SinglePart::plain(r.text.clone()))
        .singlepart(SinglePart::html(r.html.clone()))
}

fn mailbox(field: &'static str, name: Option<&str>, addr: &str) -> Result<Mailbox, ComposeError> {
    let address = addr.trim().parse().map_err(|e| ComposeError::Address {
        field,
        value: addr.to_owned(),
        message: format!("{e}"),
    })?;
    Ok(Mailbox::new(
        name.filter(|n| !n.trim().is_empty()).map(str::to_owned),
        address,
    ))
}

/// `<id>` whether or not the caller kept the brackets (mail-parser strips them).
fn angle(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::sample;

    fn smtp() -> SmtpConfig {
        SmtpConfig {
            from: "江苏省科技活动周报送 <kjt@example.cn>".into(),
            reply_to: Some("kjt@example.cn".into()),
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn message_ids_are_unique_and_bracketed() {
        let a = new_message_id("baosong.example.cn", MailKind::Ack);
        let b = new_message_id("baosong.example.cn", MailKind::Ack);
        assert_ne!(a, b);
        assert!(
            a.starts_with('<') && a.ends_with(".ack@baosong.example.cn>"),
            "{a}"
        );
    }

    #[test]
    fn ack_threads_under_the_original_and_says_auto_replied() {
        let mut d = sample::ack();
        d.original_message_id = Some("orig@x.cn".into());
        d.original_references = vec!["<root@x.cn>".into()];
        let m = ack(&Templates::builtin(), &d, &smtp(), "<id1@b.cn>").unwrap();
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
    fn outgoing_carries_the_envelope() {
        let m = reminder(
            &Templates::builtin(),
            &sample::reminder(),
            &smtp(),
            "<r@b.cn>",
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

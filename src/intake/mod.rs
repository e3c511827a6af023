//! Intake: a raw message becomes headers, body text and a flat list of files
//! (attachments, archive entries, files of forwarded mail), plus problems.
//! Parsing only: no I/O.
//!
//! - [`mime`]: the MIME tree (mail-parser) and its decoding fixes;
//! - [`archive`]: the flat file list, .zip opened under the limits;
//! - [`sniff`]: what a file really is, and what is wrong with it;
//! - [`autogen`]: auto-replies, bounces, lists, our own mail;
//! - [`charset`]: charset labels (WHATWG, Python, Java, Windows) and sniffing;
//! - [`text`]: RFC 2047 and 2231, HTML to text, large-attachment links;
//! - [`clean`]: sender text made safe to store and show.

mod archive;
mod autogen;
mod charset;
mod clean;
mod mime;
pub mod sniff;
mod text;

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Message, MessageParser, MimeHeaders};

use crate::config::Limits;
use crate::model::{Header, Problem, ProblemCode};
use crate::types::Sha256;

/// Who we are, so our own mail and loops are recognised.
#[derive(Debug, Clone, Default)]
pub struct OwnIdentity {
    /// Our mailbox addresses (lower case).
    pub addresses: Vec<String>,
    /// Domain of the Message-IDs we generate.
    pub message_id_domain: String,
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

pub use sniff::sniff;
pub use text::html_to_text;

/// Parses a raw message. Never panics; what cannot be read becomes a problem.
pub fn parse(raw: &[u8], limits: &Limits, own: &OwnIdentity) -> Intake {
    let mut intake = Intake::default();
    if raw.len() as u64 > limits.max_message_bytes {
        // Headers only: they are at the top and bounded by the first blank line.
        let end = header_end(raw).unwrap_or(raw.len().min(256 * 1024));
        if let Some(msg) = guarded(|| MessageParser::new().parse_headers(&raw[..end])) {
            read_headers(&msg, own, &mut intake);
        }
        intake.problems.push(Problem::new(
            ProblemCode::MessageTooLarge,
            format!(
                "邮件大小{:.1} MB，超过{:.0} MB的上限，未读取附件，请压缩附件或分几封邮件发送",
                raw.len() as f64 / 1048576.0,
                limits.max_message_bytes as f64 / 1048576.0
            ),
        ));
        return intake;
    }
    let Some(msg) = guarded(|| MessageParser::new().parse(raw)) else {
        intake.problems.push(Problem::new(
            ProblemCode::MessageUnreadable,
            "邮件格式无法识别，未能读取内容，请重新发送",
        ));
        return intake;
    };
    read_headers(&msg, own, &mut intake);
    if !has_mail_headers(&msg) {
        // Bytes without a single header every mail has are not a mail (noise,
        // a stray file): mail-parser would read them as an empty body.
        intake.problems.push(Problem::new(
            ProblemCode::MessageUnreadable,
            "邮件格式无法识别，未能读取内容，请重新发送",
        ));
        return intake;
    }
    let mut bodies = mime::Bodies::default();
    let mut collector = archive::Collector::new(limits);
    if guarded(|| {
        mime::walk(&msg, "", 0, &mut bodies, &mut collector);
        Some(())
    })
    .is_none()
    {
        intake.problems.push(Problem::new(
            ProblemCode::MessageUnreadable,
            "邮件的部分内容无法读取，请重新发送",
        ));
    }
    let (files, too_many) = collector.finish();
    intake.files = files;
    intake.problems.extend(too_many);
    intake.body_text = clean::text(&bodies.text);
    text::large_attachment_links(&bodies.raw, &mut intake.links);
    if !intake.links.is_empty() {
        intake.problems.push(Problem::new(
            ProblemCode::LargeAttachmentLink,
            "邮件中的附件是“超大附件”下载链接，链接会过期，我们无法自动下载，\
             请把文件直接作为附件发送，文件较大时可压缩为 .zip 后发送",
        ));
    }
    intake
}

/// mail-parser and the walk over its tree are third-party code fed hostile
/// input; a panic there must become a problem, not take the daemon down.
/// `catch_unwind` needs no unsafe code, so `forbid(unsafe_code)` holds.
/// Every caller records the `None` as a problem; the panic is logged here.
fn guarded<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "the MIME parser panicked; the message is recorded as unreadable");
            None
        }
    }
}

fn has_mail_headers(msg: &Message<'_>) -> bool {
    [
        "From",
        "Sender",
        "To",
        "Date",
        "Subject",
        "Message-ID",
        "Received",
        "Return-Path",
        "MIME-Version",
        "Content-Type",
    ]
    .into_iter()
    .any(|h| msg.header_raw(h).is_some())
}

fn header_end(raw: &[u8]) -> Option<usize> {
    let limit = raw.len().min(1 << 20);
    raw[..limit]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| {
            raw[..limit]
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| p + 2)
        })
}

fn read_headers(msg: &Message<'_>, own: &OwnIdentity, intake: &mut Intake) {
    intake.header = mime::header(msg);
    let headers = mime::raw_headers(msg);
    intake.header.authentication_results = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .map(|(_, value)| value.clone())
        .collect();
    let content_type = msg.root_part().content_type().map(|ct| match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype(), sub).to_lowercase(),
        None => ct.ctype().to_lowercase(),
    });
    let h = &intake.header;
    let reason = autogen::check(
        &autogen::Facts {
            headers: &headers,
            from: h.from.as_deref(),
            subject: h.subject.as_deref(),
            message_id: h.message_id.as_deref(),
            content_type: content_type.as_deref(),
        },
        own,
    );
    // The reason may quote a header value.
    intake.auto_generated = reason.map(|r| clean::line(&r, clean::SUBJECT_MAX));
}

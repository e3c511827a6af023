//! The MIME tree, read with mail-parser: decoded headers, body text, and the
//! attachments (forwarded messages walked), with the decoding fixes mail-parser
//! 0.11 needs for Chinese mail.

use chrono::{DateTime, FixedOffset};
use mail_parser::{
    Address, HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

use super::archive::Collector;
use super::charset::{self, Declared, decode_8bit};
use super::clean;
use super::text::{self, decode_words, header_field, header_param, transcode_words, unfold};
use super::{Header, sniff};

/// Part types that report on a message rather than carry a document.
const NOT_DOCUMENTS: [&str; 6] = [
    "message/delivery-status",
    "message/disposition-notification",
    "message/feedback-report",
    "text/rfc822-headers",
    "application/pkcs7-signature",
    "application/pgp-signature",
];

/// A decorative image (logo, signature) is at most this large…
const DECORATION_MAX_BYTES: usize = 10 * 1024;
/// …or referenced from the HTML body and at most this large…
const INLINE_MAX_BYTES: usize = 100 * 1024;
/// …or at most this many pixels on each side.
const DECORATION_MAX_SIDE: u32 = 240;

/// The raw bytes of a header field's value, in the message it belongs to.
fn raw_value<'a>(msg: &'a Message<'_>, h: &mail_parser::Header<'_>) -> &'a [u8] {
    msg.raw_message
        .get(h.offset_start as usize..h.offset_end as usize)
        .unwrap_or_default()
}

/// Top-level header fields, name and decoded, unfolded value, in order.
pub(crate) fn raw_headers(msg: &Message<'_>) -> Vec<(String, String)> {
    let declared = Declared::of(msg);
    msg.root_part()
        .headers
        .iter()
        .map(|h| {
            (
                h.name.as_str().to_owned(),
                unfold(&decode_8bit(raw_value(msg, h), &declared)),
            )
        })
        .collect()
}

fn first_raw<'a>(msg: &'a Message<'_>, name: &HeaderName<'_>) -> Option<&'a [u8]> {
    msg.root_part()
        .headers
        .iter()
        .find(|h| &h.name == name)
        .map(|h| raw_value(msg, h))
}

fn addresses(addr: Option<&Address<'_>>) -> Vec<String> {
    addr.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .map(|x| clean::token(x.trim()).to_lowercase())
            .filter(|x| !x.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn to_chrono(d: &mail_parser::DateTime) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(&d.to_rfc3339()).ok()
}

/// The subject, decoded from its raw bytes: mail-parser reads raw 8-bit
/// bytes as UTF-8 and knows neither Python's nor Java's charset names.
fn subject(msg: &Message<'_>, declared: &Declared) -> Option<String> {
    let raw = first_raw(msg, &HeaderName::Subject)?;
    let text = decode_words(&unfold(&decode_8bit(raw, declared)), declared);
    Some(clean::line(&text, clean::SUBJECT_MAX))
}

/// The From address and display name, decoded from the raw bytes like the
/// subject and then read by mail-parser.
fn from(msg: &Message<'_>, declared: &Declared) -> (Option<String>, Option<String>) {
    let Some(raw) = first_raw(msg, &HeaderName::From) else {
        return (None, None);
    };
    let value = transcode_words(&unfold(&decode_8bit(raw, declared)), declared);
    let synthetic = format!("From: {value}\r\n\r\n");
    let Some(parsed) = MessageParser::new().parse_headers(synthetic.as_bytes()) else {
        return (None, None);
    };
    let Some(first) = parsed.from().and_then(|a| a.first()) else {
        return (None, None);
    };
    let address = first
        .address()
        .map(|a| clean::token(a.trim()).to_lowercase());
    let name = first.name().map(|n| clean::line(n, clean::NAME_MAX));
    (address, name.filter(|n| !n.is_empty()))
}

/// The date in the topmost Received header: when the message reached our server.
fn received(msg: &Message<'_>) -> Option<DateTime<FixedOffset>> {
    let raw = first_raw(msg, &HeaderName::Received)?;
    let text = unfold(&decode_8bit(raw, &Declared::default()));
    let (_, date) = text.rsplit_once(';')?;
    to_chrono(&mail_parser::DateTime::parse_rfc822(date.trim())?)
}

fn text_list(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => vec![clean::token(t)],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| clean::token(t)).collect(),
        _ => Vec::new(),
    }
}

/// The headers later stages use, decoded, with sender text made safe ([`clean`]).
pub(crate) fn header(msg: &Message<'_>) -> Header {
    let declared = Declared::of(msg);
    let (from, from_name) = from(msg, &declared);
    let delivered_to = msg
        .root_part()
        .headers
        .iter()
        .filter(|h| {
            let n = h.name.as_str();
            n.eq_ignore_ascii_case("Delivered-To") || n.eq_ignore_ascii_case("X-Original-To")
        })
        .map(|h| {
            clean::token(&unfold(&decode_8bit(raw_value(msg, h), &declared)))
                .trim_matches(['<', '>', ' '])
                .to_lowercase()
        })
        .filter(|a| !a.is_empty())
        .collect();
    Header {
        message_id: msg.message_id().map(|m| clean::token(m.trim())),
        from,
        from_name,
        reply_to: addresses(msg.reply_to()).into_iter().next(),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        delivered_to,
        subject: subject(msg, &declared),
        date: msg.date().and_then(to_chrono),
        received: received(msg),
        in_reply_to: text_list(msg.in_reply_to()).into_iter().next(),
        references: text_list(msg.references()),
        authentication_results: Vec::new(),
    }
}

/// Content-Type of a part, lower case, without parameters.
fn declared_type(part: &MessagePart<'_>) -> Option<String> {
    part.content_type().map(|ct| match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype(), sub).to_lowercase(),
        None => ct.ctype().to_lowercase(),
    })
}

/// The file name of a part. mail-parser's reading is used unless it may
/// have lost something: U+FFFD from raw 8-bit bytes, an RFC 2231
/// continuation whose charset it drops, an RFC 2047 word whose label it may
/// not know; then the raw header is read again here.
fn part_filename(msg: &Message<'_>, part: &MessagePart<'_>, declared: &Declared) -> Option<String> {
    let parsed = part.attachment_name().map(str::to_owned);
    let block = msg
        .raw_message
        .get(part.offset_header as usize..part.offset_body as usize)
        .unwrap_or_default();
    let suspicious = parsed
        .as_deref()
        .is_none_or(|n| n.contains('\u{FFFD}') || n.contains("=?"))
        || text::has_rfc2231_continuation(block)
        || block.windows(2).any(|w| w == b"=?");
    let own = if suspicious {
        header_field(block, "content-disposition", declared)
            .and_then(|v| header_param(&v, "filename", declared))
            .or_else(|| {
                header_field(block, "content-type", declared)
                    .and_then(|v| header_param(&v, "name", declared))
            })
    } else {
        None
    };
    own.or(parsed)
        .map(|n| clean::file_name(&base_name(&n)))
        .filter(|n| !n.is_empty())
}

/// The last path component: some clients send `C:\Users\…\推荐表.xls`.
fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .trim()
        .to_owned()
}

/// A name for a forwarded message: its subject, made safe for a path.
fn eml_name(given: Option<String>, inner: &Message<'_>) -> String {
    let base = given
        .or_else(|| subject(inner, &Declared::of(inner)).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "转发邮件".into());
    let base: String = base
        .chars()
        .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
        .collect();
    if base.to_ascii_lowercase().ends_with(".eml") {
        base
    } else {
        format!("{base}.eml")
    }
}

fn ext_for(media_type: &str) -> &'static str {
    match media_type {
        sniff::PDF => "pdf",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        sniff::XLSX => "xlsx",
        sniff::XLS => "xls",
        sniff::DOCX => "docx",
        sniff::DOC => "doc",
        sniff::ZIP => "zip",
        "text/plain" => "txt",
        "text/html" => "html",
        _ => "bin",
    }
}

/// Whether an image part is decoration (logo, signature, emoticon), not a document.
fn is_decoration(part: &MessagePart<'_>, data: &[u8], media_type: &str, html: &str) -> bool {
    if !media_type.starts_with("image/") {
        return false;
    }
    if data.len() <= DECORATION_MAX_BYTES {
        return true;
    }
    let cid = part
        .content_id()
        .map(|c| c.trim_matches(['<', '>', ' ']).to_owned());
    if let Some(cid) = cid
        && !cid.is_empty()
        && data.len() <= INLINE_MAX_BYTES
        && html.contains(&format!("cid:{cid}"))
    {
        return true;
    }
    image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok())
        .is_some_and(|(w, h)| w <= DECORATION_MAX_SIDE && h <= DECORATION_MAX_SIDE)
}

/// What the walk gathers besides files.
#[derive(Default)]
pub(crate) struct Bodies {
    pub text: String,
    /// Raw HTML and text of every body, for link detection.
    pub raw: String,
}

/// Walks a message: bodies into `bodies`, files into `files`, forwarded
/// messages recursively with their path `prefix` (`主题.eml/`).
pub(crate) fn walk(
    msg: &Message<'_>,
    prefix: &str,
    depth: u32,
    bodies: &mut Bodies,
    files: &mut Collector<'_>,
) {
    let charsets = Declared::of(msg);
    let mut html_all = String::new();
    for id in msg.html_body.iter().chain(&msg.text_body) {
        if let Some(p) = msg.parts.get(*id as usize)
            && let PartType::Html(h) | PartType::Text(h) = &p.body
        {
            html_all.push_str(h);
            html_all.push('\n');
        }
    }
    bodies.raw.push_str(&html_all);
    let mut text = String::new();
    for id in &msg.text_body {
        let Some(part) = msg.parts.get(*id as usize) else {
            continue;
        };
        let piece = match &part.body {
            PartType::Text(t) => fix_body_charset(msg, part, t, &charsets),
            PartType::Html(h) => text::html_to_text(&fix_body_charset(msg, part, h, &charsets)),
            _ => continue,
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(piece.replace("\r\n", "\n").trim());
    }
    if !text.is_empty() {
        if !bodies.text.is_empty() {
            bodies.text.push_str("\n\n");
        }
        bodies.text.push_str(&text);
    }

    let mut unnamed = 0;
    for id in &msg.attachments {
        let Some(part) = msg.parts.get(*id as usize) else {
            continue;
        };
        let declared = declared_type(part);
        if declared
            .as_deref()
            .is_some_and(|d| NOT_DOCUMENTS.contains(&d))
        {
            continue;
        }
        let name = part_filename(msg, part, &charsets);
        if let PartType::Message(inner) = &part.body {
            let eml = eml_name(name, inner);
            let path = format!("{prefix}{eml}");
            if depth >= files.limits().max_archive_depth {
                files.add_file(&eml, path, declared, inner.raw_message().to_vec(), depth);
            } else {
                walk(inner, &format!("{path}/"), depth + 1, bodies, files);
            }
            continue;
        }
        let data = part.contents();
        let media_type = sniff::sniff(data, name.as_deref().unwrap_or(""));
        if is_decoration(part, data, media_type, &html_all) {
            continue;
        }
        let filename = name.unwrap_or_else(|| {
            unnamed += 1;
            format!("附件{unnamed}.{}", ext_for(media_type))
        });
        files.add_file(
            &filename,
            format!("{prefix}{filename}"),
            declared,
            data.to_vec(),
            depth,
        );
    }
}

/// A body part that mail-parser could not decode is decoded again from its
/// bytes: unlabelled raw 8-bit GBK (U+FFFD), bytes invalid in their label,
/// and a label mail-parser does not know (it reads those as UTF-8: U+FFFD
/// for Python's `eucgb2312_cn`, raw `~{…~}` for `hz`).
fn fix_body_charset(
    msg: &Message<'_>,
    part: &MessagePart<'_>,
    text: &str,
    declared: &Declared,
) -> String {
    let label = part.content_type().and_then(|ct| ct.attribute("charset"));
    let parser_knows = label.is_none_or(|l| {
        mail_parser::decoders::charsets::map::charset_decoder(l.as_bytes()).is_some()
            || charset::lookup(l) == Some(charset::Charset::Enc(encoding_rs::UTF_8))
    });
    if parser_knows && !text.contains('\u{FFFD}') {
        return text.to_owned();
    }
    let raw = msg
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let bytes = match part.encoding {
        mail_parser::Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw),
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)
        }
        mail_parser::Encoding::None => Some(raw.to_vec()),
    };
    let Some(bytes) = bytes else {
        return text.to_owned();
    };
    match label {
        Some(l) => charset::decode(&bytes, l, declared),
        None => decode_8bit(&bytes, declared),
    }
}

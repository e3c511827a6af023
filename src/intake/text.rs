//! Text decoding the MIME parser leaves to us: raw 8-bit GBK header bytes,
//! RFC 2231 parameters split into charset-carrying continuations, HTML bodies,
//! and the download links of "超大附件".

use std::borrow::Cow;

use mail_parser::{MessageParser, MimeHeaders};

use super::charset::{self, Declared, decode_8bit};
use super::clean;

/// Removes header folding (CRLF followed by white space).
pub(crate) fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i == 0 {
            out.push_str(line);
        } else {
            out.push(' ');
            out.push_str(line.trim_start());
        }
    }
    out.trim().to_owned()
}

/// One RFC 2047 encoded word: `=?label?B|Q?data?=`.
struct Word<'a> {
    label: &'a str,
    bytes: Vec<u8>,
}

/// The next encoded word in `s`: the text before it, the word, the text after.
fn next_word(s: &str) -> Option<(&str, Word<'_>, &str)> {
    let mut from = 0;
    while let Some(at) = s[from..].find("=?").map(|i| from + i) {
        if let Some((word, len)) = parse_word(&s[at + 2..]) {
            return Some((&s[..at], word, &s[at + 2 + len..]));
        }
        from = at + 2;
    }
    None
}

/// Parses `label?B?data?=` (after `=?`): the word and the length it took.
fn parse_word(s: &str) -> Option<(Word<'_>, usize)> {
    let (label, rest) = s.split_once('?')?;
    if label.is_empty() || label.contains(|c: char| c.is_whitespace() || c == '=') {
        return None;
    }
    let mut chars = rest.chars();
    let encoding = chars.next()?;
    let rest = chars.as_str().strip_prefix('?')?;
    let end = rest.find("?=")?;
    let data = &rest[..end];
    if data.contains(['\r', '\n']) {
        return None;
    }
    let bytes = match encoding {
        'b' | 'B' => mail_parser::decoders::base64::base64_decode(data.trim().as_bytes())?,
        'q' | 'Q' => decode_q(data),
        _ => return None,
    };
    Some((Word { label, bytes }, label.len() + 3 + end + 2))
}

/// The Q encoding of RFC 2047: `_` is a space, `=XX` a byte.
fn decode_q(data: &str) -> Vec<u8> {
    let b = data.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'=')
            .then(|| Some((hex_val(*b.get(i + 1)?)?, hex_val(*b.get(i + 2)?)?)))
            .flatten();
        match (b[i], hex) {
            (_, Some((h, l))) => {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            (b'_', None) => out.push(b' '),
            (c, None) => out.push(c),
        }
        i += 1;
    }
    out
}

/// Rewrites the RFC 2047 words of a header value as UTF-8 words, their bytes
/// decoded here by label ([`charset::decode`]), so that mail-parser, which
/// reads the structure (quotes, addresses, spaces between words), never
/// meets a label it does not know: it reads those bytes as UTF-8, U+FFFD for
/// Python's `=?eucgb2312_cn?b?…?=`. Adjacent words of one label are decoded
/// together: some clients split a character's bytes across two words.
pub(crate) fn transcode_words(value: &str, declared: &Declared) -> String {
    if !value.contains("=?") {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() * 2);
    let mut run: Option<Word<'_>> = None;
    let mut rest = value;
    while let Some((before, word, after)) = next_word(rest) {
        rest = after;
        if let Some(r) = run.as_mut()
            && before.chars().all(char::is_whitespace)
            && r.label.eq_ignore_ascii_case(word.label)
        {
            r.bytes.extend_from_slice(&word.bytes);
            continue;
        }
        if let Some(r) = run.take() {
            push_utf8_word(&mut out, &charset::decode(&r.bytes, r.label, declared));
        }
        out.push_str(before);
        run = Some(word);
    }
    if let Some(r) = run {
        push_utf8_word(&mut out, &charset::decode(&r.bytes, r.label, declared));
    }
    out.push_str(rest);
    out
}

/// Writes `text` as one Q-encoded UTF-8 word, every byte but letters and
/// digits escaped, so nothing in it reads as header syntax.
fn push_utf8_word(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push_str("=?utf-8?q?");
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out.push_str("?=");
}

/// Decodes the RFC 2047 words of unstructured text (a subject): labels
/// through [`transcode_words`], the rest by mail-parser as an unstructured
/// header, so the one reader of the structure is the crate's.
pub(crate) fn decode_words(s: &str, declared: &Declared) -> String {
    if !s.contains("=?") {
        return s.to_owned();
    }
    let synthetic = format!("Subject: {}\r\n\r\n", transcode_words(s, declared));
    MessageParser::new()
        .parse_headers(synthetic.as_bytes())
        .and_then(|m| m.subject().map(str::to_owned))
        .unwrap_or_else(|| s.to_owned())
}

/// Decodes RFC 2047 words in a parameter value the way mail-parser decodes
/// them inside quoted parameters (no space added around the words).
fn decode_param_words(s: &str, declared: &Declared) -> String {
    if !s.contains("=?") {
        return s.to_owned();
    }
    let synthetic = format!(
        "Content-Type: application/octet-stream; name=\"{}\"\r\n\r\n",
        transcode_words(s, declared)
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    );
    MessageParser::new()
        .parse_headers(synthetic.as_bytes())
        .and_then(|m| {
            m.root_part()
                .content_type()
                .and_then(|ct| ct.attribute("name"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| s.to_owned())
}

/// The first header `name` in a raw header block, its 8-bit bytes decoded
/// ([`decode_8bit`]) and unfolded.
pub(crate) fn header_field(block: &[u8], name: &str, declared: &Declared) -> Option<String> {
    let text = decode_8bit(block, declared);
    let mut found: Option<String> = None;
    for line in text.split('\n') {
        if let Some(value) = found.as_mut() {
            if line.starts_with([' ', '\t']) {
                value.push('\n');
                value.push_str(line);
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            found = Some(v.to_owned());
        }
    }
    found.map(|v| unfold(&v))
}

/// Whether a raw header block uses RFC 2231 continuations (`name*0*=`), which
/// mail-parser 0.11 decodes with the charset of segment 0 only.
pub(crate) fn has_rfc2231_continuation(block: &[u8]) -> bool {
    block
        .windows(3)
        .any(|w| w == b"*0*" || w == b"*0=" || w == b"*1*" || w == b"*1=")
}

/// Splits `a; b="x;y"; c` at the semicolons outside quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn unquote(v: &str) -> Cow<'_, str> {
    let v = v.trim();
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if inner.contains('\\') => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            Cow::Owned(out)
        }
        Some(inner) => Cow::Borrowed(inner),
        None => Cow::Borrowed(v),
    }
}

fn percent_decode(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A parameter of a structured header value (`attachment; filename*0*=GBK''%C4%CF;
/// filename*1*=%BE%A9`), with RFC 2231 extended values and continuations decoded
/// in the charset named by the first segment, and RFC 2047 words in plain values.
/// Hand-written because mail-parser 0.11 drops that charset after segment 0.
pub(crate) fn header_param(value: &str, name: &str, declared: &Declared) -> Option<String> {
    let mut plain = None;
    let mut segments: Vec<(u32, bool, String)> = Vec::new();
    for p in split_params(value).into_iter().skip(1) {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let Some(rest) = k.strip_prefix(name) else {
            continue;
        };
        let v = unquote(v).into_owned();
        if rest.is_empty() {
            plain = Some(v);
        } else if rest == "*" {
            segments.push((0, true, v));
        } else if let Some(n) = rest.strip_prefix('*') {
            let (n, encoded) = match n.strip_suffix('*') {
                Some(n) => (n, true),
                None => (n, false),
            };
            if let Ok(n) = n.parse::<u32>() {
                segments.push((n, encoded, v));
            }
        }
    }
    if segments.is_empty() {
        return plain.map(|p| decode_param_words(&p, declared));
    }
    segments.sort_by_key(|s| s.0);
    let mut charset = String::new();
    let mut bytes = Vec::new();
    for (i, (_, encoded, v)) in segments.iter().enumerate() {
        if *encoded {
            let data = if i == 0 {
                // charset'language'data
                let mut it = v.splitn(3, '\'');
                match (it.next(), it.next(), it.next()) {
                    (Some(cs), Some(_), Some(data)) => {
                        charset = cs.to_owned();
                        data
                    }
                    _ => v.as_str(),
                }
            } else {
                v.as_str()
            };
            percent_decode(data, &mut bytes);
        } else {
            bytes.extend_from_slice(v.as_bytes());
        }
    }
    let decoded = if charset.is_empty() {
        decode_8bit(&bytes, declared)
    } else {
        charset::decode(&bytes, &charset, declared)
    };
    Some(decode_param_words(&decoded, declared))
}

/// HTML to plain text. mail-parser's converter does the tags and entities;
/// block ends become line breaks first so table cells and divs stay apart.
pub fn html_to_text(html: &str) -> String {
    let mut prepared = String::with_capacity(html.len() + 64);
    let lower = html.to_ascii_lowercase();
    let mut last = 0;
    for (i, _) in lower.match_indices("</") {
        let tag: String = lower[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if matches!(
            tag.as_str(),
            "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "blockquote"
        ) {
            prepared.push_str(&html[last..i]);
            prepared.push_str("<br>");
            last = i;
        } else if matches!(tag.as_str(), "td" | "th") {
            prepared.push_str(&html[last..i]);
            prepared.push(' ');
            last = i;
        }
    }
    prepared.push_str(&html[last..]);
    let text = mail_parser::decoders::html::html_to_text(&prepared);
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

/// Hosts whose links mean "超大附件": the file is on the provider's server, not in the mail.
const LARGE_ATTACHMENT_HOSTS: [&str; 7] = [
    "wx.mail.qq.com/ftn/",
    "mail.qq.com/cgi-bin/ftnexs_download",
    "mail.qq.com/cgi-bin/ftnexs",
    "ftn.qq.com",
    "mail.163.com/large-attachment-download",
    "dashi.163.com",
    "u.163.com",
];

/// Download links of large attachments in a body (text or HTML), deduplicated.
pub(crate) fn large_attachment_links(body: &str, out: &mut Vec<String>) {
    let lower = body.to_ascii_lowercase();
    for (start, _) in lower.match_indices("http") {
        let rest = &lower[start..];
        if !(rest.starts_with("http://") || rest.starts_with("https://")) {
            continue;
        }
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .unwrap_or(rest.len());
        let url_lower = &rest[..len];
        let host_and_path = url_lower.split_once("//").map_or(url_lower, |x| x.1);
        if LARGE_ATTACHMENT_HOSTS
            .iter()
            .any(|h| host_and_path.starts_with(h) || host_and_path.contains(&format!(".{h}")))
        {
            let url = clean::token(&body[start..start + len].replace("&amp;", "&"));
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::GB18030;

    fn none() -> Declared {
        Declared::default()
    }

    #[test]
    fn rfc2231_continuation_keeps_gbk_charset() {
        // 南京推荐表.xlsx in GBK, split in the middle of a character.
        let gbk = GB18030.encode("南京推荐表.xlsx").0;
        let pct: String = gbk.iter().map(|b| format!("%{b:02X}")).collect();
        let (a, b) = pct.split_at(9);
        let value = format!("attachment; filename*0*=GBK''{a}; filename*1*={b}");
        assert_eq!(
            header_param(&value, "filename", &none()).unwrap(),
            "南京推荐表.xlsx"
        );
    }

    #[test]
    fn rfc2231_single_utf8_value_is_decoded() {
        let v = "attachment; filename*=utf-8''%E7%BB%9F%E8%AE%A1%E8%A1%A8.xls";
        assert_eq!(header_param(v, "filename", &none()).unwrap(), "统计表.xls");
    }

    #[test]
    fn rfc2047_word_inside_quoted_param_is_decoded() {
        let v = "application/octet-stream; name=\"=?gb2312?B?zca89rHt?=.xlsx\"";
        assert_eq!(header_param(v, "name", &none()).unwrap(), "推荐表.xlsx");
    }

    #[test]
    fn raw_gbk_header_bytes_are_decoded() {
        let mut block = b"Content-Type: application/vnd.ms-excel;\r\n\tname=\"".to_vec();
        block.extend_from_slice(&GB18030.encode("统计表.xls").0);
        block.extend_from_slice(b"\"\r\n\r\n");
        let ct = header_field(&block, "content-type", &none()).unwrap();
        assert_eq!(header_param(&ct, "name", &none()).unwrap(), "统计表.xls");
    }

    #[test]
    fn python_eucgb2312_cn_words_are_decoded() {
        // Python: Header("推荐表（第二批）", "gb2312").encode(), split in two words.
        let s = "=?eucgb2312_cn?b?zca89rHto6i12g==?=\r\n =?eucgb2312_cn?b?tv7F+qOp?=";
        assert_eq!(decode_words(&unfold(s), &none()), "推荐表（第二批）");
        let v = "attachment; filename=\"=?eucgb2312_cn?b?zca89rHtLnhsc3g=?=\"";
        assert_eq!(header_param(v, "filename", &none()).unwrap(), "推荐表.xlsx");
    }

    #[test]
    fn a_character_split_across_two_words_is_joined() {
        // 推 is CD C6 in GBK: one byte in each word.
        assert_eq!(
            decode_words("=?gbk?q?=CD?= =?GBK?q?=C6=BC=F6?=", &none()),
            "推荐"
        );
    }

    #[test]
    fn words_of_different_labels_and_plain_text_keep_their_places() {
        assert_eq!(
            decode_words("Re: =?utf-8?b?5o6o6I2Q?= =?big5_tw?q?=AA=ED?= ok", &none()),
            "Re: 推荐表 ok"
        );
        assert_eq!(
            decode_words("=?bad word?= a=?x", &none()),
            "=?bad word?= a=?x"
        );
    }

    #[test]
    fn html_body_becomes_lines_of_text() {
        let html = "<html><head><style>p{}</style></head><body><div>您好：</div>\
                    <div>附件是南京市科技局&nbsp;推荐表&amp;统计表</div><table><tr><td>a</td><td>b</td></tr></table></body></html>";
        let text = html_to_text(html);
        assert!(text.contains("您好：\n"), "{text}");
        assert!(text.contains("推荐表&统计表"), "{text}");
        assert!(!text.contains("p{}"));
    }

    #[test]
    fn qq_and_163_large_attachment_links_are_found() {
        let mut links = Vec::new();
        large_attachment_links(
            "<a href=\"https://wx.mail.qq.com/ftn/download?func=3&amp;k=abc\">下载</a> \
             http://mail.163.com/large-attachment-download/index.html?p=x https://example.com/x",
            &mut links,
        );
        assert_eq!(
            links,
            [
                "https://wx.mail.qq.com/ftn/download?func=3&k=abc",
                "http://mail.163.com/large-attachment-download/index.html?p=x"
            ]
        );
    }
}

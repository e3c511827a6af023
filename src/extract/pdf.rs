//! The text layer of a born-digital PDF (a summary report saved as PDF).

use std::collections::BTreeMap;
use std::time::Instant;

use lopdf::content::Content;
use lopdf::{Document, Encoding, Object, ObjectId};

use super::grid::{Deadline, Doc};

/// Most pages whose text is read; classification needs the first ones.
const MAX_PAGES: usize = 50;
/// Most decompressed content per page: decoded, each operator costs about
/// 25 times its bytes; a page of dense CJK text has a few hundred KB.
const MAX_PAGE_CONTENT: usize = 4 * 1024 * 1024;
/// A baseline move larger than this (in text space units) starts a new line.
const LINE_STEP: f32 = 2.0;

/// Reads the text of the first pages, line by line.
///
/// Each page is read by following the text operators with the positions
/// they set, so runs on one baseline stay one line: lopdf's `extract_text`
/// breaks at every `ET` (LibreOffice wraps each font run in BT/ET, splitting
/// "南京市 2025 年…" into lines) and fails a whole page when one font's
/// encoding cannot be read (seen on a LibreOffice CJK page). Where that reading
/// yields nothing, lopdf's chunks are kept, each font that decodes.
pub fn read(data: &[u8], deadline: Instant) -> Result<Doc, String> {
    let pdf = Document::load_mem(data).map_err(|e| e.to_string())?;
    if pdf.is_encrypted() {
        return Err("PDF已加密，无法读取文字".into());
    }
    let mut doc = Doc::default();
    let mut clock = Deadline::new(deadline);
    for (&number, &page) in pdf.get_pages().iter().take(MAX_PAGES) {
        if clock.check().is_err() {
            break;
        }
        let text = match page_text(&pdf, page, &mut clock) {
            Some(t) if !t.trim().is_empty() => t,
            _ => pdf
                .extract_text_chunks_with_limit(&[number], MAX_PAGE_CONTENT)
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n"),
        };
        for line in text.lines() {
            doc.push_line(line);
        }
    }
    Ok(doc)
}

fn num(op: &lopdf::content::Operation, i: usize) -> f32 {
    op.operands
        .get(i)
        .and_then(|o| o.as_float().ok())
        .unwrap_or(0.0)
}

/// A string shown on a page, where its run starts.
struct Run {
    y: f32,
    x: f32,
    text: String,
}

/// One page's text: runs grouped into lines by baseline (top to bottom), each
/// line in order of the runs' start x. LibreOffice draws a line's runs font
/// by font, so stream order is not reading order (“” came after 月).
fn page_text(pdf: &Document, page: ObjectId, clock: &mut Deadline) -> Option<String> {
    let encodings: BTreeMap<Vec<u8>, Encoding> = pdf
        .get_page_fonts(page)
        .ok()?
        .into_iter()
        .filter_map(|(name, font)| {
            font.get_font_encoding_with_limit(pdf, MAX_PAGE_CONTENT)
                .ok()
                .map(|e| (name, e))
        })
        .collect();
    let content = Content::decode(
        &pdf.get_page_content_with_limit(page, MAX_PAGE_CONTENT)
            .ok()?,
    )
    .ok()?;
    let mut runs: Vec<Run> = Vec::new();
    let mut font: Option<&Encoding> = None;
    // The text line matrix's origin and the leading for T*.
    let (mut x, mut y, mut leading) = (0.0f32, 0.0f32, 0.0f32);
    for op in &content.operations {
        clock.tick().ok()?;
        let mut strings: Vec<&[u8]> = Vec::new();
        match op.operator.as_str() {
            "Tf" => {
                font = op
                    .operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|n| encodings.get(n));
            }
            "BT" => (x, y) = (0.0, 0.0),
            "Tm" => (x, y) = (num(op, 4), num(op, 5)),
            "Td" => (x, y) = (x + num(op, 0), y + num(op, 1)),
            "TD" => {
                leading = -num(op, 1);
                (x, y) = (x + num(op, 0), y + num(op, 1));
            }
            "TL" => leading = num(op, 0),
            "T*" => y -= leading.max(LINE_STEP + 1.0),
            "Tj" | "'" | "\"" | "TJ" => {
                if op.operator != "Tj" && op.operator != "TJ" {
                    y -= leading.max(LINE_STEP + 1.0);
                }
                for o in &op.operands {
                    match o {
                        Object::String(s, _) => strings.push(s),
                        Object::Array(items) => {
                            strings.extend(items.iter().filter_map(|i| match i {
                                Object::String(s, _) => Some(s.as_slice()),
                                _ => None,
                            }))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        let Some(enc) = font.filter(|_| !strings.is_empty()) else {
            continue;
        };
        let text: String = strings
            .into_iter()
            .filter_map(|s| Document::decode_text(enc, s).ok())
            .collect();
        runs.push(Run { y, x, text });
    }
    // Top to bottom; a stable sort keeps stream order among equal positions.
    runs.sort_by(|a, b| b.y.total_cmp(&a.y));
    let mut out = String::new();
    let mut line: Vec<Run> = Vec::new();
    for run in runs {
        if line.last().is_some_and(|l| (l.y - run.y).abs() > LINE_STEP) {
            flush(&mut out, &mut line);
        }
        line.push(run);
    }
    flush(&mut out, &mut line);
    Some(out)
}

fn flush(out: &mut String, line: &mut Vec<Run>) {
    line.sort_by(|a, b| a.x.total_cmp(&b.x));
    for r in line.drain(..) {
        out.push_str(&r.text);
    }
    out.push('\n');
}

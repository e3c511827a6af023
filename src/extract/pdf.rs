//! The text layer of a born-digital PDF (a summary report saved as PDF).

use std::time::Instant;

use lopdf::Document;

use super::grid::Doc;

/// Most pages whose text is read; classification needs the first ones.
const MAX_PAGES: usize = 50;
/// Most decompressed content per page.
const MAX_PAGE_CONTENT: usize = 16 * 1024 * 1024;

/// Reads the text of the first pages, line by line.
///
/// lopdf's `extract_text` fails a whole page when one font's encoding cannot
/// be read (seen on a LibreOffice CJK page), so a failed page is read again
/// chunk by chunk, keeping the chunks of the fonts that do decode.
pub fn read(data: &[u8], deadline: Instant) -> Result<Doc, String> {
    let pdf = Document::load_mem(data).map_err(|e| e.to_string())?;
    if pdf.is_encrypted() {
        return Err("PDF已加密，无法读取文字".into());
    }
    let mut doc = Doc::default();
    for &page in pdf.get_pages().keys().take(MAX_PAGES) {
        if Instant::now() > deadline {
            break;
        }
        let text = match pdf.extract_text_with_limit(&[page], MAX_PAGE_CONTENT) {
            Ok(t) if !t.trim().is_empty() => t,
            _ => pdf
                .extract_text_chunks_with_limit(&[page], MAX_PAGE_CONTENT)
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

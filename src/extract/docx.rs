//! Word 2007+ (.docx/.docm, and WPS saving as .docx): tables and paragraphs
//! from `word/document.xml`, via zip + quick-xml.

use std::io::{Cursor, Read};
use std::time::Instant;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::grid::{
    Budget, Cell, Deadline, Doc, Grid, MAX_CELL_BYTES, MAX_COLS, MAX_ROWS, MAX_TEXT_BYTES, truncate,
};

/// Largest document.xml read; a form is a few hundred KB.
const MAX_XML_BYTES: u64 = 64 * 1024 * 1024;
/// Tables nest inside table cells; real forms go one or two deep, and each
/// level copies the text of the levels inside it.
const MAX_TABLE_DEPTH: usize = 8;

/// Reads the body of a .docx.
pub fn read(data: &[u8], deadline: Instant) -> Result<Doc, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| e.to_string())?;
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|_| "不是Word文档（缺少word/document.xml）".to_owned())?;
    let mut xml = Vec::new();
    entry
        .take(MAX_XML_BYTES)
        .read_to_end(&mut xml)
        .map_err(|e| e.to_string())?;
    let xml = String::from_utf8_lossy(&xml);
    parse_document(&xml, deadline)
}

#[derive(Clone, Copy, PartialEq)]
enum VMerge {
    None,
    Restart,
    Continue,
}

struct RawCell {
    text: String,
    span: usize,
    vmerge: VMerge,
}

impl RawCell {
    /// Adds a line (a paragraph, a nested table's row) while the cell stays
    /// under `MAX_CELL_BYTES`.
    fn push_line(&mut self, line: &str) {
        let room = MAX_CELL_BYTES.saturating_sub(self.text.len() + 1);
        if room == 0 {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(truncate(line, room));
    }
}

#[derive(Default)]
struct TableState {
    rows: Vec<Vec<Cell>>,
    row: Vec<RawCell>,
    grid_before: usize,
    cell: Option<RawCell>,
}

impl TableState {
    /// Lays a finished row onto grid columns: the cells a span covers and
    /// vertical continuations point at their origin's text.
    fn end_row(&mut self, budget: &mut Budget) -> Result<(), String> {
        let raw = std::mem::take(&mut self.row);
        let before = std::mem::take(&mut self.grid_before).min(MAX_COLS);
        if self.rows.len() >= MAX_ROWS {
            return Ok(());
        }
        // An empty row still costs its vector.
        budget.cells(before + 1)?;
        let mut out: Vec<Cell> = vec![Cell::default(); before];
        for raw in raw {
            let col = out.len();
            if col >= MAX_COLS {
                break;
            }
            let first = match raw.vmerge {
                VMerge::Continue => {
                    budget.cells(1)?;
                    match self.rows.last().and_then(|r| r.get(col)) {
                        Some(above) => Cell::covered_by(above),
                        None => Cell {
                            covered: true,
                            ..Cell::default()
                        },
                    }
                }
                _ => budget.cell(&raw.text)?,
            };
            let span = raw.span.min(MAX_COLS - col);
            budget.cells(span - 1)?;
            out.push(first);
            for _ in 1..span {
                let copy = Cell::covered_by(&out[col]);
                out.push(copy);
            }
        }
        self.rows.push(out);
        Ok(())
    }
}

fn val(e: &BytesStart) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == "val")
        .map(|a| a.value.to_string())
}

/// Parses `word/document.xml`: top-level paragraphs become lines, tables grids.
/// A nested table becomes its own grid and its text also stays in the outer cell.
pub fn parse_document(xml: &str, deadline: Instant) -> Result<Doc, String> {
    let mut reader = Reader::from_str(xml);
    let mut clock = Deadline::new(deadline);
    let mut budget = Budget::default();
    let mut doc = Doc::default();
    let mut tables: Vec<TableState> = Vec::new();
    let mut para = String::new();
    let mut in_text = false;
    loop {
        clock.tick()?;
        let ev = reader.read_event().map_err(|e| e.to_string())?;
        match ev {
            Event::Start(e) => match e.local_name().as_ref() {
                "tbl" if tables.len() >= MAX_TABLE_DEPTH => {
                    return Err("表格嵌套过深".into());
                }
                "tbl" => tables.push(TableState::default()),
                "tc" => {
                    if let Some(t) = tables.last_mut() {
                        t.cell = Some(RawCell {
                            text: String::new(),
                            span: 1,
                            vmerge: VMerge::None,
                        });
                    }
                }
                "t" => in_text = true,
                "p" => para.clear(),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "br" | "cr" => para.push('\n'),
                "tab" if !para.is_empty() => para.push(' '),
                "gridSpan" => {
                    let span = val(&e).and_then(|v| v.parse().ok()).unwrap_or(1usize);
                    if let Some(c) = tables.last_mut().and_then(|t| t.cell.as_mut()) {
                        c.span = span.clamp(1, MAX_COLS);
                    }
                }
                "vMerge" => {
                    if let Some(c) = tables.last_mut().and_then(|t| t.cell.as_mut()) {
                        c.vmerge = match val(&e).as_deref() {
                            Some("restart") => VMerge::Restart,
                            _ => VMerge::Continue,
                        };
                    }
                }
                "gridBefore" => {
                    if let Some(t) = tables.last_mut() {
                        t.grid_before = val(&e).and_then(|v| v.parse().ok()).unwrap_or(0);
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text && para.len() < MAX_TEXT_BYTES => {
                para.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if in_text && para.len() < MAX_TEXT_BYTES => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    para.push(c);
                } else {
                    para.push_str(match r.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    match tables.last_mut().and_then(|t| t.cell.as_mut()) {
                        Some(cell) => cell.push_line(&para),
                        None => doc.push_line(&para),
                    }
                    para.clear();
                }
                "tc" => {
                    // Cells past the grid's width are not kept.
                    if let Some(t) = tables.last_mut()
                        && let Some(c) = t.cell.take()
                        && t.row.len() < MAX_COLS
                    {
                        t.row.push(c);
                    }
                }
                "tr" => {
                    if let Some(t) = tables.last_mut() {
                        t.end_row(&mut budget)?;
                    }
                }
                "tbl" => {
                    if let Some(t) = tables.pop() {
                        // A grid costs its name and vector: a few cells' worth.
                        budget.cells(4)?;
                        let grid = Grid {
                            name: format!("表格{}", doc.grids.len() + 1),
                            rows: t.rows,
                        };
                        if let Some(cell) = tables.last_mut().and_then(|t| t.cell.as_mut()) {
                            for row in &grid.rows {
                                let line: Vec<&str> = row
                                    .iter()
                                    .filter(|c| !c.covered)
                                    .map(|c| &*c.text)
                                    .collect();
                                cell.push_line(&line.join(" "));
                            }
                        }
                        doc.grids.push(grid);
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(body: &str) -> Doc {
        let xml = format!(
            r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        parse_document(&xml, Instant::now() + Duration::from_secs(5)).unwrap()
    }

    fn tc(inner: &str, props: &str) -> String {
        format!("<w:tc><w:tcPr>{props}</w:tcPr><w:p>{inner}</w:p></w:tc>")
    }

    #[test]
    fn docx_spans_and_vertical_merges_are_spread() {
        let r1 = format!(
            "<w:tr>{}{}</w:tr>",
            tc("<w:r><w:t>组</w:t></w:r>", r#"<w:vMerge w:val="restart"/>"#),
            tc("<w:r><w:t>甲</w:t></w:r>", "")
        );
        let r2 = format!(
            "<w:tr>{}{}</w:tr>",
            tc("", "<w:vMerge/>"),
            tc("<w:r><w:t>乙</w:t></w:r>", "")
        );
        let r3 = format!(
            "<w:tr>{}</w:tr>",
            tc("<w:r><w:t>宽</w:t></w:r>", r#"<w:gridSpan w:val="2"/>"#)
        );
        let doc = parse(&format!("<w:tbl>{r1}{r2}{r3}</w:tbl>"));
        let g = &doc.grids[0];
        assert_eq!(&*g.rows[1][0].text, "组");
        assert!(g.rows[1][0].covered);
        assert_eq!(&*g.rows[2][1].text, "宽");
        assert!(g.rows[2][1].covered);
    }

    #[test]
    fn docx_text_split_over_runs_and_breaks_is_joined() {
        let p = "<w:p><w:r><w:t>活动</w:t></w:r><w:r><w:t>简介</w:t><w:br/><w:t>（100字以内）</w:t></w:r></w:p>";
        let doc = parse(&format!("{p}<w:p><w:r><w:t>A&amp;B</w:t></w:r></w:p>"));
        assert_eq!(doc.lines, vec!["活动简介\n（100字以内）", "A&B"]);
    }

    #[test]
    fn nested_table_is_its_own_grid_and_stays_in_its_cell() {
        let inner = format!(
            "<w:tbl><w:tr>{}</w:tr></w:tbl>",
            tc("<w:r><w:t>内</w:t></w:r>", "")
        );
        let outer = format!(
            "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>外</w:t></w:r></w:p>{inner}<w:p/></w:tc></w:tr></w:tbl>"
        );
        let doc = parse(&outer);
        assert_eq!(doc.grids.len(), 2);
        assert_eq!(doc.grids[1].rows[0][0].text.trim(), "外\n内");
    }
}

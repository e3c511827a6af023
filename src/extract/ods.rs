//! OpenDocument spreadsheets (.ods), read from `content.xml` as it streams.
//!
//! calamine expands `number-rows-repeated` and `number-columns-repeated` in
//! full before anything else (an 800-byte file asks for gigabytes); here a
//! repeat only moves the position on, and a repeated cell shares its text.
//! Cells read as calamine gives them (`office:value` as a float, dates and
//! times as written, booleans, text paragraphs joined by newlines), so the
//! tables found are the same. Merged cells are not spread, as before.

use std::io::{BufReader, Cursor, Read};
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};

use super::grid::{Budget, Cell, Deadline, Doc, Grid, MAX_CELL_BYTES, MAX_COLS, MAX_ROWS};
use super::sheet::MAX_SHEETS;

/// Largest content.xml read; the package check already bounds what it claims.
const MAX_XML_BYTES: u64 = 256 << 20;

/// Reads the sheets of an .ods.
pub fn read(data: &[u8], clock: &mut Deadline, budget: &mut Budget) -> Result<Doc, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| e.to_string())?;
    if encrypted(&mut zip) {
        return Err("文档已加密（设置了打开密码）".into());
    }
    let content = zip
        .by_name("content.xml")
        .map_err(|_| "不是电子表格（缺少content.xml）".to_owned())?;
    let mut xml = Reader::from_reader(BufReader::new(content.take(MAX_XML_BYTES)));
    let mut buf = Vec::new();
    let mut doc = Doc::default();
    let mut sheet: Option<Sheet> = None;
    loop {
        clock.tick()?;
        buf.clear();
        let (event, empty) = match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) if e.name().as_ref() == "table:table" => {
                if let Some(s) = sheet.take() {
                    doc.grids.push(s.grid);
                }
                continue;
            }
            Event::End(e) if e.name().as_ref() == "table:table-row" => {
                if let Some(s) = sheet.as_mut() {
                    s.end_row(budget)?;
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match event.name().as_ref() {
            "table:table" if sheet.is_none() => {
                if doc.grids.len() >= MAX_SHEETS {
                    break;
                }
                let name = attr(&event, "table:name").unwrap_or_default();
                let s = Sheet::new(name);
                if empty {
                    doc.grids.push(s.grid);
                } else {
                    sheet = Some(s);
                }
            }
            "table:table-row" => {
                if let Some(s) = sheet.as_mut() {
                    s.repeat = count(&event, "table:number-rows-repeated");
                    if empty {
                        s.end_row(budget)?;
                    }
                }
            }
            "table:table-cell" | "table:covered-table-cell" => {
                let Some(s) = sheet.as_mut() else {
                    continue;
                };
                let repeat = count(&event, "table:number-columns-repeated");
                let text = match value(&event) {
                    Value::Text(t) => {
                        if !empty {
                            skip(&mut xml, &event)?;
                        }
                        t
                    }
                    Value::Content if empty => String::new(),
                    Value::Content => read_content(&mut xml, clock)?,
                };
                s.cell(&text, repeat, budget)?;
            }
            _ => {}
        }
    }
    Ok(doc)
}

/// An encrypted package lists `encryption-data` in its manifest.
fn encrypted(zip: &mut zip::ZipArchive<Cursor<&[u8]>>) -> bool {
    let Ok(manifest) = zip.by_name("META-INF/manifest.xml") else {
        return false;
    };
    let mut text = String::new();
    let _ = manifest.take(1 << 20).read_to_string(&mut text);
    text.contains("encryption-data")
}

/// One sheet being read: the row being filled and where it is.
struct Sheet {
    grid: Grid,
    /// Absolute row and column of the next row and cell.
    row: usize,
    col: usize,
    /// How often the current row repeats.
    repeat: usize,
    cells: Vec<(usize, Cell)>,
}

impl Sheet {
    fn new(name: String) -> Self {
        Self {
            grid: Grid {
                name,
                rows: Vec::new(),
            },
            row: 0,
            col: 0,
            repeat: 1,
            cells: Vec::new(),
        }
    }

    fn cell(&mut self, text: &str, repeat: usize, budget: &mut Budget) -> Result<(), String> {
        if !text.is_empty() && self.col < MAX_COLS && self.row < MAX_ROWS {
            let cell = budget.cell(text)?;
            let last = self.col.saturating_add(repeat).min(MAX_COLS);
            budget.cells(last - self.col - 1)?;
            for c in self.col + 1..last {
                self.cells.push((c, cell_sharing(&cell)));
            }
            self.cells.push((self.col, cell));
        }
        self.col = self.col.saturating_add(repeat);
        Ok(())
    }

    /// Lays the row's cells onto every row it repeats into.
    fn end_row(&mut self, budget: &mut Budget) -> Result<(), String> {
        let first = self.row;
        let last = first.saturating_add(self.repeat).min(MAX_ROWS);
        if !self.cells.is_empty() && first < last {
            let width = self.cells.iter().map(|(c, _)| c + 1).max().unwrap_or(0);
            budget.cells((last - first).saturating_mul(width))?;
            if self.grid.rows.len() < last {
                self.grid.rows.resize(last, Vec::new());
            }
            for row in &mut self.grid.rows[first..last] {
                row.resize(width, Cell::default());
                for (c, cell) in &self.cells {
                    row[*c] = cell_sharing(cell);
                }
            }
        }
        self.cells.clear();
        self.row = self.row.saturating_add(self.repeat);
        self.col = 0;
        self.repeat = 1;
        Ok(())
    }
}

/// A repeated cell: its own cell, the same text.
fn cell_sharing(cell: &Cell) -> Cell {
    Cell {
        text: Arc::clone(&cell.text),
        covered: false,
    }
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .map(|a| unescaped(&a))
}

/// An attribute's value with entities resolved.
fn unescaped(a: &Attribute) -> String {
    quick_xml::escape::unescape(&a.value)
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

/// A repeat count; 1 when absent or unreadable.
fn count(e: &BytesStart, name: &str) -> usize {
    attr(e, name).and_then(|v| v.parse().ok()).unwrap_or(1)
}

enum Value {
    Text(String),
    /// The cell's paragraphs are its value.
    Content,
}

/// The value a cell's attributes give, the first that is set winning, as
/// calamine reads it.
fn value(e: &BytesStart) -> Value {
    let mut string = false;
    let mut error = false;
    let mut set: Option<String> = None;
    for a in e.attributes().flatten() {
        let key = a.key.as_ref();
        let raw = || unescaped(&a);
        match key {
            "office:value" if set.is_none() => {
                let v = raw();
                set = Some(v.trim().parse::<f64>().map_or(v, |f| f.to_string()));
            }
            "office:string-value" | "office:date-value" | "office:time-value" if set.is_none() => {
                set = Some(raw());
            }
            "office:boolean-value" if set.is_none() => {
                let b = matches!(a.value.as_ref(), "TRUE" | "true");
                set = Some(if b { "是" } else { "否" }.to_owned());
            }
            "office:value-type" if set.is_none() => string = a.value == "string",
            "calcext:value-type" => error = a.value == "error",
            _ => {}
        }
    }
    match set {
        None if string => Value::Content,
        Some(s) if error && s.is_empty() => Value::Content,
        Some(s) => Value::Text(s),
        None => Value::Text(String::new()),
    }
}

/// Skips the rest of an element.
fn skip<R: std::io::BufRead>(xml: &mut Reader<R>, start: &BytesStart) -> Result<(), String> {
    let mut buf = Vec::new();
    xml.read_to_end_into(start.name(), &mut buf)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A cell's text: paragraphs joined by newlines, `text:s` spaces, tabs and
/// line breaks spelled out, annotations left out; cut to `MAX_CELL_BYTES`.
fn read_content<R: std::io::BufRead>(
    xml: &mut Reader<R>,
    clock: &mut Deadline,
) -> Result<String, String> {
    let mut s = String::new();
    let mut buf = Vec::new();
    let mut paragraphs = 0usize;
    let mut annotation = 0usize;
    let room = |s: &String| MAX_CELL_BYTES.saturating_sub(s.len());
    loop {
        clock.tick()?;
        buf.clear();
        let (e, start) = match xml.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(e) => {
                match e.name().as_ref() {
                    "table:table-cell" | "table:covered-table-cell" => return Ok(s),
                    "office:annotation" => annotation = annotation.saturating_sub(1),
                    _ => {}
                }
                continue;
            }
            Event::Text(t) if annotation == 0 => {
                let t = t.xml10_content();
                s.push_str(super::grid::truncate(&t, room(&s)));
                continue;
            }
            Event::GeneralRef(r) if annotation == 0 => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => match r.as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    },
                };
                if let Some(c) = c.filter(|c| c.len_utf8() <= room(&s)) {
                    s.push(c);
                }
                continue;
            }
            Event::Eof => return Err("表格文件不完整".into()),
            _ => continue,
        };
        match e.name().as_ref() {
            "office:annotation" if start => annotation += 1,
            _ if annotation > 0 => {}
            "text:p" => {
                if paragraphs > 0 && room(&s) > 0 {
                    s.push('\n');
                }
                paragraphs += 1;
            }
            "text:s" => {
                let n = count(&e, "text:c").min(room(&s));
                s.extend(std::iter::repeat_n(' ', n));
            }
            "text:tab" if room(&s) > 0 => s.push('\t'),
            "text:line-break" if room(&s) > 0 => s.push('\n'),
            _ => {}
        }
    }
}

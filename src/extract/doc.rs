//! Word 97–2003 `.doc` and WPS `.wps` (the same binary format) via cfb: no
//! mature crate reads their tables, so this reads [MS-DOC] directly:
//! FIB → CLX piece table (in `0Table`/`1Table`) → main-document text, and the
//! paragraph properties (PAPX FKPs) to tell a cell end from a row end.
//!
//! In the text a cell ends with `\x07`; a row ends with one more `\x07` whose
//! paragraph has `fTtp` (sprmPFTtp). An empty cell is also a bare `\x07`, so
//! the flag, not "two marks in a row", decides. Cells of nested tables end in
//! `\r` with sprmPFInnerTableCell: their text stays in the outer cell.
//! Merged cells are not spread: a vertically merged cell's continuations read
//! as empty and a horizontally merged cell as one cell.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::time::Instant;

use super::grid::{Budget, Cell, Deadline, Doc, Grid, MAX_COLS, MAX_ROWS};

/// Largest stream read out of the compound file.
const MAX_STREAM_BYTES: u64 = 64 * 1024 * 1024;
/// Most characters of main-document text read.
const MAX_CHARS: usize = 4 * 1024 * 1024;
/// Most paragraph runs an FKP page holds ([MS-DOC] 2.9.176: crun ≤ 0x1D).
const MAX_RUNS_PER_PAGE: usize = 0x1D;
/// Most paragraph runs read in all: one per paragraph, and a document of
/// `MAX_CHARS` characters has fewer paragraphs than that.
const MAX_RUNS: usize = 1 << 20;
/// Fields nest (a PAGE inside an IF); deeper ones are all taken as code.
const MAX_FIELD_DEPTH: usize = 32;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn stream(cf: &mut cfb::CompoundFile<Cursor<&[u8]>>, name: &str) -> Result<Vec<u8>, String> {
    let s = cf
        .open_stream(name)
        .map_err(|_| format!("缺少{name}流，不是Word 97-2003文档"))?;
    let mut out = Vec::new();
    s.take(MAX_STREAM_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// A run of the main text that comes from one place of the WordDocument stream.
struct Piece {
    cp_start: u32,
    cp_end: u32,
    /// Byte offset of the first character in the WordDocument stream.
    offset: usize,
    /// 8-bit cp1252 text rather than UTF-16LE.
    compressed: bool,
}

fn pieces(table: &[u8], fc_clx: usize, lcb_clx: usize) -> Result<Vec<Piece>, String> {
    let clx = table.get(fc_clx..fc_clx + lcb_clx).ok_or("片段表越界")?;
    let mut pos = 0;
    // Skip Prc entries (formatting of pieces), find the Pcdt.
    while clx.get(pos) == Some(&1) {
        let cb = u16_at(clx, pos + 1).ok_or("片段表损坏")? as usize;
        pos += 3 + cb;
    }
    if clx.get(pos) != Some(&2) {
        return Err("片段表损坏".into());
    }
    let lcb = u32_at(clx, pos + 1).ok_or("片段表损坏")? as usize;
    let plc = clx.get(pos + 5..pos + 5 + lcb).ok_or("片段表越界")?;
    let n = lcb.saturating_sub(4) / 12;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let cp_start = u32_at(plc, i * 4).ok_or("片段表损坏")?;
        let cp_end = u32_at(plc, (i + 1) * 4).ok_or("片段表损坏")?;
        let pcd = (n + 1) * 4 + i * 8;
        let fc = u32_at(plc, pcd + 2).ok_or("片段表损坏")?;
        let compressed = fc & 0x4000_0000 != 0;
        let fc = fc & 0x3FFF_FFFF;
        out.push(Piece {
            cp_start,
            cp_end,
            offset: if compressed {
                fc as usize / 2
            } else {
                fc as usize
            },
            compressed,
        });
    }
    Ok(out)
}

/// Paragraph flags that shape tables.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ParaFlags {
    /// The paragraph is in a table cell (sprmPFInTable).
    in_table: bool,
    /// The paragraph mark ends a table row (sprmPFTtp).
    ttp: bool,
    /// The paragraph mark ends a cell of a nested table (sprmPFInnerTableCell / InnerTtp).
    inner: bool,
}

/// Reads the flags out of one grpprl (list of property modifiers).
fn flags_of(grpprl: &[u8]) -> ParaFlags {
    let mut f = ParaFlags::default();
    let mut pos = 0;
    while let Some(sprm) = u16_at(grpprl, pos) {
        pos += 2;
        let len = match sprm >> 13 {
            0 | 1 => 1,
            2 | 4 | 5 => 2,
            3 => 4,
            7 => 3,
            _ => {
                // sprmTDefTable carries a 2-byte size, one more than the bytes after it.
                if sprm == 0xD608 {
                    u16_at(grpprl, pos).map_or(usize::MAX, |cb| cb as usize + 1)
                } else {
                    grpprl.get(pos).map_or(usize::MAX, |&cb| cb as usize + 1)
                }
            }
        };
        let on = grpprl.get(pos) == Some(&1);
        match sprm {
            0x2416 => f.in_table = on,
            0x2417 => f.ttp = on,
            0x244B | 0x244C => f.inner |= on,
            _ => {}
        }
        pos = pos.saturating_add(len);
        if pos > grpprl.len() {
            break;
        }
    }
    f
}

/// Paragraph flags by stream offset: (fc_start, fc_end, flags), sorted.
/// Each FKP page is read once, however often the PLC lists it.
fn paragraph_runs(
    word: &[u8],
    table: &[u8],
    fc: usize,
    lcb: usize,
    clock: &mut Deadline,
) -> Result<Vec<(u32, u32, ParaFlags)>, String> {
    let mut runs = Vec::new();
    let Some(plc) = table.get(fc..fc.saturating_add(lcb)) else {
        return Ok(runs);
    };
    let n = lcb.saturating_sub(4) / 8;
    let mut seen = HashSet::new();
    for i in 0..n {
        clock.tick()?;
        let Some(pn) = u32_at(plc, (n + 1) * 4 + i * 4) else {
            break;
        };
        if !seen.insert(pn & 0x3F_FFFF) || runs.len() >= MAX_RUNS {
            continue;
        }
        let base = (pn & 0x3F_FFFF) as usize * 512;
        let Some(page) = word.get(base..base + 512) else {
            continue;
        };
        let crun = page[511] as usize;
        if crun > MAX_RUNS_PER_PAGE {
            continue;
        }
        for j in 0..crun {
            let (Some(start), Some(end)) = (u32_at(page, j * 4), u32_at(page, (j + 1) * 4)) else {
                break;
            };
            let bx = (crun + 1) * 4 + j * 13;
            let off = page.get(bx).copied().unwrap_or(0) as usize * 2;
            let flags = if off == 0 {
                ParaFlags::default()
            } else {
                let cb = page.get(off).copied().unwrap_or(0) as usize;
                let (from, size) = if cb != 0 {
                    (off + 1, 2 * cb - 1)
                } else {
                    (
                        off + 2,
                        2 * page.get(off + 1).copied().unwrap_or(0) as usize,
                    )
                };
                // The first two bytes are the style index (istd).
                page.get(from + 2..(from + size).min(511))
                    .map(flags_of)
                    .unwrap_or_default()
            };
            runs.push((start, end, flags));
        }
    }
    runs.sort_by_key(|r| r.0);
    Ok(runs)
}

fn flags_at(runs: &[(u32, u32, ParaFlags)], fc: u32) -> ParaFlags {
    let i = runs.partition_point(|r| r.0 <= fc);
    match i.checked_sub(1).map(|i| runs[i]) {
        Some((_, end, f)) if fc < end => f,
        _ => ParaFlags::default(),
    }
}

/// Builds tables and lines from the main text.
#[derive(Default)]
struct Builder {
    doc: Doc,
    line: String,
    cell: String,
    row: Vec<Cell>,
    table: Vec<Vec<Cell>>,
    /// Field nesting up to `MAX_FIELD_DEPTH`: true where we are in a
    /// field's code (before `\x14`).
    fields: Vec<bool>,
    /// How many of `fields` are true: the test runs on every character.
    codes: usize,
    /// Fields open beyond `MAX_FIELD_DEPTH`.
    deep: usize,
    budget: Budget,
}

impl Builder {
    fn in_code(&self) -> bool {
        self.codes > 0 || self.deep > 0
    }

    fn open_field(&mut self) {
        if self.fields.len() < MAX_FIELD_DEPTH {
            self.fields.push(true);
            self.codes += 1;
        } else {
            self.deep += 1;
        }
    }

    fn field_result(&mut self) {
        if self.deep == 0
            && let Some(top) = self.fields.last_mut()
            && std::mem::replace(top, false)
        {
            self.codes -= 1;
        }
    }

    fn close_field(&mut self) {
        if self.deep > 0 {
            self.deep -= 1;
        } else if self.fields.pop() == Some(true) {
            self.codes -= 1;
        }
    }

    fn end_paragraph(&mut self, flags: ParaFlags) -> Result<(), String> {
        let in_cell = !self.row.is_empty() || !self.cell.is_empty();
        if in_cell || flags.in_table || flags.inner {
            // A paragraph inside a cell (or a nested table's cell) is a line of that cell.
            let text = std::mem::take(&mut self.line);
            self.cell.push_str(&text);
            self.cell.push('\n');
        } else {
            self.close_table()?;
            let text = std::mem::take(&mut self.line);
            self.doc.push_line(&text);
        }
        Ok(())
    }

    fn end_cell(&mut self) -> Result<(), String> {
        let mut text = std::mem::take(&mut self.cell);
        text.push_str(&std::mem::take(&mut self.line));
        if self.row.len() < MAX_COLS {
            let cell = self.budget.cell(text.trim_end_matches('\n'))?;
            self.row.push(cell);
        }
        Ok(())
    }

    fn end_row(&mut self) -> Result<(), String> {
        self.line.clear();
        self.cell.clear();
        let row = std::mem::take(&mut self.row);
        if self.table.len() < MAX_ROWS {
            // An empty row still costs its vector.
            self.budget.cells(1)?;
            self.table.push(row);
        }
        Ok(())
    }

    fn close_table(&mut self) -> Result<(), String> {
        if !self.row.is_empty() {
            self.end_row()?;
        }
        if !self.table.is_empty() {
            // A grid costs its name and vector: a few cells' worth.
            self.budget.cells(4)?;
            let name = format!("表格{}", self.doc.grids.len() + 1);
            let rows = std::mem::take(&mut self.table);
            self.doc.grids.push(Grid { name, rows });
        }
        Ok(())
    }
}

/// Reads the main text of a .doc/.wps into tables and lines.
pub fn read(data: &[u8], deadline: Instant) -> Result<Doc, String> {
    let mut cf = cfb::CompoundFile::open(Cursor::new(data)).map_err(|e| e.to_string())?;
    let word = stream(&mut cf, "WordDocument")?;
    if u16_at(&word, 0) != Some(0xA5EC) {
        return Err("WordDocument流的文件头不对，不是Word 97-2003文档".into());
    }
    let flags = u16_at(&word, 0x0A).unwrap_or(0);
    if flags & 0x0100 != 0 {
        return Err("文档已加密（设置了打开密码）".into());
    }
    let table = stream(
        &mut cf,
        if flags & 0x0200 != 0 {
            "1Table"
        } else {
            "0Table"
        },
    )?;
    // FibRgLw97 follows FibBase (32 bytes) and FibRgW97 (csw words).
    let csw = u16_at(&word, 32).ok_or("FIB损坏")? as usize;
    let lw = 34 + csw * 2;
    let cslw = u16_at(&word, lw).ok_or("FIB损坏")? as usize;
    let ccp_text = u32_at(&word, lw + 2 + 3 * 4).ok_or("FIB损坏")?;
    let fclcb = lw + 2 + cslw * 4 + 2;
    let pair = |i: usize| -> Option<(usize, usize)> {
        Some((
            u32_at(&word, fclcb + i * 8)? as usize,
            u32_at(&word, fclcb + i * 8 + 4)? as usize,
        ))
    };
    let (fc_clx, lcb_clx) = pair(33).ok_or("FIB损坏")?;
    let (fc_papx, lcb_papx) = pair(13).ok_or("FIB损坏")?;
    let mut clock = Deadline::new(deadline);
    let pieces = pieces(&table, fc_clx, lcb_clx)?;
    let runs = paragraph_runs(&word, &table, fc_papx, lcb_papx, &mut clock)?;

    let mut b = Builder::default();
    let mut read = 0usize;
    for p in &pieces {
        clock.tick()?;
        if read >= MAX_CHARS {
            break;
        }
        let end = p.cp_end.min(ccp_text);
        for cp in p.cp_start..end {
            clock.tick()?;
            read += 1;
            if read > MAX_CHARS {
                break;
            }
            let k = (cp - p.cp_start) as usize;
            let (c, fc) = if p.compressed {
                let Some(&byte) = word.get(p.offset + k) else {
                    break;
                };
                let bytes = [byte];
                let (s, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
                (s.chars().next().unwrap_or(' '), (p.offset + k) as u32)
            } else {
                let Some(unit) = u16_at(&word, p.offset + 2 * k) else {
                    break;
                };
                // A surrogate half alone is replaced: forms rarely hold astral characters.
                (
                    char::from_u32(unit as u32).unwrap_or('\u{FFFD}'),
                    (p.offset + 2 * k) as u32,
                )
            };
            step(&mut b, c, || flags_at(&runs, fc))?;
        }
    }
    b.close_table()?;
    if !b.line.trim().is_empty() {
        let line = std::mem::take(&mut b.line);
        b.doc.push_line(&line);
    }
    Ok(b.doc)
}

/// One character of main text. Field codes (`\x13 code \x14 result \x15`) are
/// dropped and results kept, because a form's visible text is the result
/// (a date, a page number), while the code is `PAGE \* MERGEFORMAT` noise.
fn step(b: &mut Builder, c: char, flags: impl Fn() -> ParaFlags) -> Result<(), String> {
    match c {
        '\u{13}' => b.open_field(),
        '\u{14}' => b.field_result(),
        '\u{15}' => b.close_field(),
        _ if b.in_code() => {}
        '\r' => b.end_paragraph(flags())?,
        '\u{7}' => {
            if flags().ttp {
                b.end_row()?;
            } else {
                b.end_cell()?;
            }
        }
        '\u{b}' => b.line.push('\n'),
        '\u{c}' => {
            let text = std::mem::take(&mut b.line);
            b.doc.push_line(&text);
        }
        '\u{1e}' => b.line.push('-'),
        '\u{a0}' => b.line.push(' '),
        // Picture/object anchors, footnote marks, soft hyphens and other controls.
        c if (c as u32) < 0x20 || c == '\u{1f}' => {}
        c => b.line.push(c),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn doc_piece_table_cells_are_read() {
        // LibreOffice's Word 97 export of the fixture 推荐表 (make_forms.py).
        let data = include_bytes!("../../tests/fixtures/forms/tuijian.doc");
        let doc = read(data, deadline()).unwrap();
        let g = &doc.grids[0];
        let header: Vec<&str> = g.rows[1].iter().map(|c| &*c.text).collect();
        assert_eq!(header[0], "序号");
        assert_eq!(header[2], "活动简介\n（100字以内，方案可附后）");
        assert_eq!(&*g.rows[2][1].text, "玄武区科普嘉年华");
        // Empty cells keep their column: row end is told by fTtp, not by two marks.
        assert_eq!(g.rows[5].len(), 6);
        assert_eq!(&*g.rows[5][0].text, "4");
        assert!(doc.lines.iter().any(|l| l.starts_with("推荐单位：")));
    }

    #[test]
    fn field_codes_are_dropped_and_results_kept() {
        let mut b = Builder::default();
        for c in "第\u{13} PAGE \\* MERGEFORMAT \u{14}3\u{15}页\r".chars() {
            step(&mut b, c, ParaFlags::default).unwrap();
        }
        assert_eq!(b.doc.lines, vec!["第3页"]);
    }

    #[test]
    fn row_end_and_cell_end_sprms_are_read() {
        // sprmPFInTable 1, sprmPFTtp 1, then sprmTDefTable with a 2-byte size.
        let grpprl = [0x16, 0x24, 1, 0x17, 0x24, 1, 0x08, 0xD6, 3, 0, 9, 9];
        let f = flags_of(&grpprl);
        assert!(f.in_table && f.ttp && !f.inner);
    }

    #[test]
    fn a_file_that_is_not_a_compound_file_is_an_error() {
        assert!(read(b"not a doc", deadline()).is_err());
    }
}

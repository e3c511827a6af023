//! The common shape every reader produces: cell grids (sheets, Word tables)
//! with merged regions spelled out, plus loose text lines (paragraphs outside
//! tables, a PDF's text layer).
//!
//! Also the two things every reader loop needs on hostile input: a
//! [`Budget`] for what one document may hold and a [`Deadline`] checked
//! every few items.

use std::sync::Arc;
use std::time::Instant;

/// Most rows and columns kept from one sheet or table; forms have a few dozen.
pub const MAX_ROWS: usize = 2000;
pub const MAX_COLS: usize = 100;
/// Most text kept from one document's loose lines.
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// Most cells (blank padding and merged copies included) in one document:
/// 24 bytes each, so about 100 MB.
pub const MAX_DOC_CELLS: usize = 4 << 20;
/// Most bytes of cell text in one document. A merged copy shares its
/// origin's text and costs nothing here.
pub const MAX_DOC_CELL_TEXT: usize = 64 << 20;
/// Longest text kept in one cell; a 100-字 summary is 300 bytes.
pub const MAX_CELL_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    /// Shared, not copied, between a merged region's cells: a crafted
    /// region over thousands of cells costs a pointer each.
    pub text: Arc<str>,
    /// The cell is covered by a merged region whose text (the same `text`)
    /// belongs to another cell, above or to the left.
    pub covered: bool,
}

impl Cell {
    pub fn new(text: impl Into<Arc<str>>) -> Self {
        Self {
            text: text.into(),
            covered: false,
        }
    }

    /// A cell of a merged region: it points at the origin's text.
    pub fn covered_by(origin: &Cell) -> Self {
        Self {
            text: Arc::clone(&origin.text),
            covered: true,
        }
    }
}

/// One sheet or one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grid {
    /// Sheet name, or `表格N` for the N-th Word table.
    pub name: String,
    pub rows: Vec<Vec<Cell>>,
}

impl Grid {
    /// Points every cell of a merged region at the anchor's text, marking
    /// them `covered`, so a label merged over several rows is seen on each.
    /// Region bounds are inclusive, relative to the grid; cells outside
    /// `MAX_ROWS`×`MAX_COLS` are left out.
    pub fn spread_merge(
        &mut self,
        (r0, c0): (usize, usize),
        (r1, c1): (usize, usize),
        budget: &mut Budget,
    ) -> Result<(), String> {
        let Some(origin) = self.rows.get(r0).and_then(|r| r.get(c0)).cloned() else {
            return Ok(());
        };
        let last_row = r1.min(self.rows.len().saturating_sub(1)).min(MAX_ROWS - 1);
        let last_col = c1.min(MAX_COLS - 1);
        for r in r0..=last_row {
            let row = &mut self.rows[r];
            for c in c0..=last_col {
                if (r, c) == (r0, c0) {
                    continue;
                }
                if row.len() <= c {
                    budget.cells(c + 1 - row.len())?;
                    row.resize(c + 1, Cell::default());
                }
                budget.merge_work()?;
                row[c] = Cell::covered_by(&origin);
            }
        }
        Ok(())
    }

    pub fn is_blank_row(row: &[Cell]) -> bool {
        row.iter().all(|c| c.text.trim().is_empty())
    }
}

/// What one file holds, ready for table finding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    pub grids: Vec<Grid>,
    /// Text outside the grids, line by line.
    pub lines: Vec<String>,
    /// Bytes in `lines`, to keep them bounded.
    text_bytes: usize,
}

impl Doc {
    /// Adds a loose line while the total stays bounded.
    pub fn push_line(&mut self, line: &str) {
        let line = line.trim();
        if !line.is_empty() && self.text_bytes + line.len() <= MAX_TEXT_BYTES {
            self.text_bytes += line.len();
            self.lines.push(line.to_owned());
        }
    }
}

/// What one document may still hold. Readers charge every cell they make;
/// a document over budget is refused rather than read in part, so the
/// sender hears that it was not read.
#[derive(Debug, Clone)]
pub struct Budget {
    cells: usize,
    text: usize,
    merge_work: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            cells: MAX_DOC_CELLS,
            text: MAX_DOC_CELL_TEXT,
            // Real merged regions do not overlap: their cells add up to less
            // than the grids. Overlapping crafted ones stop here.
            merge_work: MAX_DOC_CELLS,
        }
    }
}

/// Why a document over budget was refused, as the sender reads it.
pub const OVER_BUDGET: &str = "表格内容过多，超出读取上限";

impl Budget {
    /// Charges `n` cells (blank padding or merged copies).
    pub fn cells(&mut self, n: usize) -> Result<(), String> {
        self.cells = self.cells.checked_sub(n).ok_or(OVER_BUDGET)?;
        Ok(())
    }

    /// A new cell holding `text`, cut to `MAX_CELL_BYTES`, charged.
    pub fn cell(&mut self, text: &str) -> Result<Cell, String> {
        let text = truncate(text, MAX_CELL_BYTES);
        self.cells(1)?;
        self.text(text.len())?;
        Ok(Cell::new(text))
    }

    /// Charges `n` bytes of cell text built up by a reader.
    pub fn text(&mut self, n: usize) -> Result<(), String> {
        self.text = self.text.checked_sub(n).ok_or(OVER_BUDGET)?;
        Ok(())
    }

    fn merge_work(&mut self) -> Result<(), String> {
        self.merge_work = self.merge_work.checked_sub(1).ok_or(OVER_BUDGET)?;
        Ok(())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let cut = (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[..cut]
}

/// A deadline that loops check at every item but that reads the clock only
/// every `EVERY` items.
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Instant,
    count: u32,
}

/// Why a reader stopped at its deadline, as the sender reads it.
pub const TIMED_OUT: &str = "读取超时";

impl Deadline {
    const EVERY: u32 = 1024;

    pub fn new(at: Instant) -> Self {
        Self { at, count: 0 }
    }

    /// One more item; Err once the deadline has passed.
    pub fn tick(&mut self) -> Result<(), String> {
        self.count = self.count.wrapping_add(1);
        if self.count.is_multiple_of(Self::EVERY) {
            self.check()
        } else {
            Ok(())
        }
    }

    /// Reads the clock now.
    pub fn check(&self) -> Result<(), String> {
        if Instant::now() > self.at {
            Err(TIMED_OUT.into())
        } else {
            Ok(())
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_copies_share_the_origin_text() {
        let mut g = Grid {
            name: "s".into(),
            rows: vec![vec![Cell::new("标签")], vec![]],
        };
        g.spread_merge((0, 0), (1, 3), &mut Budget::default())
            .unwrap();
        assert!(Arc::ptr_eq(&g.rows[0][0].text, &g.rows[1][3].text));
        assert!(g.rows[1][3].covered && !g.rows[0][0].covered);
    }

    #[test]
    fn overlapping_merges_run_out_of_budget() {
        let mut g = Grid {
            name: "s".into(),
            rows: vec![vec![Cell::new("x")]; MAX_ROWS],
        };
        let mut budget = Budget::default();
        let spread = (0..1000)
            .map(|_| g.spread_merge((0, 0), (usize::MAX, usize::MAX), &mut budget))
            .find(Result::is_err);
        assert_eq!(spread, Some(Err(OVER_BUDGET.to_owned())));
    }

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("推荐表", 4), "推");
        assert_eq!(truncate("ab", 4), "ab");
    }
}

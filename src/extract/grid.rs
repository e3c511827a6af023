//! The common shape every reader produces: cell grids (sheets, Word tables)
//! with merged regions spelled out, plus loose text lines (paragraphs outside
//! tables, a PDF's text layer).

/// Most rows and columns kept from one sheet or table; forms have a few dozen.
pub const MAX_ROWS: usize = 2000;
pub const MAX_COLS: usize = 100;
/// Most text kept from one document's loose lines.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub text: String,
    /// The cell is covered by a merged region whose text (copied here) belongs to
    /// another cell, above or to the left.
    pub covered: bool,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            covered: false,
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
    /// Copies the anchor's text into every cell of a merged region, marking the
    /// copies `covered`, so a label merged over several rows is seen on each.
    /// Region bounds are inclusive, relative to the grid.
    pub fn spread_merge(&mut self, (r0, c0): (usize, usize), (r1, c1): (usize, usize)) {
        let Some(text) = self
            .rows
            .get(r0)
            .and_then(|r| r.get(c0))
            .map(|c| c.text.clone())
        else {
            return;
        };
        for r in r0..=r1.min(self.rows.len().saturating_sub(1)) {
            let row = &mut self.rows[r];
            for c in c0..=c1.min(MAX_COLS - 1) {
                if (r, c) == (r0, c0) {
                    continue;
                }
                if row.len() <= c {
                    row.resize(c + 1, Cell::default());
                }
                row[c] = Cell {
                    text: text.clone(),
                    covered: true,
                };
            }
        }
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

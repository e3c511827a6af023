//! Workbooks: .xlsx/.xlsm/.xlsb through calamine's streaming cell readers,
//! .xls and WPS .et (a BIFF workbook under another name) through calamine
//! after [`biff::sanitise`], .ods through [`ods`]. Formulas give their cached
//! values.
//!
//! calamine's `worksheet_range` builds a dense range from a sheet's extent,
//! so one far cell (XFD1048576) asks for 512 GiB. The streaming readers
//! place cells one by one inside `MAX_ROWS`×`MAX_COLS` instead; .xls has no
//! streaming reader, so its far cells are taken out before calamine sees it.

use std::borrow::Cow;
use std::io::{Cursor, Read, Seek};
use std::time::Instant;

use calamine::{Data, DataRef, Dimensions, Reader, Xls, Xlsb, Xlsx};

use super::ReadAs;
use super::biff;
use super::grid::{Budget, Cell, Deadline, Doc, Grid, MAX_COLS, MAX_ROWS};
use super::ods;

/// Most sheets looked at in one workbook.
pub const MAX_SHEETS: usize = 20;
/// Largest part of a zip package (sheet XML, shared strings) by its
/// declared size; a form's largest part is well under a megabyte.
const MAX_PART_BYTES: u64 = 128 << 20;
/// Most bytes a zip package declares unpacked, over all its parts.
const MAX_PACKAGE_BYTES: u64 = 512 << 20;

/// Reads every sheet (up to `MAX_SHEETS`, each cut to `MAX_ROWS`×`MAX_COLS`)
/// of a workbook `kind` until `deadline`.
pub fn read(data: &[u8], kind: ReadAs, deadline: Instant) -> Result<Doc, String> {
    let mut clock = Deadline::new(deadline);
    let mut budget = Budget::default();
    match kind {
        ReadAs::Ods => {
            check_package(data)?;
            ods::read(data, &mut clock, &mut budget)
        }
        ReadAs::Xls => {
            let clean = biff::sanitise(data, &mut clock)?;
            let mut book = Xls::new(Cursor::new(clean)).map_err(|e| e.to_string())?;
            read_xls(&mut book, &mut clock, &mut budget)
        }
        ReadAs::Xlsb => {
            check_package(data)?;
            let mut book = Xlsb::new(Cursor::new(data)).map_err(|e| e.to_string())?;
            read_streamed(&mut book, &mut clock, &mut budget)
        }
        _ => {
            check_package(data)?;
            let mut book = Xlsx::new(Cursor::new(data)).map_err(|e| e.to_string())?;
            read_streamed(&mut book, &mut clock, &mut budget)
        }
    }
}

/// Refuses a zip package whose parts claim more than a form could need:
/// calamine reads shared strings whole. The sizes are the headers' word:
/// a package that lies is caught by the worker's memory limit.
pub fn check_package(data: &[u8]) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| e.to_string())?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let Ok(size) = zip.by_index_raw(i).map(|f| f.size()) else {
            continue;
        };
        total = total.saturating_add(size);
        if size > MAX_PART_BYTES || total > MAX_PACKAGE_BYTES {
            return Err(format!(
                "文件解压后超过{} MB，超出读取上限",
                MAX_PACKAGE_BYTES >> 20
            ));
        }
    }
    Ok(())
}

/// Takes each cell's position and value; Err stops the reading.
type EachCell<'f> = dyn FnMut((u32, u32), &DataRef<'_>) -> Result<(), String> + 'f;

/// A workbook with a cell-by-cell reader: xlsx and xlsb.
trait Streamed {
    fn names(&self) -> Vec<String>;
    fn merges(&mut self, name: &str) -> Vec<Dimensions>;
    /// Calls `each` for every cell of sheet `name` in file order; Err(None)
    /// when the sheet cannot be read, Err(Some) when `each` stopped.
    fn cells(&mut self, name: &str, each: &mut EachCell<'_>) -> Result<(), Option<String>>;
}

impl<RS: Read + Seek> Streamed for Xlsx<RS> {
    fn names(&self) -> Vec<String> {
        self.sheet_names()
    }

    fn merges(&mut self, name: &str) -> Vec<Dimensions> {
        self.merge_cells_by_sheet_name(name).unwrap_or_default()
    }

    fn cells(&mut self, name: &str, each: &mut EachCell<'_>) -> Result<(), Option<String>> {
        let mut cells = self.worksheet_cells_reader(name).map_err(|_| None)?;
        while let Some(c) = cells.next_cell().map_err(|_| None)? {
            each(c.get_position(), c.get_value()).map_err(Some)?;
        }
        Ok(())
    }
}

impl<RS: Read + Seek> Streamed for Xlsb<RS> {
    fn names(&self) -> Vec<String> {
        self.sheet_names()
    }

    /// calamine does not read xlsb merges; covered cells stay empty, which
    /// table finding tolerates.
    fn merges(&mut self, _: &str) -> Vec<Dimensions> {
        Vec::new()
    }

    fn cells(&mut self, name: &str, each: &mut EachCell<'_>) -> Result<(), Option<String>> {
        let mut cells = self.worksheet_cells_reader(name).map_err(|_| None)?;
        while let Some(c) = cells.next_cell().map_err(|_| None)? {
            each(c.get_position(), c.get_value()).map_err(Some)?;
        }
        Ok(())
    }
}

fn read_streamed(
    book: &mut dyn Streamed,
    clock: &mut Deadline,
    budget: &mut Budget,
) -> Result<Doc, String> {
    let mut doc = Doc::default();
    for name in book.names().into_iter().take(MAX_SHEETS) {
        clock.check()?;
        let merges = book.merges(&name);
        let mut grid = Grid {
            name: name.clone(),
            rows: Vec::new(),
        };
        let read = book.cells(&name, &mut |(r, c), value| {
            clock.tick()?;
            place(
                &mut grid,
                (r as usize, c as usize),
                &text_of_ref(value),
                budget,
            )
        });
        match read {
            Ok(()) => {}
            // A sheet that fails alone (chart sheet, broken part) does not sink the others.
            Err(None) => continue,
            Err(Some(stop)) => return Err(stop),
        }
        spread(&mut grid, &merges, budget)?;
        doc.grids.push(grid);
    }
    Ok(doc)
}

fn read_xls<RS: Read + Seek>(
    book: &mut Xls<RS>,
    clock: &mut Deadline,
    budget: &mut Budget,
) -> Result<Doc, String> {
    let mut doc = Doc::default();
    for name in book.sheet_names().into_iter().take(MAX_SHEETS) {
        clock.check()?;
        let Ok(range) = book.worksheet_range(&name) else {
            continue;
        };
        let merges = book.merge_cells_by_sheet_name(&name).unwrap_or_default();
        let mut grid = Grid {
            name: name.clone(),
            rows: Vec::new(),
        };
        let (r0, c0) = range.start().unwrap_or_default();
        for (r, c, value) in range.used_cells() {
            clock.tick()?;
            place(
                &mut grid,
                (r0 as usize + r, c0 as usize + c),
                &text_of(value),
                budget,
            )?;
        }
        spread(&mut grid, &merges, budget)?;
        doc.grids.push(grid);
    }
    Ok(doc)
}

/// Puts one cell's text at its absolute place, if inside the window.
fn place(
    grid: &mut Grid,
    (r, c): (usize, usize),
    text: &str,
    budget: &mut Budget,
) -> Result<(), String> {
    if r >= MAX_ROWS || c >= MAX_COLS || text.is_empty() {
        return Ok(());
    }
    if grid.rows.len() <= r {
        grid.rows.resize(r + 1, Vec::new());
    }
    let row = &mut grid.rows[r];
    if row.len() <= c {
        budget.cells(c - row.len())?;
        row.resize(c + 1, Cell::default());
    }
    row[c] = budget.cell(text)?;
    Ok(())
}

fn spread(grid: &mut Grid, merges: &[Dimensions], budget: &mut Budget) -> Result<(), String> {
    for m in merges {
        let (mr0, mc0) = (m.start.0 as usize, m.start.1 as usize);
        let (mr1, mc1) = (m.end.0 as usize, m.end.1 as usize);
        if mr0 < MAX_ROWS && mc0 < MAX_COLS {
            grid.spread_merge((mr0, mc0), (mr1, mc1), budget)?;
        }
    }
    Ok(())
}

fn text_of_ref<'a>(value: &'a DataRef<'_>) -> Cow<'a, str> {
    match value {
        DataRef::SharedString(s) => Cow::Borrowed(s),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cow::Borrowed(s),
        DataRef::Empty | DataRef::Error(_) => Cow::Borrowed(""),
        DataRef::Int(i) => Cow::Owned(i.to_string()),
        // Shortest text that reads back as the same float: 12.5, 45, 0.1.
        DataRef::Float(f) => Cow::Owned(f.to_string()),
        DataRef::Bool(b) => Cow::Borrowed(if *b { "是" } else { "否" }),
        DataRef::DateTime(d) => Cow::Owned(excel_date(d.as_f64())),
    }
}

fn text_of(value: &Data) -> Cow<'_, str> {
    match value {
        Data::Empty | Data::Error(_) => Cow::Borrowed(""),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Cow::Borrowed(s),
        Data::Int(i) => Cow::Owned(i.to_string()),
        Data::Float(f) => Cow::Owned(f.to_string()),
        Data::Bool(b) => Cow::Borrowed(if *b { "是" } else { "否" }),
        Data::DateTime(d) => Cow::Owned(excel_date(d.as_f64())),
    }
}

/// An Excel serial date (days since 1899-12-30, the 1900 system) as text.
fn excel_date(serial: f64) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    let secs = (serial * 86_400.0).round();
    if !(0.0..1.0e12).contains(&secs) {
        return serial.to_string();
    }
    let t = base.and_time(chrono::NaiveTime::MIN) + chrono::Duration::seconds(secs as i64);
    if t.time() == chrono::NaiveTime::MIN {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    }
}

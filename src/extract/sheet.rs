//! Workbooks through calamine: .xlsx/.xlsm/.xlsb/.xls/.ods and WPS .et (a BIFF
//! workbook under another name). Formulas give their cached values.

use std::io::Cursor;
use std::time::Instant;

use calamine::{Data, Dimensions, Range, Reader, Sheets, open_workbook_auto_from_rs};

use super::grid::{Cell, Doc, Grid, MAX_COLS, MAX_ROWS};

/// Most sheets looked at in one workbook.
const MAX_SHEETS: usize = 20;

/// Reads every sheet (up to `MAX_SHEETS`, each cut to `MAX_ROWS`×`MAX_COLS`)
/// until `deadline`.
pub fn read(data: &[u8], deadline: Instant) -> Result<Doc, String> {
    let mut book = open_workbook_auto_from_rs(Cursor::new(data)).map_err(|e| e.to_string())?;
    let names = book.sheet_names();
    let mut doc = Doc::default();
    for name in names.into_iter().take(MAX_SHEETS) {
        if Instant::now() > deadline {
            break;
        }
        // A sheet that fails alone (chart sheet, broken part) does not sink the others.
        let Ok(range) = book.worksheet_range(&name) else {
            continue;
        };
        let merges = merges(&mut book, &name);
        doc.grids.push(to_grid(&name, &range, &merges));
    }
    Ok(doc)
}

/// Merged regions: calamine knows them for xlsx and xls only; ods and xlsb
/// leave covered cells empty, which table finding tolerates.
fn merges<RS: std::io::Read + std::io::Seek>(book: &mut Sheets<RS>, name: &str) -> Vec<Dimensions> {
    match book {
        Sheets::Xlsx(x) => x.merge_cells_by_sheet_name(name).unwrap_or_default(),
        Sheets::Xls(x) => x.merge_cells_by_sheet_name(name).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn to_grid(name: &str, range: &Range<Data>, merges: &[Dimensions]) -> Grid {
    let mut grid = Grid {
        name: name.to_owned(),
        rows: Vec::new(),
    };
    let Some((r0, c0)) = range.start() else {
        return grid;
    };
    let (r0, c0) = (r0 as usize, c0 as usize);
    for (r, row) in range.rows().enumerate() {
        let abs_r = r0 + r;
        if abs_r >= MAX_ROWS {
            break;
        }
        if grid.rows.len() <= abs_r {
            grid.rows.resize(abs_r + 1, Vec::new());
        }
        let out = &mut grid.rows[abs_r];
        for (c, value) in row.iter().enumerate() {
            let abs_c = c0 + c;
            if abs_c >= MAX_COLS {
                break;
            }
            let text = cell_text(value);
            if text.is_empty() {
                continue;
            }
            if out.len() <= abs_c {
                out.resize(abs_c + 1, Cell::default());
            }
            out[abs_c] = Cell::new(text);
        }
    }
    for m in merges {
        let (mr0, mc0) = (m.start.0 as usize, m.start.1 as usize);
        let (mr1, mc1) = (m.end.0 as usize, m.end.1 as usize);
        if mr0 < MAX_ROWS && mc0 < MAX_COLS {
            grid.spread_merge((mr0, mc0), (mr1, mc1));
        }
    }
    grid
}

fn cell_text(value: &Data) -> String {
    match value {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        // Shortest text that reads back as the same float: 12.5, 45, 0.1.
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "是" } else { "否" }.to_owned(),
        Data::DateTime(d) => excel_date(d.as_f64()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
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

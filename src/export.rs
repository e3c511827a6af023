//! The consolidated workbook (.xlsx) coordinators get with the digest: one
//! sheet per form with every unit's records, totals under the 统计表, and the
//! status matrix. Pure data in, bytes out.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, FixedOffset};
use rust_xlsxwriter::{
    ColNum, Color, Format, FormatAlign, FormatBorder, Formula, RowNum, Workbook, Worksheet,
    XlsxError, utility::row_col_to_cell,
};

use crate::config::{FormDef, Layout};
use crate::model::FieldValue;
use crate::outbound::{CellState, DigestDeadline};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the workbook: {0}")]
    Xlsx(#[from] XlsxError),
}

#[derive(Debug, Clone)]
pub struct ExportData {
    pub forms: Vec<ExportForm>,
    /// One status sheet per deadline.
    pub status: Vec<DigestDeadline>,
}

#[derive(Debug, Clone)]
pub struct ExportForm {
    /// Sheet name, e.g. `推荐表`.
    pub name: String,
    pub layout: Layout,
    pub columns: Vec<ExportColumn>,
    pub rows: Vec<ExportRow>,
}

#[derive(Debug, Clone)]
pub struct ExportColumn {
    pub key: String,
    pub label: String,
    /// Shown in the header, e.g. `万元`.
    pub unit: Option<String>,
}

impl ExportColumn {
    /// The columns of a configured form, in its field order.
    pub fn of_form(def: &FormDef) -> Vec<Self> {
        def.fields
            .iter()
            .map(|f| Self {
                key: f.key.clone(),
                label: f.display_name().to_owned(),
                unit: f.unit.clone(),
            })
            .collect()
    }

    fn header(&self) -> String {
        match &self.unit {
            Some(u) => format!("{}（{u}）", self.label),
            None => self.label.clone(),
        }
    }
}

/// One value read from a unit's form, as the store gives it.
#[derive(Debug, Clone)]
pub struct ExportRecord {
    pub org_name: String,
    /// The file it was read from (a store id): values of one file and row
    /// make one line of the sheet.
    pub document: i64,
    /// Row of a `rows` form; None for a `fields` form.
    pub row: Option<u32>,
    pub source_file: String,
    pub received_at: DateTime<FixedOffset>,
    pub key: String,
    pub value: FieldValue,
}

/// The lines of a form's sheet: one per (file, row), in the order given.
pub fn rows(records: impl IntoIterator<Item = ExportRecord>) -> Vec<ExportRow> {
    let mut rows: Vec<ExportRow> = Vec::new();
    let mut index: BTreeMap<(i64, Option<u32>), usize> = BTreeMap::new();
    for r in records {
        let i = *index.entry((r.document, r.row)).or_insert_with(|| {
            rows.push(ExportRow {
                org_name: r.org_name.clone(),
                values: BTreeMap::new(),
                source_file: r.source_file.clone(),
                received_at: r.received_at,
            });
            rows.len() - 1
        });
        rows[i].values.insert(r.key, r.value);
    }
    rows
}

/// One record: a row of a `rows` form, or a whole `fields` form.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub org_name: String,
    pub values: BTreeMap<String, FieldValue>,
    pub source_file: String,
    pub received_at: DateTime<FixedOffset>,
}

struct Formats {
    header: Format,
    text: Format,
    wrap: Format,
    number: Format,
    total_label: Format,
    total: Format,
}

impl Formats {
    fn new() -> Self {
        let cell = Format::new()
            .set_border(FormatBorder::Thin)
            .set_border_color(Color::RGB(0xBFBFBF))
            .set_align(FormatAlign::VerticalCenter);
        Self {
            header: cell
                .clone()
                .set_bold()
                .set_text_wrap()
                .set_align(FormatAlign::Center)
                .set_background_color(Color::RGB(0xDDEBF7)),
            text: cell.clone(),
            wrap: cell.clone().set_text_wrap(),
            number: cell.clone().set_num_format("#,##0.##"),
            total_label: cell
                .clone()
                .set_bold()
                .set_background_color(Color::RGB(0xF2F2F2)),
            total: cell
                .set_bold()
                .set_num_format("#,##0.##")
                .set_background_color(Color::RGB(0xF2F2F2)),
        }
    }
}

/// Builds the workbook.
pub fn workbook(data: &ExportData) -> Result<Vec<u8>, ExportError> {
    let mut wb = Workbook::new();
    let fmt = Formats::new();
    let mut names = SheetNames::default();
    for form in &data.forms {
        let ws = wb.add_worksheet();
        ws.set_name(names.take(&form.name))?;
        form_sheet(ws, form, &fmt)?;
    }
    for deadline in &data.status {
        let ws = wb.add_worksheet();
        let name = if data.status.len() == 1 {
            "报送情况".to_owned()
        } else {
            format!("报送情况-{}", deadline.name)
        };
        ws.set_name(names.take(&name))?;
        status_sheet(ws, deadline, &fmt)?;
    }
    if data.forms.is_empty() && data.status.is_empty() {
        wb.add_worksheet().set_name("报送情况")?;
    }
    Ok(wb.save_to_buffer()?)
}

/// Column widths in Excel units, from the widest text (CJK counts double).
struct Widths(Vec<usize>);

impl Widths {
    fn see(&mut self, col: usize, s: &str) {
        let w = s
            .lines()
            .map(|l| l.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum())
            .max()
            .unwrap_or(0);
        if self.0.len() <= col {
            self.0.resize(col + 1, 0);
        }
        self.0[col] = self.0[col].max(w);
    }

    fn apply(&self, ws: &mut Worksheet) -> Result<(), XlsxError> {
        for (col, w) in self.0.iter().enumerate() {
            ws.set_column_width(col as ColNum, (*w + 2).clamp(6, 50) as f64)?;
        }
        Ok(())
    }
}

fn form_sheet(ws: &mut Worksheet, form: &ExportForm, fmt: &Formats) -> Result<(), XlsxError> {
    let mut headers = vec!["单位".to_owned()];
    headers.extend(form.columns.iter().map(ExportColumn::header));
    headers.extend(["来源文件".to_owned(), "收到时间".to_owned()]);
    let mut widths = Widths(Vec::new());
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, c as ColNum, h, &fmt.header)?;
        // Headers wrap, so they need only half their length.
        widths.see(
            c,
            &h.chars()
                .take(h.chars().count().div_ceil(2))
                .collect::<String>(),
        );
    }
    ws.set_freeze_panes(1, 1)?;
    let last = form.columns.len() + 1;
    let mut sums: Vec<Option<f64>> = vec![None; form.columns.len()];
    for (i, row) in form.rows.iter().enumerate() {
        let r = (i + 1) as RowNum;
        ws.write_string_with_format(r, 0, &row.org_name, &fmt.text)?;
        widths.see(0, &row.org_name);
        for (j, col) in form.columns.iter().enumerate() {
            let c = (j + 1) as ColNum;
            match row.values.get(&col.key) {
                Some(FieldValue {
                    value: serde_json::Value::Number(n),
                    text,
                }) => {
                    let v = n.as_f64().unwrap_or_default();
                    ws.write_number_with_format(r, c, v, &fmt.number)?;
                    *sums[j].get_or_insert(0.0) += v;
                    widths.see(j + 1, text);
                }
                Some(FieldValue {
                    value: serde_json::Value::String(s),
                    ..
                }) => {
                    ws.write_string_with_format(r, c, s, &fmt.wrap)?;
                    widths.see(j + 1, s);
                }
                // Empty, 无, / …: keep what the unit wrote.
                Some(FieldValue { text, .. }) => {
                    ws.write_string_with_format(r, c, text, &fmt.wrap)?;
                    widths.see(j + 1, text);
                }
                None => {
                    ws.write_blank(r, c, &fmt.text)?;
                }
            }
        }
        ws.write_string_with_format(r, last as ColNum, &row.source_file, &fmt.text)?;
        widths.see(last, &row.source_file);
        let at = row.received_at.format("%Y-%m-%d %H:%M").to_string();
        ws.write_string_with_format(r, (last + 1) as ColNum, &at, &fmt.text)?;
        widths.see(last + 1, &at);
    }
    if form.layout == Layout::Fields && !form.rows.is_empty() {
        let r = (form.rows.len() + 1) as RowNum;
        ws.write_string_with_format(r, 0, "合计", &fmt.total_label)?;
        for (j, sum) in sums.iter().enumerate() {
            let c = (j + 1) as ColNum;
            match sum {
                // The cached result lets readers that do not calculate show the sum too.
                Some(sum) => {
                    let f = Formula::new(format!(
                        "=SUM({}:{})",
                        row_col_to_cell(1, c),
                        row_col_to_cell(r - 1, c)
                    ))
                    .set_result(number_text(*sum));
                    ws.write_formula_with_format(r, c, f, &fmt.total)?;
                }
                None => {
                    ws.write_blank(r, c, &fmt.total_label)?;
                }
            }
        }
        ws.write_blank(r, last as ColNum, &fmt.total_label)?;
        ws.write_blank(r, (last + 1) as ColNum, &fmt.total_label)?;
    }
    widths.apply(ws)
}

fn status_sheet(ws: &mut Worksheet, d: &DigestDeadline, fmt: &Formats) -> Result<(), XlsxError> {
    let mut headers = vec!["序号".to_owned(), "单位".to_owned()];
    headers.extend(d.columns.iter().cloned());
    headers.extend(["需修改".to_owned(), "是否齐全".to_owned()]);
    let mut widths = Widths(Vec::new());
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, c as ColNum, h, &fmt.header)?;
        widths.see(c, h);
    }
    ws.set_freeze_panes(1, 2)?;
    let state_fmt = |s: CellState| {
        let (bg, fg) = match s {
            CellState::Received => (0xE6F4EA, 0x137333),
            CellState::Late => (0xFEF7E0, 0xB06000),
            CellState::Missing => (0xFCE8E6, 0xC5221F),
            CellState::Problem => (0xF3E8FD, 0x7627BB),
        };
        fmt.text
            .clone()
            .set_align(FormatAlign::Center)
            .set_background_color(Color::RGB(bg))
            .set_font_color(Color::RGB(fg))
    };
    for (i, row) in d.rows.iter().enumerate() {
        let r = (i + 1) as RowNum;
        ws.write_number_with_format(r, 0, (i + 1) as f64, &fmt.text)?;
        ws.write_string_with_format(r, 1, &row.org_name, &fmt.text)?;
        widths.see(1, &row.org_name);
        for (j, cell) in row.cells.iter().enumerate() {
            let mut s = cell.state.label_zh().to_owned();
            match cell.sealed {
                Some(true) => s.push_str("（有章）"),
                Some(false) => s.push_str("（无章）"),
                None => {}
            }
            if !cell.text.is_empty() {
                s = format!("{s} {}", cell.text);
            }
            ws.write_string_with_format(r, (j + 2) as ColNum, &s, &state_fmt(cell.state))?;
            widths.see(j + 2, &s);
        }
        let c = (d.columns.len() + 2) as ColNum;
        let problems = row.problems.join("\n");
        ws.write_string_with_format(r, c, &problems, &fmt.wrap)?;
        widths.see(c as usize, &problems);
        ws.write_string_with_format(r, c + 1, if row.complete { "是" } else { "否" }, &fmt.text)?;
    }
    widths.apply(ws)
}

/// `12.5`, `152`: how a sum is cached in the file.
fn number_text(v: f64) -> String {
    let rounded = (v * 1e6).round() / 1e6;
    if rounded.fract() == 0.0 && rounded.abs() < 1e15 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded}")
    }
}

/// Excel's sheet-name rules: at most 31 UTF-16 units, none of `[]:*?/\`,
/// no leading or trailing apostrophe, unique regardless of case.
#[derive(Default)]
struct SheetNames(HashSet<String>);

impl SheetNames {
    fn take(&mut self, wanted: &str) -> String {
        let clean: String = wanted
            .chars()
            .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
            .collect();
        let clean = clean.trim_matches(['\'', ' ']);
        let base = if clean.is_empty() { "表" } else { clean };
        let mut n = 1;
        loop {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!("({n})")
            };
            let mut name = String::new();
            for c in base.chars() {
                if name.encode_utf16().count() + c.len_utf16() + suffix.len() > 31 {
                    break;
                }
                name.push(c);
            }
            let name = format!("{}{suffix}", name.trim_end_matches('\''));
            if self.0.insert(name.to_lowercase()) {
                return name;
            }
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_follow_excel_rules() {
        let mut n = SheetNames::default();
        assert_eq!(n.take("推荐表"), "推荐表");
        assert_eq!(n.take("推荐表"), "推荐表(2)");
        assert_eq!(n.take("a/b:c"), "a_b_c");
        let long = n.take(&"很".repeat(40));
        assert_eq!(long.encode_utf16().count(), 31);
        let long2 = n.take(&"很".repeat(40));
        assert!(long2.ends_with("(2)") && long2.encode_utf16().count() <= 31);
    }

    #[test]
    fn sums_are_cached_as_plain_numbers() {
        assert_eq!(number_text(152.0), "152");
        assert_eq!(number_text(0.1 + 0.2), "0.3");
    }
}

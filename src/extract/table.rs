//! Finding a form's table in a document: the header row (rows layout) or the
//! labels (fields layout), mapped to the form definition's canonical keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::grid::{Cell, Doc, Grid, truncate};
use super::validate::{self, At};
use crate::config::{FieldDef, FormDef, Layout};
use crate::fold::label_key;
use crate::model::{FieldValue, Table};
use crate::model::{Problem, ProblemCode};

/// Rows searched for a header: titles and notes rarely take more.
const HEADER_SEARCH_ROWS: usize = 60;
/// A header must name at least this many of the form's columns.
const MIN_HEADER_FIELDS: usize = 3;
/// A longer cell is content, not a label.
const MAX_LABEL_CHARS: usize = 40;
/// Most characters a header cell may add after a label it starts with.
const MAX_LABEL_EXTRA: usize = 6;
/// Bytes of a cell looked at to normalise it as a label: far more than a
/// label, and a merged copy of a long cell costs no more than a short one.
const MAX_LABEL_SCAN: usize = 1024;
/// Most bytes of values one table returns: a filled 推荐表 of 2000 records
/// has a few MB; merged cells repeated down every row cannot make more.
const MAX_TABLE_TEXT: usize = 8 << 20;

/// How well a cell names a field: exact (after normalising) beats "starts with".
fn label_match(cell: &str, labels: &[String]) -> Option<u8> {
    if cell.is_empty() || cell.chars().count() > MAX_LABEL_CHARS {
        return None;
    }
    let mut best = None;
    for l in labels {
        if l.is_empty() {
            continue;
        }
        if cell == l {
            return Some(2);
        }
        // "联系人及电话号码", "开展次数合计": a label with a few words more. A long
        // remainder is content that happens to start like a label.
        let (lc, cc) = (l.chars().count(), cell.chars().count());
        if lc >= 2 && cc <= lc + MAX_LABEL_EXTRA && cell.starts_with(l.as_str()) {
            best = Some(1);
        }
    }
    best
}

/// A form definition with its labels and groups normalised once.
struct Form<'a> {
    def: &'a FormDef,
    labels: Vec<Vec<String>>,
    groups: Vec<Option<String>>,
}

impl<'a> Form<'a> {
    fn new(def: &'a FormDef) -> Self {
        Self {
            def,
            labels: def
                .fields
                .iter()
                .map(|f| f.labels.iter().map(|l| label_key(l)).collect())
                .collect(),
            groups: def
                .fields
                .iter()
                .map(|f| f.group.as_deref().map(label_key))
                .collect(),
        }
    }
}

/// The field a cell names best, preferring one whose group is among `groups`
/// (the cells left of it).
fn best_field<'f>(cell: &str, form: &Form<'f>, groups: &[String]) -> Option<(usize, &'f FieldDef)> {
    form.def
        .fields
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let q = label_match(cell, &form.labels[i])?;
            let in_group = form.groups[i]
                .as_deref()
                .is_some_and(|g| groups.iter().any(|x| x.starts_with(g)));
            Some(((q, in_group, std::cmp::Reverse(i)), (i, f)))
        })
        .max_by_key(|(k, _)| *k)
        .map(|(_, v)| v)
}

/// What was found for one form in one document.
#[derive(Debug)]
pub struct Found {
    pub table: Table,
    pub unit: Option<String>,
    pub problems: Vec<Problem>,
    /// How many of the form's fields were recognised.
    pub score: usize,
}

/// Finds `form` in `doc`; None when the document does not hold it.
pub fn find(doc: &Doc, def: &FormDef, file: &str) -> Option<Found> {
    let form = Form::new(def);
    match def.layout {
        Layout::Rows => doc
            .grids
            .iter()
            .filter_map(|g| find_rows(g, doc, &form, file))
            // The first of equally good tables.
            .reduce(|best, f| if f.score > best.score { f } else { best }),
        Layout::Fields => find_fields(doc, &form, file),
    }
}

/// Cells of `row` normalised, with a covered copy of its left neighbour blanked
/// (a title merged across columns is one label, not six).
fn normalised_row(row: &[Cell]) -> Vec<String> {
    row.iter()
        .enumerate()
        .map(|(i, c)| {
            let left_copy = c.covered && i > 0 && same_text(&row[i - 1], c);
            if left_copy {
                String::new()
            } else {
                label_of(&c.text)
            }
        })
        .collect()
}

/// A cell's text normalised as a label; only its start is looked at.
fn label_of(text: &str) -> String {
    label_key(truncate(text, MAX_LABEL_SCAN))
}

/// Two cells show the same text; a merged copy shares its origin's.
fn same_text(a: &Cell, b: &Cell) -> bool {
    Arc::ptr_eq(&a.text, &b.text) || a.text == b.text
}

/// Column → field index for one header row.
fn header_map(row: &[Cell], form: &Form, exact_only: bool) -> Vec<(usize, usize)> {
    let cells = normalised_row(row);
    let mut best: BTreeMap<usize, (u8, usize)> = BTreeMap::new();
    for (col, cell) in cells.iter().enumerate() {
        for (fi, labels) in form.labels.iter().enumerate() {
            if let Some(q) = label_match(cell, labels).filter(|&q| !exact_only || q == 2) {
                let better = best.get(&fi).is_none_or(|&(bq, _)| q > bq);
                if better {
                    best.insert(fi, (q, col));
                }
            }
        }
    }
    let mut map: Vec<(usize, usize)> = Vec::new();
    for (fi, (_, col)) in best {
        // One column, one field: the first field listed for it wins.
        if !map.iter().any(|&(c, _)| c == col) {
            map.push((col, fi));
        }
    }
    map.sort();
    map
}

fn cell_text(row: &[Cell], col: usize) -> &str {
    row.get(col).map_or("", |c| &*c.text)
}

/// A note line under the table ends it: 说明：…, 注：…, 填表说明…
fn is_note_row(cells: &[String]) -> bool {
    let first = cells.iter().find(|c| !c.is_empty());
    first.is_some_and(|c| {
        [
            "说明",
            "注",
            "备注",
            "填表说明",
            "填报说明",
            "填表人",
            "审核人",
        ]
        .iter()
        .any(|p| c.starts_with(p) && c.chars().count() > p.chars().count())
    })
}

fn is_example_or_total(cells: &[String]) -> bool {
    cells.iter().any(|c| {
        matches!(
            c.as_str(),
            "合计" | "总计" | "小计" | "共计" | "示例" | "样例" | "例" | "填写示例"
        ) || c.starts_with("例如")
            || c.starts_with("示例")
    })
}

fn find_rows(grid: &Grid, doc: &Doc, form: &Form, file: &str) -> Option<Found> {
    let def = form.def;
    let (header_row, mut map) = (0..grid.rows.len().min(HEADER_SEARCH_ROWS))
        .map(|r| (r, header_map(&grid.rows[r], form, false)))
        .filter(|(_, m)| m.len() >= MIN_HEADER_FIELDS)
        .max_by_key(|(r, m)| (m.len(), std::cmp::Reverse(*r)))?;
    let mut data_start = header_row + 1;
    // A second header row (labels split under a merged group) adds exact matches.
    if let Some(next) = grid.rows.get(header_row + 1) {
        let extra: Vec<(usize, usize)> = header_map(next, form, true)
            .into_iter()
            .filter(|&(c, f)| !map.iter().any(|&(mc, mf)| mc == c || mf == f))
            .collect();
        if !extra.is_empty() {
            map.extend(extra);
            map.sort();
            data_start += 1;
        }
    }
    let mut problems = Vec::new();
    for f in def.fields.iter().filter(|f| f.required) {
        let fi = def.fields.iter().position(|x| x.key == f.key);
        if !map.iter().any(|&(_, m)| Some(m) == fi) {
            problems.push(Problem::new(
                ProblemCode::FieldMissing,
                format!(
                    "{file}：{}中没有“{}”栏，请按附件模板填写",
                    def.name,
                    f.display_name()
                ),
            ));
        }
    }
    let unit_field = def.fields.iter().find(|f| f.is_unit);
    let line_unit = unit_field.and_then(|f| unit_line(doc, grid, header_row, f));
    let given: Vec<&str> = unit_field
        .filter(|_| line_unit.is_some())
        .map(|f| f.key.as_str())
        .into_iter()
        .collect();
    // Template notes of the header (（100字以内，方案可附后）) left in a filled cell.
    let width = map.iter().map(|&(c, _)| c + 1).max().unwrap_or(0);
    let notes: Vec<Vec<String>> = (0..width)
        .map(|c| {
            (header_row..data_start)
                .flat_map(|r| bracket_notes(cell_text(&grid.rows[r], c)))
                .collect()
        })
        .collect();
    let mut rows: Vec<BTreeMap<String, FieldValue>> = Vec::new();
    let mut text_bytes = 0usize;
    for row in grid.rows.iter().skip(data_start) {
        let cells = normalised_row(row);
        if is_note_row(&cells) {
            break;
        }
        if is_example_or_total(&cells) || header_map(row, form, true).len() >= MIN_HEADER_FIELDS {
            continue;
        }
        // A record has content beyond its 序号; bracketed template notes normalise to nothing.
        let has_content = map.iter().any(|&(col, fi)| {
            def.fields[fi].key != "seq" && !label_of(cell_text(row, col)).is_empty()
        });
        if !has_content {
            continue;
        }
        text_bytes += map
            .iter()
            .map(|&(col, _)| cell_text(row, col).len())
            .sum::<usize>();
        if text_bytes > MAX_TABLE_TEXT {
            problems.push(Problem::new(
                ProblemCode::FileUnreadable,
                format!(
                    "{file}：{}内容过多，只读取了前{}项，请精简后重新发送",
                    def.name,
                    rows.len()
                ),
            ));
            break;
        }
        let at = At {
            file,
            item: Some(rows.len() + 1),
        };
        let mut rec = BTreeMap::new();
        for &(col, fi) in &map {
            let f = &def.fields[fi];
            let text = without_notes(cell_text(row, col), &notes[col]);
            let text = if label_key(&text).is_empty() {
                ""
            } else {
                &text
            };
            rec.insert(
                f.key.clone(),
                validate::read_value(f, text, at, &mut problems),
            );
        }
        validate::check(def, &rec, &given, at, &mut problems);
        rows.push(rec);
    }
    let unit = unit_field.and_then(|f| {
        rows.first()
            .and_then(|r| r.get(&f.key))
            .map(|v| v.text.clone())
            .filter(|t| !t.is_empty())
            .or(line_unit)
    });
    Some(Found {
        score: map.len(),
        table: Table {
            form_id: def.id.clone(),
            form: def.name.clone(),
            rows: Some(rows),
            fields: None,
        },
        unit,
        problems,
    })
}

/// The bracketed notes of a header cell: `（100字以内，方案可附后）`.
fn bracket_notes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match c {
            '（' | '(' if start.is_none() => start = Some(i),
            '）' | ')' => {
                if let Some(s) = start.take() {
                    out.push(text[s..i + c.len_utf8()].to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

/// A cell's text without the header's template notes, trimmed.
fn without_notes(text: &str, notes: &[String]) -> String {
    notes
        .iter()
        .fold(text.to_owned(), |t, n| t.replace(n.as_str(), ""))
        .trim()
        .to_owned()
}

/// Template wording printed after 推荐单位： in the notices, not a unit's name.
const UNIT_PLACEHOLDERS: &[&str] = &[
    "地方科技管理部门科协省级学会单位科协",
    "各区市科技管理部门各部门",
];

/// Splits `label：value` at the first colon outside brackets
/// (实物投入情况（如：捐赠图书…） has none).
fn split_label(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '（' | '(' => depth += 1,
            '）' | ')' => depth = depth.saturating_sub(1),
            '：' | ':' if depth == 0 => return Some((&text[..i], &text[i + c.len_utf8()..])),
            _ => {}
        }
    }
    None
}

/// The value of a `label：value` text whose label names `field`.
fn inline_value(text: &str, field: &FieldDef) -> Option<String> {
    let (label, value) = split_label(text)?;
    let labels: Vec<String> = field.labels.iter().map(|l| label_key(l)).collect();
    if label_match(&label_key(label), &labels) != Some(2) {
        return None;
    }
    // "南京市科学技术局（公章）": the stamp note is not part of the name.
    let value = ["（公章）", "(公章)", "（盖章）", "(盖章)", "（章）"]
        .iter()
        .fold(value.to_owned(), |v, s| v.replace(s, ""));
    let value = value.trim().to_owned();
    let n = label_key(&value);
    (!n.is_empty() && !UNIT_PLACEHOLDERS.contains(&n.as_str())).then_some(value)
}

/// "推荐单位：X（公章）" above the header, or anywhere in the loose lines.
fn unit_line(doc: &Doc, grid: &Grid, header_row: usize, field: &FieldDef) -> Option<String> {
    grid.rows[..header_row]
        .iter()
        .flatten()
        // A merged copy says what its origin, seen first, said.
        .filter(|c| !c.covered)
        .map(|c| &*c.text)
        .chain(doc.lines.iter().map(String::as_str))
        .find_map(|t| inline_value(t, field))
}

fn find_fields(doc: &Doc, form: &Form, file: &str) -> Option<Found> {
    let def = form.def;
    let mut texts: BTreeMap<usize, String> = BTreeMap::new();
    for grid in &doc.grids {
        for row in &grid.rows {
            let cells = normalised_row(row);
            for (c, cell) in cells.iter().enumerate() {
                // A merged copy says what its origin, seen first, said.
                if !row[c].covered
                    && let Some((fi, v)) = inline_pair(&row[c].text, form)
                {
                    keep_first(&mut texts, fi, v);
                    continue;
                }
                let Some((fi, _)) = best_field(cell, form, &cells[..c]) else {
                    continue;
                };
                // The value is the next non-empty cell that is not a merged copy of
                // the label (ods merges are unknown: the covered cell reads empty).
                let value = row[c + 1..]
                    .iter()
                    .find(|v| !(v.text.trim().is_empty() || v.covered && same_text(v, &row[c])))
                    .filter(|v| best_field(&label_of(&v.text), form, &[]).is_none())
                    .map_or(String::new(), |v| v.text.to_string());
                keep_first(&mut texts, fi, value);
            }
        }
    }
    for line in &doc.lines {
        if let Some((fi, v)) = inline_pair(line, form) {
            keep_first(&mut texts, fi, v);
        }
    }
    let score = texts.len();
    if score < MIN_HEADER_FIELDS.max(def.fields.len() / 3) {
        return None;
    }
    let mut problems = Vec::new();
    let at = At { file, item: None };
    let mut fields = BTreeMap::new();
    for (fi, f) in def.fields.iter().enumerate() {
        if let Some(t) = texts.get(&fi) {
            fields.insert(f.key.clone(), validate::read_value(f, t, at, &mut problems));
        }
    }
    validate::check(def, &fields, &[], at, &mut problems);
    let unit = def
        .fields
        .iter()
        .find(|f| f.is_unit)
        .and_then(|f| fields.get(&f.key))
        .map(|v| v.text.clone())
        .filter(|t| !t.is_empty());
    Some(Found {
        score,
        table: Table {
            form_id: def.id.clone(),
            form: def.name.clone(),
            rows: None,
            fields: Some(fields),
        },
        unit,
        problems,
    })
}

/// The first non-empty value found for a field wins.
fn keep_first(texts: &mut BTreeMap<usize, String>, fi: usize, value: String) {
    let slot = texts.entry(fi).or_default();
    if slot.trim().is_empty() {
        *slot = value;
    }
}

/// A `label：value` cell or line naming one of the form's fields, with its value.
fn inline_pair(text: &str, form: &Form) -> Option<(usize, String)> {
    let (label, _) = split_label(text)?;
    let label = label_key(label);
    form.labels
        .iter()
        .position(|l| label_match(&label, l) == Some(2))
        .and_then(|i| inline_value(text, &form.def.fields[i]).map(|v| (i, v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn forms() -> Vec<FormDef> {
        Config::example(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .forms
    }

    fn grid(rows: &[&[&str]]) -> Doc {
        let mut doc = Doc::default();
        doc.grids.push(Grid {
            name: "Sheet1".into(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|t| Cell::new(*t)).collect())
                .collect(),
        });
        doc
    }

    const HEADER: &[&str] = &[
        "序 号",
        "活动名称",
        "活动简介\n（100字以内，方案可附后）",
        "举办时间、地点\n（地点精确到县级）",
        "推荐单位",
        "联系人及电话",
    ];
    const RECORD: &[&str] = &[
        "1",
        "科普日",
        "科普讲座。",
        "5月20日，南京市玄武区",
        "南京市科协",
        "王芳 13812345678",
    ];

    fn rows_of(doc: &Doc) -> Vec<BTreeMap<String, FieldValue>> {
        let forms = forms();
        find(doc, &forms[0], "t.xlsx").unwrap().table.rows.unwrap()
    }

    #[test]
    fn labels_are_normalised() {
        assert_eq!(
            label_key("举办时间、地点\n（地点精确到县级）"),
            "举办时间地点"
        );
        assert_eq!(label_key("地方／部门（盖章）："), "地方部门");
        assert_eq!(label_key("　序　号 "), "序号");
    }

    #[test]
    fn header_below_title_rows_is_found() {
        let doc = grid(&[
            &["附件1"],
            &["2025年……推荐表"],
            &["推荐单位：南京市科协（公章）"],
            HEADER,
            RECORD,
        ]);
        let found = find(&doc, &forms()[0], "t.xlsx").unwrap();
        assert_eq!(found.score, 6);
        let rows = found.table.rows.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"].text, "科普日");
        assert_eq!(found.unit.as_deref(), Some("南京市科协"));
    }

    #[test]
    fn blank_template_rows_are_not_records() {
        let doc = grid(&[
            HEADER,
            RECORD,
            &["2", "", "（100字以内，方案可附后）", "（地点精确到县级）"],
            &["3"],
            &[],
        ]);
        assert_eq!(rows_of(&doc).len(), 1);
    }

    #[test]
    fn template_notes_left_in_a_filled_cell_are_dropped() {
        let doc = grid(&[
            HEADER,
            &[
                "1",
                "科普日",
                "科普讲座。（100字以内，方案可附后）",
                "玄武区（地点精确到县级）",
                "某单位",
                "13812345678",
            ],
        ]);
        let rows = rows_of(&doc);
        assert_eq!(rows[0]["summary"].text, "科普讲座。");
        assert_eq!(rows[0]["time_place"].text, "玄武区");
    }

    #[test]
    fn example_and_total_rows_are_not_records_and_notes_end_the_table() {
        let doc = grid(&[
            HEADER,
            &["示例", "××活动", "……", "××区", "××单位", "张三 138"],
            RECORD,
            &["合计", "1项"],
            &["说明：各区推荐不超过3项。"],
            &["9", "表外的行", "不读", "玄武区", "某单位", "13812345678"],
        ]);
        assert_eq!(rows_of(&doc).len(), 1);
    }

    #[test]
    fn a_table_of_another_kind_is_not_guessed() {
        let doc = grid(&[
            &["科目编码", "科目名称", "预算数（元）"],
            &["2060101", "行政运行", "1200000"],
        ]);
        assert!(forms().iter().all(|f| find(&doc, f, "b.xlsx").is_none()));
    }

    #[test]
    fn fields_with_group_in_col_a_and_value_in_col_c_are_read() {
        let doc = grid(&[
            &["地方/部门（盖章）：南京市科协"],
            &["开展次数", "", "12"],
            &[
                "活动经费投入数量\n（单位：万元）",
                "中央财政经费投入情况",
                "1.5",
            ],
            &[
                "",
                "实物投入情况\n（如：捐赠图书、光盘、创新操作室等）",
                "无",
            ],
            &["", "其他经费情况", "0"],
            &["宣传报道情况", "参与媒体数量", "3"],
        ]);
        let found = find(&doc, &forms()[1], "s.xlsx").unwrap();
        let fields = found.table.fields.unwrap();
        assert_eq!(fields["events"].value, serde_json::json!(12));
        assert_eq!(fields["fund_central"].value, serde_json::json!(1.5));
        assert_eq!(fields["fund_in_kind"].value, serde_json::Value::Null);
        assert_eq!(fields["media_outlets"].value, serde_json::json!(3));
        assert_eq!(found.unit.as_deref(), Some("南京市科协"));
    }

    #[test]
    fn a_colon_inside_a_bracket_note_does_not_split_a_label() {
        assert_eq!(split_label("实物投入情况（如：捐赠图书）"), None);
        assert_eq!(
            split_label("地方/部门（盖章）：X"),
            Some(("地方/部门（盖章）", "X"))
        );
    }
}

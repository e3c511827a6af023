//! Status: what each unit has sent for a deadline against what the deadline
//! requires. One computation serves every place people read it, so an ack,
//! the `status` matrix, a reminder, the digest and the export say the same
//! thing about a unit: the columns it has met, those it still misses, those
//! it must redo, and every problem it has been told about. A unit is
//! complete only when every column is met by a file without problems and no
//! rule of the deadline is broken. Pure logic over what the store holds.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{DeadlineConfig, Requirement};
use crate::model::{Analysis, Problem, ProblemCode};
use crate::types::{DocForm, DocumentKind, OrgId, Sha256};

/// One column of the matrix: a requirement in one form, or in any form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub kinds: Vec<DocumentKind>,
    pub form: Option<DocForm>,
    /// Fewest different files that meet it.
    pub min_count: u32,
    /// How a unit contact reads it: 推荐表盖章扫描件, 推荐表电子版, 影像资料.
    pub label: String,
}

impl Column {
    fn of(r: &Requirement, form: Option<DocForm>) -> Self {
        let kinds = r.kinds();
        let name = r.label.clone().unwrap_or_else(|| {
            kinds
                .iter()
                .map(|k| k.label_zh())
                .collect::<Vec<_>>()
                .join("或")
        });
        Self {
            label: match form {
                Some(f) => format!("{name}{}", f.label_zh()),
                None => name,
            },
            kinds,
            form,
            min_count: r.min_count.unwrap_or(1),
        }
    }

    pub fn accepts(&self, kind: DocumentKind, form: DocForm) -> bool {
        self.kinds.contains(&kind) && self.form.is_none_or(|f| f == form)
    }
}

/// The columns a deadline requires, in config order.
pub fn columns(dl: &DeadlineConfig) -> Vec<Column> {
    let mut out = Vec::new();
    for r in &dl.requires {
        if r.forms.is_empty() {
            out.push(Column::of(r, None));
        } else {
            out.extend(r.forms.iter().map(|f| Column::of(r, Some(*f))));
        }
    }
    out
}

/// One file a unit sent for a deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct SentDoc {
    pub kind: DocumentKind,
    pub form: DocForm,
    pub sha256: Sha256,
    pub sealed: Option<bool>,
    /// Records of a `rows` form (activities recommended).
    pub items: Option<usize>,
    pub problems: Vec<Problem>,
}

/// One mail a unit sent for a deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub arrived_at: DateTime<Utc>,
    pub late: bool,
    pub documents: Vec<SentDoc>,
    /// Problems of the mail as a whole (no attachment, unreadable…).
    pub problems: Vec<Problem>,
}

impl Sent {
    /// A mail being processed now, before the store has it.
    pub fn of_analysis(a: &Analysis, now: DateTime<Utc>) -> Self {
        Self {
            arrived_at: a.arrived_at.unwrap_or(now),
            late: a.late == Some(true),
            documents: a
                .documents
                .iter()
                .map(|d| SentDoc {
                    kind: d.kind,
                    form: d.form,
                    sha256: d.sha256.clone(),
                    sealed: d.sealed,
                    items: d.table.as_ref().and_then(|t| t.row_count()),
                    problems: d.problems.clone(),
                })
                .collect(),
            problems: a.problems.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    Missing,
    /// Received in time, without problems.
    Received,
    /// Received, but only after the deadline.
    Late,
    /// Received, with problems to fix (or too few files).
    Problem,
}

impl CellState {
    /// The word a coordinator reads in the cell.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Received => "已收",
            Self::Late => "逾期",
            Self::Missing => "缺",
            Self::Problem => "需修改",
        }
    }

    /// The column is met: nothing to send or redo.
    pub fn is_met(self) -> bool {
        matches!(self, Self::Received | Self::Late)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub state: CellState,
    pub sealed: Option<bool>,
    /// Problems of the copy that counts.
    pub problems: usize,
    /// The copy that counts arrived after the deadline.
    pub late: bool,
    /// When the copy that counts arrived.
    pub arrived_at: Option<DateTime<Utc>>,
    /// Different files received for the column (photos, say).
    pub count: usize,
}

/// Where a unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    /// Nothing received.
    None,
    /// Something received; something missing or to redo.
    Partial,
    /// Every column met and no rule broken.
    Complete,
}

/// One unit's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitStatus {
    pub org: OrgId,
    pub cells: Vec<Cell>,
    pub state: UnitState,
    /// Labels of columns nothing was received for.
    pub missing: Vec<String>,
    /// Labels of columns received but to be redone.
    pub redo: Vec<String>,
    /// What the unit must fix: problems of the files that count, of its
    /// latest mail, and the deadline's rules (too many items, too few photos).
    pub problems: Vec<Problem>,
    /// Something counted arrived after the deadline.
    pub late: bool,
}

impl UnitStatus {
    pub fn is_complete(&self) -> bool {
        self.state == UnitState::Complete
    }
}

/// Where one unit stands for `dl`, from every mail it sent for it (any order).
pub fn unit_status(dl: &DeadlineConfig, org: &OrgId, sent: &[Sent]) -> UnitStatus {
    let cols = columns(dl);
    let mut sent: Vec<&Sent> = sent.iter().collect();
    sent.sort_by_key(|s| s.arrived_at);
    let mut cells: Vec<Cell> = cols.iter().map(|c| cell(c, &sent)).collect();
    let mut problems: Vec<Problem> = Vec::new();
    for (col, cell) in cols.iter().zip(&cells) {
        if cell.state == CellState::Problem
            && let Some(doc) = best(col, &sent).map(|(d, _)| d)
        {
            problems.extend(doc.problems.iter().cloned());
        }
    }
    // A mail's own problems matter while it is the unit's latest word.
    if let Some(last) = sent.last() {
        problems.extend(last.problems.iter().cloned());
    }
    for rule in rules(dl, &sent) {
        // The rule marks the columns of the kind it is about as to redo.
        for (col, cell) in cols.iter().zip(cells.iter_mut()) {
            if cell.state != CellState::Missing && col.kinds.contains(&rule.kind) {
                cell.state = CellState::Problem;
            }
        }
        problems.push(rule.problem);
    }
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert((p.code, p.message.clone())));

    let missing = labels(&cols, &cells, |c| c.state == CellState::Missing);
    let redo = labels(&cols, &cells, |c| c.state == CellState::Problem);
    let got = cells.iter().any(|c| c.state != CellState::Missing);
    let state = if !got {
        UnitState::None
    } else if missing.is_empty() && redo.is_empty() && problems.is_empty() {
        UnitState::Complete
    } else {
        UnitState::Partial
    };
    UnitStatus {
        org: org.clone(),
        late: cells
            .iter()
            .any(|c| c.state != CellState::Missing && c.late),
        cells,
        state,
        missing,
        redo,
        problems,
    }
}

fn labels(cols: &[Column], cells: &[Cell], pick: impl Fn(&Cell) -> bool) -> Vec<String> {
    cols.iter()
        .zip(cells)
        .filter(|(_, c)| pick(c))
        .map(|(col, _)| col.label.clone())
        .collect()
}

/// The copy that counts for a column: an in-time clean file beats a late
/// one, which beats one with problems; among equals the latest.
fn best<'a>(col: &Column, sent: &[&'a Sent]) -> Option<(&'a SentDoc, &'a Sent)> {
    let mut best: Option<(u8, &SentDoc, &Sent)> = None;
    for s in sent {
        for d in s.documents.iter().filter(|d| col.accepts(d.kind, d.form)) {
            let rank = match (d.problems.is_empty(), s.late) {
                (true, false) => 3,
                (true, true) => 2,
                (false, false) => 1,
                (false, true) => 0,
            };
            if best.is_none_or(|(b, _, _)| rank >= b) {
                best = Some((rank, d, s));
            }
        }
    }
    best.map(|(_, d, s)| (d, s))
}

fn cell(col: &Column, sent: &[&Sent]) -> Cell {
    let count = sent
        .iter()
        .flat_map(|s| &s.documents)
        .filter(|d| col.accepts(d.kind, d.form))
        .map(|d| &d.sha256)
        .collect::<BTreeSet<_>>()
        .len();
    let Some((doc, mail)) = best(col, sent) else {
        return Cell {
            state: CellState::Missing,
            sealed: None,
            problems: 0,
            late: false,
            arrived_at: None,
            count: 0,
        };
    };
    let sealed = sent
        .iter()
        .flat_map(|s| &s.documents)
        .filter(|d| col.accepts(d.kind, d.form))
        .filter_map(|d| d.sealed)
        .reduce(|a, b| a || b);
    let state = if !doc.problems.is_empty() || count < col.min_count as usize {
        CellState::Problem
    } else if mail.late {
        CellState::Late
    } else {
        CellState::Received
    };
    Cell {
        state,
        sealed,
        problems: doc.problems.len(),
        late: mail.late,
        arrived_at: Some(mail.arrived_at),
        count,
    }
}

struct RuleBroken {
    kind: DocumentKind,
    problem: Problem,
}

/// The deadline's rules over everything the unit sent: per-unit item limit
/// (on its latest recommendation form), photo count, and each column's
/// `min_count`.
fn rules(dl: &DeadlineConfig, sent: &[&Sent]) -> Vec<RuleBroken> {
    let mut out = Vec::new();
    if let Some(max) = dl.max_items_per_unit {
        let latest = sent
            .iter()
            .rev()
            .flat_map(|s| &s.documents)
            .find(|d| d.kind == DocumentKind::RecommendationForm && d.items.is_some());
        if let Some(items) = latest.and_then(|d| d.items)
            && items > max as usize
        {
            out.push(RuleBroken {
                kind: DocumentKind::RecommendationForm,
                problem: Problem::new(
                    ProblemCode::TooManyItems,
                    format!("推荐表中共{items}项活动，每个单位最多推荐{max}项，请删减后重新发送。"),
                ),
            });
        }
    }
    let distinct = |kinds: &[DocumentKind]| {
        sent.iter()
            .flat_map(|s| &s.documents)
            .filter(|d| kinds.contains(&d.kind))
            .map(|d| &d.sha256)
            .collect::<BTreeSet<_>>()
            .len()
    };
    if let Some(rule) = &dl.photos
        && rule.min_count > 0
    {
        let n = distinct(&[DocumentKind::Photo]);
        if n > 0 && n < rule.min_count as usize {
            out.push(RuleBroken {
                kind: DocumentKind::Photo,
                problem: Problem::new(
                    ProblemCode::TooFewPhotos,
                    format!(
                        "共收到活动照片{n}张，要求不少于{}张，请补充后发送。",
                        rule.min_count
                    ),
                ),
            });
        }
    }
    for col in columns(dl).iter().filter(|c| c.min_count > 1) {
        let n = distinct(&col.kinds);
        if n > 0 && n < col.min_count as usize {
            out.push(RuleBroken {
                kind: col.kinds[0],
                problem: Problem::new(
                    ProblemCode::TooFewPhotos,
                    format!(
                        "{}共收到{n}个文件，要求不少于{}个，请补充后发送。",
                        col.label, col.min_count
                    ),
                ),
            });
        }
    }
    out
}

/// A deadline's whole matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadlineStatus {
    pub columns: Vec<Column>,
    pub units: Vec<UnitStatus>,
    pub counts: Counts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub orgs: usize,
    pub complete: usize,
    pub partial: usize,
    pub none: usize,
    pub late: usize,
}

/// Every addressed unit's row for `dl`, in the order given; `sent` pairs a
/// unit with one of its mails.
pub fn deadline_status<'a>(
    dl: &DeadlineConfig,
    orgs: impl IntoIterator<Item = &'a OrgId>,
    sent: &[(OrgId, Sent)],
) -> DeadlineStatus {
    let mut counts = Counts::default();
    let units: Vec<UnitStatus> = orgs
        .into_iter()
        .map(|org| {
            let mine: Vec<Sent> = sent
                .iter()
                .filter(|(o, _)| o == org)
                .map(|(_, s)| s.clone())
                .collect();
            let u = unit_status(dl, org, &mine);
            counts.orgs += 1;
            match u.state {
                UnitState::Complete => counts.complete += 1,
                UnitState::Partial => counts.partial += 1,
                UnitState::None => counts.none += 1,
            }
            if u.late {
                counts.late += 1;
            }
            u
        })
        .collect();
    DeadlineStatus {
        columns: columns(dl),
        units,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, PhotoRule};
    use std::path::Path;

    fn deadline(i: usize) -> DeadlineConfig {
        let c = Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        c.campaigns[0].deadlines[i].clone()
    }

    fn at(day: u32) -> DateTime<Utc> {
        format!("2025-05-{day:02}T02:00:00Z").parse().unwrap()
    }

    fn doc(kind: DocumentKind, form: DocForm, tag: &str, problems: usize) -> SentDoc {
        SentDoc {
            kind,
            form,
            sha256: Sha256::of(tag.as_bytes()),
            sealed: None,
            items: None,
            problems: (0..problems)
                .map(|i| Problem::new(ProblemCode::SummaryTooLong, format!("问题{i}")))
                .collect(),
        }
    }

    fn mail(day: u32, late: bool, documents: Vec<SentDoc>) -> Sent {
        Sent {
            arrived_at: at(day),
            late,
            documents,
            problems: Vec::new(),
        }
    }

    const RF: DocumentKind = DocumentKind::RecommendationForm;
    const E: DocForm = DocForm::Electronic;
    const S: DocForm = DocForm::Scan;

    fn org() -> OrgId {
        "nj-kjj".into()
    }

    #[test]
    fn scan_and_electronic_are_separate_columns() {
        let labels: Vec<String> = columns(&deadline(0)).into_iter().map(|c| c.label).collect();
        assert_eq!(labels, ["推荐表盖章扫描件", "推荐表电子版"]);
    }

    #[test]
    fn missing_lists_what_nothing_was_received_for() {
        let u = unit_status(
            &deadline(0),
            &org(),
            &[mail(5, false, vec![doc(RF, E, "e", 0)])],
        );
        assert_eq!(u.missing, ["推荐表盖章扫描件"]);
        assert_eq!(u.state, UnitState::Partial);
        let none = unit_status(&deadline(0), &org(), &[]);
        assert_eq!((none.missing.len(), none.state), (2, UnitState::None));
    }

    #[test]
    fn a_unit_that_sent_only_the_scan_is_partial() {
        let u = unit_status(
            &deadline(0),
            &org(),
            &[mail(5, false, vec![doc(RF, S, "s", 0)])],
        );
        assert_eq!(u.state, UnitState::Partial);
    }

    #[test]
    fn a_clean_resend_beats_an_earlier_one_with_problems() {
        let u = unit_status(
            &deadline(0),
            &org(),
            &[
                mail(5, false, vec![doc(RF, E, "v1", 2), doc(RF, S, "s", 0)]),
                mail(7, true, vec![doc(RF, E, "v2", 0)]),
            ],
        );
        assert_eq!(u.cells[1].state, CellState::Late);
        assert!(u.problems.is_empty(), "{:?}", u.problems);
        assert_eq!(u.state, UnitState::Complete);
    }

    #[test]
    fn a_file_to_fix_is_never_complete() {
        let u = unit_status(
            &deadline(0),
            &org(),
            &[mail(5, false, vec![doc(RF, E, "e", 1), doc(RF, S, "s", 0)])],
        );
        assert!(u.missing.is_empty());
        assert_eq!(u.redo, ["推荐表电子版"]);
        assert_eq!(u.problems.len(), 1);
        assert_eq!(u.state, UnitState::Partial);
    }

    #[test]
    fn too_many_items_on_the_latest_form_needs_a_redo() {
        let mut dl = deadline(0);
        dl.max_items_per_unit = Some(3);
        let mut e = doc(RF, E, "e", 0);
        e.items = Some(4);
        let u = unit_status(&dl, &org(), &[mail(5, false, vec![e, doc(RF, S, "s", 0)])]);
        assert_eq!(u.redo, ["推荐表盖章扫描件", "推荐表电子版"]);
        assert_eq!(u.problems[0].code, ProblemCode::TooManyItems);
        assert_eq!(u.state, UnitState::Partial);
        let mut fixed = doc(RF, E, "e2", 0);
        fixed.items = Some(3);
        let mut e = doc(RF, E, "e", 0);
        e.items = Some(4);
        let u = unit_status(
            &dl,
            &org(),
            &[
                mail(5, false, vec![e, doc(RF, S, "s", 0)]),
                mail(6, false, vec![fixed]),
            ],
        );
        assert_eq!(u.state, UnitState::Complete, "{:?}", u.problems);
    }

    #[test]
    fn photos_are_counted_across_mails_without_double_counting() {
        let mut dl = deadline(1);
        dl.photos = Some(PhotoRule {
            min_count: 5,
            min_bytes: None,
            max_bytes: None,
            formats: Vec::new(),
        });
        let p = |t: &str| doc(DocumentKind::Photo, DocForm::Media, t, 0);
        let first = mail(5, false, vec![p("1"), p("2"), p("3")]);
        let u = unit_status(&dl, &org(), std::slice::from_ref(&first));
        assert!(
            u.problems.iter().any(|p| p.message.contains("3张")),
            "{:?}",
            u.problems
        );
        let again = mail(6, false, vec![p("3"), p("4")]);
        let u = unit_status(&dl, &org(), &[first.clone(), again]);
        assert!(
            u.problems.iter().any(|p| p.message.contains("4张")),
            "{:?}",
            u.problems
        );
        let more = mail(7, false, vec![p("4"), p("5")]);
        let u = unit_status(&dl, &org(), &[first, more]);
        assert!(
            u.problems
                .iter()
                .all(|p| p.code != ProblemCode::TooFewPhotos)
        );
    }

    #[test]
    fn the_latest_mail_without_attachment_is_a_problem_until_something_follows() {
        let mut m = mail(5, false, vec![]);
        m.problems
            .push(Problem::new(ProblemCode::NoAttachment, "没有附件"));
        let u = unit_status(&deadline(0), &org(), std::slice::from_ref(&m));
        assert_eq!((u.state, u.problems.len()), (UnitState::None, 1));
        let later = mail(6, false, vec![doc(RF, E, "e", 0), doc(RF, S, "s", 0)]);
        let u = unit_status(&deadline(0), &org(), &[m, later]);
        assert_eq!(u.state, UnitState::Complete);
    }

    #[test]
    fn the_matrix_counts_each_state() {
        let a: OrgId = "a".into();
        let b: OrgId = "b".into();
        let c: OrgId = "c".into();
        let sent = vec![
            (
                a.clone(),
                mail(5, false, vec![doc(RF, E, "1", 0), doc(RF, S, "2", 0)]),
            ),
            (b.clone(), mail(7, true, vec![doc(RF, E, "3", 0)])),
        ];
        let m = deadline_status(&deadline(0), [&a, &b, &c], &sent);
        assert_eq!(
            m.counts,
            Counts {
                orgs: 3,
                complete: 1,
                partial: 1,
                none: 1,
                late: 1
            }
        );
    }
}

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

use crate::config::{CampaignConfig, DeadlineConfig, Requirement};
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
    /// Words one of which a file's path must have (`name_has`); empty: any.
    pub name_has: Vec<String>,
    /// Words of other requirements of the same kind: files with them are
    /// theirs (a 线上 photo is not a 现场 one).
    pub name_not: Vec<String>,
}

impl Column {
    fn of(r: &Requirement, form: Option<DocForm>, name_not: Vec<String>) -> Self {
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
            name_has: r.name_has.clone(),
            name_not,
        }
    }

    /// `path` is where the file was: its name, inside a zip its folders too.
    pub fn accepts(&self, kind: DocumentKind, form: DocForm, path: &str) -> bool {
        self.kinds.contains(&kind)
            && self.form.is_none_or(|f| f == form)
            && (self.name_has.is_empty() || self.name_has.iter().any(|w| path.contains(w.as_str())))
            && !self.name_not.iter().any(|w| path.contains(w.as_str()))
    }

    fn takes(&self, d: &SentDoc) -> bool {
        self.accepts(d.kind, d.form, &d.path)
    }

    /// Files add up (photos, videos, media coverage): each is an item of
    /// its own. Otherwise a new file is a new version of the one document.
    pub fn collects(&self) -> bool {
        self.kinds.iter().all(|k| {
            matches!(
                k,
                DocumentKind::Photo | DocumentKind::Video | DocumentKind::MediaCoverage
            )
        })
    }
}

/// The columns a deadline requires, in config order.
pub fn columns(dl: &DeadlineConfig) -> Vec<Column> {
    let mut out = Vec::new();
    for r in &dl.requires {
        let name_not: Vec<String> = if r.name_has.is_empty() {
            dl.requires
                .iter()
                .filter(|o| r.kinds().iter().any(|k| o.accepts(*k)))
                .flat_map(|o| o.name_has.iter().cloned())
                .collect()
        } else {
            Vec::new()
        };
        if r.forms.is_empty() {
            out.push(Column::of(r, None, name_not));
        } else {
            out.extend(
                r.forms
                    .iter()
                    .map(|f| Column::of(r, Some(*f), name_not.clone())),
            );
        }
    }
    out
}

/// The notice asks for `kind` as a stamped scan (盖章扫描件) at any of its
/// deadlines: only then is a scan without a seal something to fix. A 推荐表
/// scan sent with the summary is still the stamped scan the notice wants.
/// Without a known campaign, the forms are assumed stamped, as most notices
/// ask.
pub fn wants_scan(campaign: Option<&CampaignConfig>, kind: DocumentKind) -> bool {
    match campaign {
        Some(c) => c.deadlines.iter().any(|dl| {
            dl.requires
                .iter()
                .any(|r| r.accepts(kind) && r.forms.contains(&DocForm::Scan))
        }),
        None => matches!(
            kind,
            DocumentKind::RecommendationForm | DocumentKind::StatisticsForm
        ),
    }
}

/// One file a unit sent for a deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct SentDoc {
    /// Where the file was (name, zip folders): what `name_has` reads.
    pub path: String,
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
                    path: d.path.clone(),
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
    /// What is still to send: the labels of columns nothing was received
    /// for, and of those that need more files, with how many
    /// (`活动照片3张`).
    pub missing: Vec<String>,
    /// Labels of columns received but to be sent again, fixed.
    pub redo: Vec<String>,
    /// What the unit must fix or add: problems of the files that count, of
    /// its latest mail, and the deadline's rules (too many items, too few
    /// photos).
    pub problems: Vec<Problem>,
    /// Something counted arrived after the deadline.
    pub late: bool,
}

impl UnitStatus {
    pub fn is_complete(&self) -> bool {
        self.state == UnitState::Complete
    }
}

/// What a column still needs from the unit.
#[derive(Debug, Clone, PartialEq)]
enum Need {
    Nothing,
    /// Files to send: none yet, or `n` more good ones.
    Send(Option<(usize, &'static str)>),
    /// Files sent that are to be sent again, fixed.
    Fix,
}

/// One column's cell, what the unit was told about it, and what it needs.
struct Verdict {
    cell: Cell,
    told: Vec<Problem>,
    need: Need,
}

/// Where one unit stands for `dl`, from every mail it sent for it (any
/// order; of two that arrived at the same time, the one given last counts
/// as the later).
pub fn unit_status<'a>(
    dl: &DeadlineConfig,
    org: &OrgId,
    sent: impl IntoIterator<Item = &'a Sent>,
) -> UnitStatus {
    let cols = columns(dl);
    let mut sent: Vec<&Sent> = sent.into_iter().collect();
    sent.sort_by_key(|s| s.arrived_at);
    let mut verdicts: Vec<Verdict> = cols
        .iter()
        .map(|col| {
            if col.collects() {
                collection_cell(col, &sent)
            } else {
                document_cell(col, &sent)
            }
        })
        .collect();
    let mut problems: Vec<Problem> = verdicts.iter().flat_map(|v| v.told.clone()).collect();
    // A mail's own problems, and those of its files that fill no column
    // (an archive to resend as .zip, a file that could not be read), matter
    // while it is the unit's latest word.
    if let Some(last) = sent.last() {
        problems.extend(last.problems.iter().cloned());
        problems.extend(
            last.documents
                .iter()
                .filter(|d| !cols.iter().any(|c| c.takes(d)))
                .flat_map(|d| d.problems.iter().cloned()),
        );
    }
    for rule in rules(dl, &sent) {
        // The rule holds up the columns of the kind it is about.
        for (col, v) in cols.iter().zip(verdicts.iter_mut()) {
            if v.cell.state != CellState::Missing && col.kinds.contains(&rule.kind) {
                v.cell.state = CellState::Problem;
                if v.need == Need::Nothing {
                    v.need = rule.need.clone();
                }
            }
        }
        problems.push(rule.problem);
    }
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert((p.code, p.message.clone())));

    let mut missing = Vec::new();
    let mut redo = Vec::new();
    for (col, v) in cols.iter().zip(&verdicts) {
        match v.need {
            Need::Nothing => {}
            Need::Send(None) => missing.push(col.label.clone()),
            Need::Send(Some((n, unit))) => missing.push(format!("{}{n}{unit}", col.label)),
            Need::Fix => redo.push(col.label.clone()),
        }
    }
    let cells: Vec<Cell> = verdicts.into_iter().map(|v| v.cell).collect();
    // Any file counts as something received: a unit that sent only the scan,
    // or only a file no column takes, has begun (部分), not 未报.
    let got = cells.iter().any(|c| c.state != CellState::Missing)
        || sent.iter().any(|s| !s.documents.is_empty());
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

fn missing_cell() -> Verdict {
    Verdict {
        cell: Cell {
            state: CellState::Missing,
            sealed: None,
            problems: 0,
            late: false,
            arrived_at: None,
            count: 0,
        },
        told: Vec::new(),
        need: Need::Send(None),
    }
}

/// The copy that counts for a column: an in-time clean file beats a late
/// one, which beats one with problems; among equals the latest.
fn best<'a>(col: &Column, sent: &[&'a Sent]) -> Option<(&'a SentDoc, &'a Sent)> {
    let mut best: Option<(u8, &SentDoc, &Sent)> = None;
    for s in sent {
        for d in s.documents.iter().filter(|d| col.takes(d)) {
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

/// A document column (推荐表电子版): each file is a version of the one
/// document, and the best copy counts.
fn document_cell(col: &Column, sent: &[&Sent]) -> Verdict {
    let count = sent
        .iter()
        .flat_map(|s| &s.documents)
        .filter(|d| col.takes(d))
        .map(|d| &d.sha256)
        .collect::<BTreeSet<_>>()
        .len();
    let Some((doc, mail)) = best(col, sent) else {
        return missing_cell();
    };
    let sealed = sent
        .iter()
        .flat_map(|s| &s.documents)
        .filter(|d| col.takes(d))
        .filter_map(|d| d.sealed)
        .reduce(|a, b| a || b);
    let mut told = doc.problems.clone();
    let need = if !doc.problems.is_empty() {
        Need::Fix
    } else if count < col.min_count as usize {
        told.push(too_few(col, count));
        Need::Send(Some((col.min_count as usize - count, "个")))
    } else {
        Need::Nothing
    };
    let state = match (&need, mail.late) {
        (Need::Nothing, false) => CellState::Received,
        (Need::Nothing, true) => CellState::Late,
        _ => CellState::Problem,
    };
    Verdict {
        cell: Cell {
            state,
            sealed,
            problems: doc.problems.len(),
            late: mail.late,
            arrived_at: Some(mail.arrived_at),
            count,
        },
        told,
        need,
    }
}

/// A collection column (photos, videos, coverage): files add up. Only files
/// without problems count towards `min_count` (附件3: 符合要求的照片), each
/// once however often it came. The unit's latest mail with files for the
/// column is its latest word on them: the problems of its files stay to fix
/// until a later mail brings files again.
fn collection_cell(col: &Column, sent: &[&Sent]) -> Verdict {
    let mine: Vec<(&Sent, &SentDoc)> = sent
        .iter()
        .flat_map(|s| {
            s.documents
                .iter()
                .filter(|d| col.takes(d))
                .map(move |d| (*s, d))
        })
        .collect();
    let Some(&(latest, _)) = mine.last() else {
        return missing_cell();
    };
    let min = col.min_count as usize;
    let mut good = BTreeSet::new();
    // The mail that brought the count to `min_count`: when the column was met.
    let mut met_by: Option<&Sent> = None;
    for (s, d) in &mine {
        if d.problems.is_empty() && good.insert(&d.sha256) && good.len() == min {
            met_by = Some(*s);
        }
    }
    let mut told: Vec<Problem> = mine
        .iter()
        .filter(|(s, _)| std::ptr::eq(*s, latest))
        .flat_map(|(_, d)| d.problems.iter().cloned())
        .collect();
    let open = told.len();
    let need = if open > 0 {
        Need::Fix
    } else if good.len() < min {
        told.push(too_few(col, good.len()));
        Need::Send(Some((min - good.len(), unit_of(col))))
    } else {
        Need::Nothing
    };
    let mail = met_by.unwrap_or(latest);
    let state = match (&need, mail.late) {
        (Need::Nothing, false) => CellState::Received,
        (Need::Nothing, true) => CellState::Late,
        _ => CellState::Problem,
    };
    Verdict {
        cell: Cell {
            state,
            sealed: None,
            problems: open,
            late: mail.late,
            arrived_at: Some(mail.arrived_at),
            count: good.len(),
        },
        told,
        need,
    }
}

/// How a column's files are counted: 张 for photos, 个 for anything else.
fn unit_of(col: &Column) -> &'static str {
    if col.kinds.iter().all(|k| *k == DocumentKind::Photo) {
        "张"
    } else {
        "个"
    }
}

/// Too few good files for a column that asks for several.
fn too_few(col: &Column, n: usize) -> Problem {
    let unit = unit_of(col);
    let what = if unit == "张" { "照片" } else { "文件" };
    Problem::new(
        ProblemCode::TooFewPhotos,
        format!(
            "{}：符合要求的{what}共{n}{unit}，要求不少于{}{unit}，请补充后发送。",
            col.label, col.min_count
        ),
    )
}

struct RuleBroken {
    kind: DocumentKind,
    need: Need,
    problem: Problem,
}

/// The deadline's rules over everything the unit sent: the per-unit item
/// limit (on its latest recommendation form) and the photo count.
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
                need: Need::Fix,
                problem: Problem::new(
                    ProblemCode::TooManyItems,
                    format!("推荐表中共{items}项活动，每个单位最多推荐{max}项，请删减后重新发送。"),
                ),
            });
        }
    }
    if let Some(rule) = &dl.photos
        && rule.min_count > 0
    {
        let photos = || {
            sent.iter()
                .flat_map(|s| &s.documents)
                .filter(|d| d.kind == DocumentKind::Photo)
        };
        let good = photos()
            .filter(|d| d.problems.is_empty())
            .map(|d| &d.sha256)
            .collect::<BTreeSet<_>>()
            .len();
        let min = rule.min_count as usize;
        if photos().next().is_some() && good < min {
            out.push(RuleBroken {
                kind: DocumentKind::Photo,
                need: Need::Send(Some((min - good, "张"))),
                problem: Problem::new(
                    ProblemCode::TooFewPhotos,
                    format!("符合要求的活动照片共{good}张，要求不少于{min}张，请补充后发送。"),
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
            path: format!("{tag}.jpg"),
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

    fn photo_deadline(min_count: u32) -> DeadlineConfig {
        let mut dl = deadline(1);
        dl.requires = vec![crate::config::Requirement {
            kind: Some(DocumentKind::Photo),
            any_of: Vec::new(),
            forms: Vec::new(),
            min_count: Some(min_count),
            label: Some("活动照片".into()),
            name_has: Vec::new(),
        }];
        dl
    }

    fn photo(tag: &str, problems: usize) -> SentDoc {
        doc(DocumentKind::Photo, DocForm::Media, tag, problems)
    }

    #[test]
    fn photos_named_online_count_for_their_column_and_not_for_the_other() {
        // 青岛 附件3: 现场照片 at least 2 here, 线上活动照片 at least 1.
        let mut dl = photo_deadline(2);
        dl.requires[0].label = Some("现场照片".into());
        let mut online = dl.requires[0].clone();
        online.label = Some("线上活动照片".into());
        online.min_count = Some(1);
        online.name_has = vec!["线上".into()];
        dl.requires.push(online);
        let first = mail(5, false, vec![photo("现场1", 0), photo("线上1", 0)]);
        let u = unit_status(&dl, &org(), std::slice::from_ref(&first));
        assert_eq!(u.missing, ["现场照片1张"]);
        assert_eq!((u.cells[0].count, u.cells[1].count), (1, 1));
        assert_eq!(u.cells[1].state, CellState::Received);
        let more = mail(6, false, vec![photo("活动/现场2", 0)]);
        let u = unit_status(&dl, &org(), &[first, more]);
        assert!(u.is_complete(), "{u:?}");
    }

    #[test]
    fn a_photo_to_fix_holds_the_unit_until_a_later_mail_brings_photos_again() {
        let dl = photo_deadline(3);
        let first = mail(5, false, vec![photo("1", 0), photo("2", 0), photo("3", 1)]);
        let u = unit_status(&dl, &org(), std::slice::from_ref(&first));
        assert_eq!(u.redo, ["活动照片"]);
        assert!(u.missing.is_empty(), "{:?}", u.missing);
        assert_eq!(u.problems.len(), 1, "{:?}", u.problems);
        assert_eq!(u.cells[0].state, CellState::Problem);
        let again = mail(6, false, vec![photo("4", 0)]);
        let u = unit_status(&dl, &org(), &[first, again]);
        assert_eq!(u.state, UnitState::Complete, "{:?}", u.problems);
        assert_eq!(u.cells[0].count, 3);
    }

    #[test]
    fn only_good_photos_count_and_the_unit_hears_how_many_more_to_send() {
        let dl = photo_deadline(3);
        let u = unit_status(
            &dl,
            &org(),
            &[
                mail(5, false, vec![photo("1", 0), photo("2", 1)]),
                mail(6, false, vec![photo("1", 0)]),
            ],
        );
        assert_eq!(u.missing, ["活动照片2张"]);
        assert!(u.redo.is_empty());
        assert_eq!(
            u.problems[0].message,
            "活动照片：符合要求的照片共1张，要求不少于3张，请补充后发送。"
        );
        assert_eq!(u.state, UnitState::Partial);
    }

    #[test]
    fn a_collection_is_late_when_the_file_that_completes_it_came_late() {
        let dl = photo_deadline(2);
        let u = unit_status(
            &dl,
            &org(),
            &[
                mail(5, false, vec![photo("1", 0)]),
                mail(8, true, vec![photo("2", 0)]),
            ],
        );
        assert_eq!(u.cells[0].state, CellState::Late);
        assert_eq!(u.cells[0].arrived_at, Some(at(8)));
        assert_eq!(u.state, UnitState::Complete);
    }

    #[test]
    fn a_file_no_column_takes_is_said_while_its_mail_is_the_latest() {
        let rar = doc(DocumentKind::Other, DocForm::Other, "rar", 1);
        let u = unit_status(
            &deadline(0),
            &org(),
            &[mail(
                5,
                false,
                vec![doc(RF, E, "e", 0), doc(RF, S, "s", 0), rar],
            )],
        );
        assert_eq!(u.problems.len(), 1);
        assert_eq!(u.state, UnitState::Partial);
    }

    #[test]
    fn a_unit_whose_only_file_fills_no_column_has_begun() {
        let mut dl = deadline(0);
        dl.requires[0].forms = vec![DocForm::Electronic];
        let u = unit_status(&dl, &org(), &[mail(5, false, vec![doc(RF, S, "s", 0)])]);
        assert_eq!(u.missing, ["推荐表电子版"]);
        assert_eq!(u.state, UnitState::Partial);
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

//! Status: what a unit has sent for a deadline against what the deadline
//! requires — the matrix of `baosong status`, the digest, the "still missing"
//! lines of acks and the reminder rounds. Pure logic over what the store holds.

use serde::Serialize;

use crate::config::DeadlineConfig;
use crate::types::{DocForm, DocumentKind};

/// One column of the matrix: a document kind in one form, or in any form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    pub kind: DocumentKind,
    pub form: Option<DocForm>,
}

impl Column {
    /// How a unit contact reads it: 推荐表盖章扫描件, 推荐表电子版, 总结报告.
    pub fn label(&self) -> String {
        match self.form {
            Some(f) => format!("{}{}", self.kind.label_zh(), f.label_zh()),
            None => self.kind.label_zh().to_owned(),
        }
    }

    fn accepts(&self, kind: DocumentKind, form: DocForm) -> bool {
        self.kind == kind && self.form.is_none_or(|f| f == form)
    }
}

/// The columns a deadline requires, in config order.
pub fn columns(dl: &DeadlineConfig) -> Vec<Column> {
    let mut out = Vec::new();
    for r in &dl.requires {
        if r.forms.is_empty() {
            out.push(Column {
                kind: r.kind,
                form: None,
            });
        } else {
            out.extend(r.forms.iter().map(|f| Column {
                kind: r.kind,
                form: Some(*f),
            }));
        }
    }
    out
}

/// One document a unit has sent for a deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub kind: DocumentKind,
    pub form: DocForm,
    pub late: bool,
    pub sealed: Option<bool>,
    pub problems: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    Missing,
    /// Received in time, without problems.
    Received,
    /// Received, but only after the deadline.
    Late,
    /// Received, with problems to fix.
    Problem,
}

impl CellState {
    /// The word a coordinator reads in the cell.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Received => "已收",
            Self::Late => "逾期",
            Self::Missing => "缺",
            Self::Problem => "有问题",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub state: CellState,
    pub sealed: Option<bool>,
    pub problems: usize,
    /// The copy that counts arrived after the deadline.
    pub late: bool,
}

/// The best a unit has done for one column: an in-time clean document beats a
/// late one, which beats one with problems.
pub fn cell(col: &Column, received: &[Received]) -> Cell {
    let mut best: Option<(u8, &Received)> = None;
    for r in received.iter().filter(|r| col.accepts(r.kind, r.form)) {
        let rank = match (r.problems == 0, r.late) {
            (true, false) => 3,
            (true, true) => 2,
            (false, false) => 1,
            (false, true) => 0,
        };
        if best.is_none_or(|(b, _)| rank > b) {
            best = Some((rank, r));
        }
    }
    match best {
        None => Cell {
            state: CellState::Missing,
            sealed: None,
            problems: 0,
            late: false,
        },
        Some((rank, r)) => Cell {
            state: match rank {
                3 => CellState::Received,
                2 => CellState::Late,
                _ => CellState::Problem,
            },
            sealed: r.sealed,
            problems: r.problems,
            late: r.late,
        },
    }
}

/// Labels of the columns nothing was received for.
pub fn missing(dl: &DeadlineConfig, received: &[Received]) -> Vec<String> {
    columns(dl)
        .iter()
        .filter(|c| cell(c, received).state == CellState::Missing)
        .map(Column::label)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn recommend() -> DeadlineConfig {
        let c = Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        c.campaigns[0].deadlines[0].clone()
    }

    fn got(kind: DocumentKind, form: DocForm, late: bool, problems: usize) -> Received {
        Received {
            kind,
            form,
            late,
            sealed: None,
            problems,
        }
    }

    #[test]
    fn scan_and_electronic_are_separate_columns() {
        let cols = columns(&recommend());
        let labels: Vec<String> = cols.iter().map(Column::label).collect();
        assert_eq!(labels, ["推荐表盖章扫描件", "推荐表电子版"]);
    }

    #[test]
    fn missing_lists_what_nothing_was_received_for() {
        let r = [got(
            DocumentKind::RecommendationForm,
            DocForm::Electronic,
            false,
            0,
        )];
        assert_eq!(missing(&recommend(), &r), ["推荐表盖章扫描件"]);
        assert!(missing(&recommend(), &[]).len() == 2);
    }

    #[test]
    fn a_clean_resend_beats_an_earlier_one_with_problems() {
        let col = columns(&recommend())[1];
        let r = [
            got(
                DocumentKind::RecommendationForm,
                DocForm::Electronic,
                false,
                2,
            ),
            got(
                DocumentKind::RecommendationForm,
                DocForm::Electronic,
                true,
                0,
            ),
        ];
        assert_eq!(cell(&col, &r).state, CellState::Late);
    }
}

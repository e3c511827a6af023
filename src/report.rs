//! The dry-run report of `baosong ingest --json`: one JSON object per message,
//! keys exactly as DESIGN.md shows them, every key present.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::Analysis;
use crate::model::FieldValue;
use crate::model::Problem;

#[derive(Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub message: MessageReport,
    pub auto_generated: bool,
    pub organisation: OrganisationReport,
    pub campaign: Option<String>,
    pub deadline: Option<String>,
    pub late: Option<bool>,
    pub documents: Vec<DocumentReport>,
    pub problems: Vec<Problem>,
    pub ack: AckReport,
}

#[derive(Debug, Serialize)]
pub struct MessageReport {
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct OrganisationReport {
    pub id: Option<String>,
    pub name: Option<String>,
    pub matched_by: &'static str,
    pub evidence: String,
}

#[derive(Debug, Serialize)]
pub struct DocumentReport {
    pub filename: String,
    pub path: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub kind: &'static str,
    pub form: &'static str,
    pub sealed: Option<bool>,
    pub seal_confidence: Option<f32>,
    pub table: Option<TableReport>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub form: String,
    /// Rows layout: canonical key → the text as written.
    pub rows: Option<Vec<BTreeMap<String, String>>>,
    /// Fields layout: canonical key → typed value and text.
    pub fields: Option<BTreeMap<String, FieldValue>>,
}

#[derive(Debug, Serialize)]
pub struct AckReport {
    pub send: bool,
    pub to: Option<String>,
    pub reason: String,
}

impl Report {
    pub fn new(source: String, a: &Analysis) -> Self {
        let h = &a.header;
        Report {
            source,
            message: MessageReport {
                message_id: h.message_id.clone(),
                from: h.from.clone(),
                from_name: h.from_name.clone(),
                subject: h.subject.clone(),
                date: h.date.map(|d| d.to_rfc3339()),
                sha256: a.sha256.to_string(),
            },
            auto_generated: a.auto_generated.is_some(),
            organisation: OrganisationReport {
                id: a.organisation.id.as_ref().map(ToString::to_string),
                name: a.organisation.name.clone(),
                matched_by: a.organisation.matched_by.as_str(),
                evidence: a.organisation.evidence.clone(),
            },
            campaign: a.campaign.as_ref().map(ToString::to_string),
            deadline: a.deadline.as_ref().map(ToString::to_string),
            late: a.late,
            documents: a
                .documents
                .iter()
                .map(|d| DocumentReport {
                    filename: d.filename.clone(),
                    path: d.path.clone(),
                    media_type: d.media_type.clone(),
                    size: d.size,
                    sha256: d.sha256.to_string(),
                    kind: d.kind.as_str(),
                    form: d.form.as_str(),
                    sealed: d.sealed,
                    seal_confidence: d.seal_confidence.map(|c| (c * 100.0).round() / 100.0),
                    table: d.table.as_ref().map(|t| TableReport {
                        form: t.form.clone(),
                        rows: t.rows.as_ref().map(|rows| {
                            rows.iter()
                                .map(|r| {
                                    r.iter().map(|(k, v)| (k.clone(), v.text.clone())).collect()
                                })
                                .collect()
                        }),
                        fields: t.fields.clone(),
                    }),
                    problems: d.problems.clone(),
                })
                .collect(),
            problems: a.problems.clone(),
            ack: AckReport {
                send: a.ack.send,
                to: a.ack.to.as_ref().map(|t| t.as_str().to_owned()),
                reason: a.ack.reason.clone(),
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A few lines a person can read.
    /// Adds what the deadline's rules say about this mail taken alone
    /// (items over the limit, too few photos), unless already said.
    pub fn with_rule_problems(mut self, problems: &[Problem]) -> Self {
        for p in problems {
            let said =
                self.problems.contains(p) || self.documents.iter().any(|d| d.problems.contains(p));
            if !said {
                self.problems.push(p.clone());
            }
        }
        self
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let m = &self.message;
        let _ = writeln!(s, "== {}", self.source);
        let _ = writeln!(
            s,
            "   from {} <{}>  {}",
            m.from_name.as_deref().unwrap_or(""),
            m.from.as_deref().unwrap_or("?"),
            m.date.as_deref().unwrap_or("(no date)")
        );
        let _ = writeln!(s, "   subject: {}", m.subject.as_deref().unwrap_or(""));
        let o = &self.organisation;
        let _ = writeln!(
            s,
            "   unit: {} ({}; {})",
            o.name.as_deref().unwrap_or("unknown"),
            o.matched_by,
            o.evidence
        );
        let _ = writeln!(
            s,
            "   campaign {} / deadline {}{}{}",
            self.campaign.as_deref().unwrap_or("?"),
            self.deadline.as_deref().unwrap_or("?"),
            if self.late == Some(true) {
                "  LATE"
            } else {
                ""
            },
            if self.auto_generated {
                "  (auto-generated)"
            } else {
                ""
            },
        );
        for d in &self.documents {
            let table = match &d.table {
                Some(t) => match (&t.rows, &t.fields) {
                    (Some(r), _) => format!(", {} rows of {}", r.len(), t.form),
                    (_, Some(f)) => format!(", {} fields of {}", f.len(), t.form),
                    _ => String::new(),
                },
                None => String::new(),
            };
            let seal = match d.sealed {
                Some(true) => ", sealed",
                Some(false) => ", no seal",
                None => "",
            };
            let _ = writeln!(s, "   - {} [{} / {}{seal}{table}]", d.path, d.kind, d.form);
            for p in &d.problems {
                let _ = writeln!(s, "       ! {}", p.message);
            }
        }
        for p in &self.problems {
            let _ = writeln!(s, "   ! {}", p.message);
        }
        let _ = writeln!(
            s,
            "   ack: {} ({})",
            if self.ack.send {
                self.ack.to.as_deref().unwrap_or("?")
            } else {
                "none"
            },
            self.ack.reason
        );
        crate::fold::printable(&s)
    }
}

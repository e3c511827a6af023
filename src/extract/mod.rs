//! Extract: what is inside one file: the form's table, a red seal on a scan,
//! media facts. Parsing only: no I/O.

pub mod media;
pub mod seal;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{FormDef, Limits};
use crate::intake::FileEntry;
use crate::types::{FormId, Problem};

/// A value read from a form: typed where it could be, with the text as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldValue {
    /// A number, a string, or null when the cell was empty (无, /, —).
    pub value: serde_json::Value,
    /// The text as the unit wrote it.
    pub text: String,
}

/// A form's table read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub form_id: FormId,
    /// The form's short name, e.g. `推荐表`.
    pub form: String,
    /// `rows` layout: one map per record, canonical key → value.
    pub rows: Option<Vec<BTreeMap<String, FieldValue>>>,
    /// `fields` layout: canonical key → value.
    pub fields: Option<BTreeMap<String, FieldValue>>,
}

/// Facts about a photo or video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    /// `jpeg`, `png`, `mp4`, …
    pub format: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_secs: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Extraction {
    pub table: Option<Table>,
    /// Whether a scan bears a red seal; None when the file is not a scan.
    pub sealed: Option<bool>,
    pub seal_confidence: Option<f32>,
    /// Text seen in the file (titles, headers, PDF text layer), for classification
    /// and content matching; bounded.
    pub text: String,
    /// The unit the form names (推荐单位 / 地方/部门 cell).
    pub unit: Option<String>,
    pub media: Option<MediaInfo>,
    /// A PDF or image that shows a page (a scan), not a born-digital document.
    pub is_scan: bool,
    pub problems: Vec<Problem>,
}

/// Reads one file. Never panics; what cannot be read becomes a problem.
pub fn extract(_file: &FileEntry, _forms: &[FormDef], _limits: &Limits) -> Extraction {
    Extraction::default()
}

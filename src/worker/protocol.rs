//! The frames between the daemon and a worker: see the module doc of
//! [`crate::worker`].

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::config::{FieldDef, FieldType, FormDef, Layout, Limits};
use crate::types::{DocumentKind, FormId};

/// Bumped whenever a frame changes shape.
pub const VERSION: u32 = 1;
/// Largest frame read: a reply carries one file's table, text and problems.
pub const MAX_FRAME: usize = 32 << 20;

/// The first frame a worker writes, once its limits are set.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub pid: u32,
}

/// What the daemon sends, as it sends it (borrowed).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request<'a> {
    /// The forms and limits the files after it are read with.
    Setup {
        forms: Vec<FormWire<'a>>,
        limits: LimitsWire,
    },
    /// A file: its `size` bytes follow the frame, raw.
    File {
        filename: &'a str,
        media_type: &'a str,
        size: u64,
    },
}

/// What a worker receives.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Received {
    Setup {
        forms: Vec<FormDef>,
        limits: Limits,
    },
    File {
        filename: String,
        media_type: String,
        size: u64,
    },
}

/// A [`FormDef`] written with the field names the configuration reads, so
/// that the worker reads it back with `FormDef`'s own `Deserialize`.
#[derive(Debug, Serialize)]
pub struct FormWire<'a> {
    id: &'a FormId,
    name: &'a str,
    kind: DocumentKind,
    layout: &'static str,
    keywords: &'a [String],
    #[serde(rename = "field")]
    fields: Vec<FieldWire<'a>>,
}

#[derive(Debug, Serialize)]
struct FieldWire<'a> {
    key: &'a str,
    labels: &'a [String],
    #[serde(rename = "type")]
    ty: &'static str,
    unit: &'a Option<String>,
    group: &'a Option<String>,
    required: bool,
    max_chars: Option<u32>,
    county_level: bool,
    is_unit: bool,
}

impl<'a> FormWire<'a> {
    pub fn of(f: &'a FormDef) -> Self {
        Self {
            id: &f.id,
            name: &f.name,
            kind: f.kind,
            layout: match f.layout {
                Layout::Rows => "rows",
                Layout::Fields => "fields",
            },
            keywords: &f.keywords,
            fields: f.fields.iter().map(FieldWire::of).collect(),
        }
    }
}

impl<'a> FieldWire<'a> {
    fn of(f: &'a FieldDef) -> Self {
        Self {
            key: &f.key,
            labels: &f.labels,
            ty: match f.ty {
                FieldType::Text => "text",
                FieldType::Integer => "integer",
                FieldType::Decimal => "decimal",
                FieldType::Phone => "phone",
                FieldType::DatePlace => "date_place",
            },
            unit: &f.unit,
            group: &f.group,
            required: f.required,
            max_chars: f.max_chars,
            county_level: f.county_level,
            is_unit: f.is_unit,
        }
    }
}

/// [`Limits`] under the names the configuration reads.
#[derive(Debug, Serialize)]
pub struct LimitsWire {
    max_message_bytes: u64,
    max_file_bytes: u64,
    max_archive_depth: u32,
    max_archive_entries: u32,
    max_unpacked_bytes: u64,
    max_compression_ratio: u32,
    max_attachments: u32,
    extract_timeout_secs: u64,
    max_image_pixels: u64,
}

impl LimitsWire {
    pub fn of(l: &Limits) -> Self {
        Self {
            max_message_bytes: l.max_message_bytes,
            max_file_bytes: l.max_file_bytes,
            max_archive_depth: l.max_archive_depth,
            max_archive_entries: l.max_archive_entries,
            max_unpacked_bytes: l.max_unpacked_bytes,
            max_compression_ratio: l.max_compression_ratio,
            max_attachments: l.max_attachments,
            extract_timeout_secs: l.extract_timeout_secs,
            max_image_pixels: l.max_image_pixels,
        }
    }
}

/// Writes one frame: its length (u32, little-endian), then its bytes.
pub fn write_frame(out: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(body)
}

/// Reads one frame; None at a clean end of input (the daemon went away).
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0; len];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn forms_and_limits_read_back_as_the_configuration_wrote_them() {
        let config = Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let limits = Limits {
            extract_timeout_secs: 7,
            ..Limits::default()
        };
        let sent = Request::Setup {
            forms: config.forms.iter().map(FormWire::of).collect(),
            limits: LimitsWire::of(&limits),
        };
        let bytes = serde_json::to_vec(&sent).unwrap();
        let Received::Setup { forms, limits: got } = serde_json::from_slice(&bytes).unwrap() else {
            panic!("not a setup");
        };
        assert_eq!(format!("{forms:?}"), format!("{:?}", config.forms));
        assert_eq!(format!("{got:?}"), format!("{limits:?}"));
    }

    #[test]
    fn frames_round_trip_and_a_clean_end_is_none() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"abc").unwrap();
        let mut input = buf.as_slice();
        assert_eq!(read_frame(&mut input).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(read_frame(&mut input).unwrap(), None);
    }
}

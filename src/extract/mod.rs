//! Extract: what is inside one file: the form's table, a red seal on a scan,
//! media facts. Parsing only: no I/O.
//!
//! Readers ([`sheet`] calamine: xlsx/xlsm/xlsb/xls/et/ods; [`docx`]; [`doc`]
//! Word 97/WPS; [`pdf`] text layer) turn a file into a [`grid::Doc`]: cell
//! grids with merges spread, plus loose lines. [`table`] finds each form of
//! the configuration in it by its labels and keeps the best; [`validate`] and
//! [`values`] type and check the values; [`places`] knows the county-level
//! divisions. The format is told by magic bytes ([`sniff`]), not by the name.
//!
//! Not read: tables inside PDFs (only their text), .odt/.rtf/.wps of WPS 2000
//! and older, text boxes, headers and footers of Word files, charts and images
//! inside Office files.

pub mod biff;
pub mod doc;
pub mod docx;
pub mod grid;
pub mod media;
pub mod ods;
pub mod pdf;
pub mod places;
pub mod seal;
pub mod sheet;
pub mod table;
pub mod validate;
pub mod values;

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{FormDef, Limits};
use crate::intake::FileEntry;
use crate::model::{MediaInfo, Problem, ProblemCode, Table};

/// Serialisable: a worker process sends it back to the daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// A PDF or image that shows a page (a scan), not a born-digital document
    /// nor a photo of a scene.
    pub is_scan: bool,
    /// A page image shows a table ruled both ways: a form (or a screenshot of
    /// one), not an article.
    pub ruled_table: bool,
    pub problems: Vec<Problem>,
    /// How the file was read, from its content; None when not recognised.
    pub read_as: Option<ReadAs>,
}

/// CPU priority of a message's analysis (the extraction workers' and the
/// analysing threads'): below the commit path's. Analyses run several at a
/// time ahead of the commit, which takes the messages one by one; at the
/// same priority the commit's round trips to the database waited for a
/// core behind them (1000 Maildir mails on 2 cores: 2.6–2.8 ms a mail to
/// commit, 2.0 ms with analyses at nice 10, −15 % wall time; see
/// bench/RESULTS.md, 2026-12-02, fourth stop). Idle cores still go to them.
pub const BACKGROUND_NICE: i32 = 10;

/// How a file was read, from its content (`xlsx`, `xls`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAs {
    Xlsx,
    Xlsb,
    /// Also WPS .et, a BIFF workbook.
    Xls,
    Ods,
    Docx,
    /// Word 97–2003 or WPS text.
    Doc,
    Pdf,
    Image,
    Video,
}

impl ReadAs {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::Xlsb => "xlsb",
            Self::Xls => "xls",
            Self::Ods => "ods",
            Self::Docx => "docx",
            Self::Doc => "doc",
            Self::Pdf => "pdf",
            Self::Image => "image",
            Self::Video => "video",
        }
    }
}

/// Most text kept in `Extraction.text`.
pub const MAX_TEXT_BYTES: usize = 4096;

/// What a file is, from its first bytes (and, for zip and CFB containers,
/// their parts): the sniffed media type is only a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A workbook: [`ReadAs::Xlsx`], `Xlsb`, `Xls` or `Ods`.
    Workbook(ReadAs),
    Docx,
    /// Word 97–2003 or WPS text.
    Doc,
    Pdf,
    Image,
    Video,
    /// An Office file with an open password (encrypted package).
    Encrypted,
    Unknown,
}

impl Format {
    fn read_as(self) -> Option<ReadAs> {
        match self {
            Self::Workbook(n) => Some(n),
            Self::Docx => Some(ReadAs::Docx),
            Self::Doc => Some(ReadAs::Doc),
            Self::Pdf => Some(ReadAs::Pdf),
            Self::Image => Some(ReadAs::Image),
            Self::Video => Some(ReadAs::Video),
            Self::Encrypted | Self::Unknown => None,
        }
    }
}

/// Tells the format by magic bytes; `media_type` decides only for media
/// without a clear signature.
pub fn sniff(data: &[u8], media_type: &str) -> Format {
    const CFB: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    if data.starts_with(b"PK\x03\x04") {
        return sniff_zip(data).unwrap_or_else(|| hint(media_type));
    }
    if data.starts_with(CFB) {
        return sniff_cfb(data).unwrap_or_else(|| match hint(media_type) {
            Format::Unknown => Format::Doc,
            f => f,
        });
    }
    if data.starts_with(b"%PDF-")
        || data
            .get(..1024)
            .is_some_and(|h| h.windows(5).any(|w| w == b"%PDF-"))
    {
        return Format::Pdf;
    }
    let image = data.starts_with(&[0xFF, 0xD8, 0xFF])
        || data.starts_with(b"\x89PNG")
        || data.starts_with(b"GIF8")
        || data.starts_with(b"BM")
        || data.starts_with(b"II*\0")
        || data.starts_with(b"MM\0*")
        || (data.starts_with(b"RIFF") && data.get(8..12) == Some(b"WEBP"));
    if image {
        return Format::Image;
    }
    let video = data.get(4..8) == Some(b"ftyp")
        || (data.starts_with(b"RIFF") && data.get(8..11) == Some(b"AVI"))
        || data.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]);
    if video || media_type.starts_with("video/") {
        return Format::Video;
    }
    Format::Unknown
}

/// The format the media type names, for a container too damaged to look inside:
/// its reader then says what is wrong.
fn hint(media_type: &str) -> Format {
    match media_type {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-excel.sheet.macroenabled.12" => Format::Workbook(ReadAs::Xlsx),
        "application/vnd.ms-excel" | "application/vnd.ms-works" => Format::Workbook(ReadAs::Xls),
        "application/vnd.oasis.opendocument.spreadsheet" => Format::Workbook(ReadAs::Ods),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-word.document.macroenabled.12" => Format::Docx,
        "application/msword" | "application/vnd.ms-wps" | "application/kswps" => Format::Doc,
        _ => Format::Unknown,
    }
}

/// What a zip holds: None when it cannot be opened.
fn sniff_zip(data: &[u8]) -> Option<Format> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).ok()?;
    if zip.index_for_name("word/document.xml").is_some() {
        return Some(Format::Docx);
    }
    if zip.index_for_name("xl/workbook.xml").is_some() {
        return Some(Format::Workbook(ReadAs::Xlsx));
    }
    if zip.index_for_name("xl/workbook.bin").is_some() {
        return Some(Format::Workbook(ReadAs::Xlsb));
    }
    let mut mimetype = String::new();
    if let Ok(entry) = zip.by_name("mimetype") {
        let _ = entry.take(100).read_to_string(&mut mimetype);
    }
    Some(
        if mimetype.trim() == "application/vnd.oasis.opendocument.spreadsheet" {
            Format::Workbook(ReadAs::Ods)
        } else {
            Format::Unknown
        },
    )
}

/// What a compound file holds: None when it cannot be opened.
fn sniff_cfb(data: &[u8]) -> Option<Format> {
    // cfb on hostile input: guarded like the readers (see `guarded`).
    let found = catch_unwind(|| {
        let cf = cfb::CompoundFile::open(Cursor::new(data)).ok()?;
        let has = |n: &str| cf.exists(n);
        Some(if has("WordDocument") {
            Format::Doc
        } else if has("Workbook") || has("Book") {
            Format::Workbook(ReadAs::Xls)
        } else if has("EncryptedPackage") {
            Format::Encrypted
        } else {
            Format::Unknown
        })
    });
    found.ok().flatten()
}

/// Runs a reader; a panic inside calamine, cfb, zip or lopdf on a malformed
/// file becomes an error instead of taking the daemon down. This is the last
/// resort: the readers bound their own work, but third-party parsers on
/// hostile input have panicked on index arithmetic before.
fn guarded(read: impl FnOnce() -> Result<grid::Doc, String>) -> Result<grid::Doc, String> {
    catch_unwind(AssertUnwindSafe(read)).unwrap_or_else(|_| Err("文件结构损坏".into()))
}

/// Reads files for the pipeline. The daemon's implementation runs the
/// readers in contained worker processes; [`InProcess`] runs them here
/// (`ingest`, tests, benchmarks).
pub trait Extractor: Send + Sync {
    /// What is inside `file`. Never fails: what cannot be read is a problem.
    fn extract(&self, file: &FileEntry, forms: &[FormDef], limits: &Limits) -> Extraction;

    /// Files this extractor reads well at once.
    fn parallelism(&self) -> usize {
        1
    }
}

/// Runs the readers on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl Extractor for InProcess {
    fn extract(&self, file: &FileEntry, forms: &[FormDef], limits: &Limits) -> Extraction {
        extract(file, forms, limits)
    }
}

/// Reads one file. Never panics; what cannot be read becomes a problem.
pub fn extract(file: &FileEntry, forms: &[FormDef], limits: &Limits) -> Extraction {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(limits.extract_timeout_secs.max(1));
    let format = sniff(&file.data, &file.media_type);
    let mut out = Extraction {
        read_as: format.read_as(),
        ..Extraction::default()
    };
    let data = file.data.as_slice();
    let doc = match format {
        Format::Workbook(kind) => guarded(|| sheet::read(data, kind, deadline)),
        Format::Docx => guarded(|| docx::read(data, deadline)),
        Format::Doc => guarded(|| doc::read(data, deadline)),
        Format::Pdf => {
            match catch_unwind(AssertUnwindSafe(|| seal::detect_in_pdf(data, limits))) {
                Ok(Ok(f)) => apply_seal(&mut out, f),
                Ok(Err(p)) => out.problems.push(p),
                Err(_) => out.problems.push(seal_panicked()),
            }
            guarded(|| pdf::read(data, deadline))
        }
        Format::Image => {
            match catch_unwind(AssertUnwindSafe(|| seal::detect_in_image(data, limits))) {
                Ok(Ok(f)) => apply_seal(&mut out, f),
                Ok(Err(p)) => out.problems.push(p),
                Err(_) => out.problems.push(seal_panicked()),
            }
            probe(&mut out, data, &file.media_type);
            return out;
        }
        Format::Video => {
            probe(&mut out, data, &file.media_type);
            return out;
        }
        Format::Encrypted => {
            out.problems.push(Problem::new(
                ProblemCode::FileEncrypted,
                format!(
                    "{}：文件设置了打开密码，无法读取，请去掉密码后重新发送",
                    file.filename
                ),
            ));
            return out;
        }
        Format::Unknown => {
            // Named as a document but holding something else: a mail cut off
            // mid-attachment, a renamed or damaged file. Say so, rather than
            // count it as received.
            if expects_document(&file.filename) {
                out.problems.push(Problem::new(
                    ProblemCode::FileUnreadable,
                    format!(
                        "{}：文件内容与文件类型不符或文件已损坏，无法读取，请检查文件能否打开后重新发送",
                        file.filename
                    ),
                ));
            }
            return out;
        }
    };
    match doc {
        Ok(doc) => read_forms(&mut out, &doc, forms, &file.filename),
        Err(reason) => out.problems.push(Problem::new(
            if Instant::now() > deadline {
                ProblemCode::FileTimeout
            } else {
                ProblemCode::FileUnreadable
            },
            format!(
                "{}：无法读取（{reason}），请检查文件能否打开，或另存为.xlsx/.docx后重新发送",
                file.filename
            ),
        )),
    }
    out
}

/// Whether the file name promises a binary format (office, PDF, image,
/// video, archive) that text or unknown bytes cannot be.
fn expects_document(filename: &str) -> bool {
    matches!(
        crate::intake::sniff::extension(filename).as_str(),
        "xlsx"
            | "xlsm"
            | "xls"
            | "et"
            | "ods"
            | "docx"
            | "docm"
            | "doc"
            | "wps"
            | "pdf"
            | "jpg"
            | "jpeg"
            | "png"
            | "tif"
            | "tiff"
            | "bmp"
            | "mp4"
            | "mov"
            | "zip"
            | "rar"
            | "7z"
    )
}

fn apply_seal(out: &mut Extraction, f: seal::SealFinding) {
    out.is_scan = f.is_scan;
    out.ruled_table = f.ruled_table;
    if f.is_scan || f.sealed {
        out.sealed = Some(f.sealed);
        out.seal_confidence = Some(f.confidence);
    }
    out.problems.extend(f.problems);
}

fn seal_panicked() -> Problem {
    Problem::new(
        ProblemCode::ScanUnreadable,
        "扫描件无法读取：图片数据异常，请重新扫描为 PDF 或 JPG 后发送",
    )
}

fn probe(out: &mut Extraction, data: &[u8], media_type: &str) {
    match catch_unwind(AssertUnwindSafe(|| media::probe(data, media_type))) {
        Ok(Ok(m)) => out.media = Some(m),
        Ok(Err(p)) => out.problems.push(p),
        Err(_) => {}
    }
}

/// Finds the best-scoring form among `forms` in a read document and fills
/// `out`; a document that holds none keeps only its text.
pub fn read_forms(out: &mut Extraction, doc: &grid::Doc, forms: &[FormDef], filename: &str) {
    out.text = doc_text(doc);
    let best = forms
        .iter()
        .filter_map(|f| {
            let found = table::find(doc, f, filename)?;
            let keyword = f.keywords.iter().any(|k| out.text.contains(k.as_str()));
            Some(((found.score, keyword), found))
        })
        .max_by_key(|(k, _)| *k)
        .map(|(_, f)| f);
    if let Some(found) = best {
        out.table = Some(found.table);
        out.unit = found.unit;
        out.problems.extend(found.problems);
    }
}

/// The first `MAX_TEXT_BYTES` of loose lines and grid rows, for classification.
fn doc_text(doc: &grid::Doc) -> String {
    let mut text = String::new();
    let rows = doc.grids.iter().flat_map(|g| g.rows.iter()).map(|row| {
        row.iter()
            .filter(|c| !c.covered && !c.text.trim().is_empty())
            .map(|c| c.text.replace(['\n', '\r'], " "))
            .collect::<Vec<_>>()
            .join("\t")
    });
    for line in doc.lines.iter().cloned().chain(rows) {
        if line.trim().is_empty() {
            continue;
        }
        if text.len() + line.len() + 1 > MAX_TEXT_BYTES {
            let room = MAX_TEXT_BYTES.saturating_sub(text.len());
            let cut = (0..=room.min(line.len()))
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            text.push_str(&line[..cut]);
            break;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text
}

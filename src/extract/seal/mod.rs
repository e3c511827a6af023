//! Red official seal (公章) detection on scans: images and the images inside PDF pages.
//!
//! `raster` decodes at reduced scale, `pdf` finds and decodes page images,
//! `look` tells a page (paper with text) from a scene (an event photo), and
//! `detect` decides whether a page raster carries a seal: only a page can.

mod detect;
mod look;
mod pdf;
mod raster;

use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::model::{Problem, ProblemCode};

use detect::SEAL_SCORE;
use pdf::PageImage;
use raster::{Decoded, unreadable};

/// What seal detection found in one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SealFinding {
    /// True when the file shows page images (a scan or photo of a page). An
    /// image that does not look like paper (an event photo) is not one, and
    /// red rings in it are not seals.
    pub is_scan: bool,
    /// Some image looks like a page: paper across the middle of the frame,
    /// text lines, little colour but red. False for a born-digital PDF.
    pub looks_like_document: bool,
    /// 0.0–1.0: the best page image's likeness to a document (0.5 and up
    /// reads as one).
    pub document_score: f32,
    /// A page image shows a table ruled both ways (a form, or a screenshot
    /// of one).
    pub ruled_table: bool,
    /// A red seal was found. On a born-digital PDF (`is_scan` false) this is
    /// an electronic seal image placed on the page.
    pub sealed: bool,
    /// 0.0–1.0: how sure the detector is that a seal is (or is not) there.
    pub confidence: f32,
    /// Pages (PDF) or 1 (image) looked at.
    pub pages: u32,
    /// Soft warnings for the unit (low resolution, blank page, pages skipped);
    /// the file was still read.
    pub problems: Vec<Problem>,
    /// Largest image the decoders produced, in pixels (3 bytes each): the
    /// memory a file costs, after reduced-scale decoding.
    pub peak_decoded_pixels: u64,
}

/// Below this many pixels on the long side a seal's text cannot be read
/// (an A4 page at about 50 dpi).
const MIN_LONG_SIDE: u32 = 600;
/// A page image is at least this big on its short side and, inside a PDF,
/// oblong like a page; small or square pictures (logos, an electronic seal on
/// a born-digital PDF) are not scans, and the seal may fill them.
const MIN_PAGE_IMAGE_SIDE: u32 = 300;
const MIN_PAGE_ASPECT: f32 = 1.15;

/// Looks for a red seal in a JPEG/PNG/TIFF/BMP image.
pub fn detect_in_image(data: &[u8], limits: &Limits) -> Result<SealFinding, Problem> {
    check_size(data, limits)?;
    let decoded = raster::decode_image(data, limits)?;
    let mut acc = Tally::default();
    acc.page_image(&decoded, false);
    acc.pages = 1;
    Ok(acc.finish())
}

/// Looks for a red seal in the images embedded in a PDF's pages. A PDF whose
/// pages carry no image is born-digital: `is_scan` false.
///
/// Pages are read in order and reading stops at the first page with a seal.
pub fn detect_in_pdf(data: &[u8], limits: &Limits) -> Result<SealFinding, Problem> {
    check_size(data, limits)?;
    let doc = lopdf::Document::load_mem(data).map_err(|_| unreadable("PDF 文件已损坏或已加密"))?;
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(unreadable("PDF 文件没有页面"));
    }
    let deadline = Instant::now() + Duration::from_secs(limits.extract_timeout_secs);
    let mut acc = Tally::default();
    let mut first_error = None;
    for &page_id in pages.values() {
        if Instant::now() > deadline {
            acc.problems.push(Problem::new(
                ProblemCode::ScanTimeout,
                format!(
                    "扫描件页数过多，只检查了前 {} 页的公章，请将盖章页单独扫描后发送",
                    acc.pages
                ),
            ));
            break;
        }
        acc.pages += 1;
        for stream in pdf::page_images(&doc, page_id) {
            match pdf::decode(&doc, stream, limits) {
                Ok(PageImage::Decoded(d)) => acc.page_image(&d, true),
                Ok(PageImage::Unsupported) => {
                    acc.skipped += 1;
                    acc.is_scan = true;
                }
                Ok(PageImage::Ignored) => {}
                Err(p) => {
                    acc.is_scan = true;
                    first_error.get_or_insert(p);
                }
            }
        }
        if acc.best >= SEAL_SCORE {
            break;
        }
    }
    if acc.analysed == 0 {
        if let Some(p) = first_error {
            return Err(p);
        }
        if acc.skipped > 0 {
            return Err(unreadable("PDF 中的扫描图片采用了无法识别的压缩格式"));
        }
    }
    if acc.best < SEAL_SCORE && (acc.skipped > 0 || first_error.is_some()) {
        acc.problems.push(Problem::new(
            ProblemCode::ScanPagesSkipped,
            "扫描件中部分页面的图片无法读取，这些页面上的公章未能检查，请重新扫描为 PDF 或 JPG 后发送",
        ));
    }
    Ok(acc.finish())
}

fn check_size(data: &[u8], limits: &Limits) -> Result<(), Problem> {
    if data.len() as u64 > limits.max_file_bytes {
        return Err(Problem::new(
            ProblemCode::ScanTooLarge,
            format!(
                "扫描件文件过大（{:.1} MB），请以 150–300 dpi 重新扫描或压缩后发送",
                data.len() as f64 / 1e6
            ),
        ));
    }
    Ok(())
}

/// Running result over the images of a file.
#[derive(Default)]
struct Tally {
    is_scan: bool,
    pages: u32,
    analysed: u32,
    skipped: u32,
    best: f32,
    document_score: f32,
    ruled_table: bool,
    page_images: u32,
    blank_page_images: u32,
    low_resolution: bool,
    peak: u64,
    problems: Vec<Problem>,
}

impl Tally {
    fn page_image(&mut self, d: &Decoded, in_pdf: bool) {
        let (short, long) = (
            d.source_width.min(d.source_height),
            d.source_width.max(d.source_height),
        );
        let is_page = short >= MIN_PAGE_IMAGE_SIDE
            && (!in_pdf || long as f32 >= short as f32 * MIN_PAGE_ASPECT);
        let verdict = detect::analyse(&d.raster, !is_page);
        self.analysed += 1;
        self.peak = self.peak.max(d.decoded_pixels);
        self.best = self.best.max(verdict.score);
        let document = verdict.look.as_ref().is_some_and(|l| l.is_document());
        if let Some(look) = &verdict.look {
            self.document_score = self.document_score.max(look.score);
            self.ruled_table |= document && look.ruled_table;
        }
        // A picture in a PDF (a photo in an exported report) or an image
        // file that shows a scene is not a page.
        if is_page && document {
            self.is_scan = true;
            self.page_images += 1;
            if verdict.blank {
                self.blank_page_images += 1;
            }
            if d.source_width.max(d.source_height) < MIN_LONG_SIDE {
                self.low_resolution = true;
            }
        }
    }

    fn finish(mut self) -> SealFinding {
        let sealed = self.best >= SEAL_SCORE;
        let mut confidence = if sealed {
            0.6 + 0.4 * ((self.best - SEAL_SCORE) / (1.0 - SEAL_SCORE))
        } else {
            0.9 - 0.6 * (self.best / SEAL_SCORE)
        };
        if !sealed && self.low_resolution {
            self.problems.push(Problem::new(
                ProblemCode::ScanLowResolution,
                "扫描件分辨率过低，印章和文字可能无法辨认，请以 150 dpi 以上重新扫描后发送",
            ));
            confidence *= 0.5;
        }
        if !sealed && self.page_images > 0 && self.blank_page_images == self.page_images {
            self.problems.push(Problem::new(
                ProblemCode::ScanBlank,
                "扫描件是空白页，请确认扫描了盖章的页面后重新发送",
            ));
        }
        SealFinding {
            is_scan: self.is_scan,
            looks_like_document: self.page_images > 0,
            document_score: self.document_score,
            ruled_table: self.ruled_table,
            sealed,
            confidence: confidence.clamp(0.0, 1.0),
            pages: self.pages,
            problems: self.problems,
            peak_decoded_pixels: self.peak,
        }
    }
}

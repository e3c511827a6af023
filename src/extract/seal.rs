//! Red official seal (公章) detection on scans: images and the images inside PDF pages.

use crate::config::Limits;
use crate::types::Problem;

/// What seal detection found in one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SealFinding {
    /// True when the file shows page images (a scan or photo of a page).
    pub is_scan: bool,
    pub sealed: bool,
    /// 0.0–1.0: how sure the detector is that a seal is (or is not) there.
    pub confidence: f32,
    /// Pages (PDF) or 1 (image) looked at.
    pub pages: u32,
}

/// Looks for a red seal in a JPEG/PNG/TIFF/BMP image.
pub fn detect_in_image(_data: &[u8], _limits: &Limits) -> Result<SealFinding, Problem> {
    Ok(SealFinding::default())
}

/// Looks for a red seal in the images embedded in a PDF's pages. A PDF whose
/// pages carry no image is born-digital: `is_scan` false.
pub fn detect_in_pdf(_data: &[u8], _limits: &Limits) -> Result<SealFinding, Problem> {
    Ok(SealFinding::default())
}

//! Seal detection against the generated scan fixtures (see
//! tests/fixtures/scans/make_scans.py; expected.json holds file → sealed,
//! null for files that must be reported unreadable), and against event
//! photos that must not be taken for scans (tests/fixtures/photoscan).

use std::collections::BTreeMap;
use std::path::Path;

use baosong::config::Limits;
use baosong::extract::seal::{SealFinding, detect_in_image, detect_in_pdf};
use baosong::model::Problem;

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scans"))
}

fn detect_with(name: &str, limits: &Limits) -> Result<SealFinding, Problem> {
    let data = std::fs::read(dir().join(name)).expect("fixture");
    if name.ends_with(".pdf") {
        detect_in_pdf(&data, limits)
    } else {
        detect_in_image(&data, limits)
    }
}

fn detect(name: &str) -> Result<SealFinding, Problem> {
    detect_with(name, &Limits::default())
}

fn finding(name: &str) -> SealFinding {
    detect(name).unwrap_or_else(|p| panic!("{name}: {p:?}"))
}

fn assert_sealed(name: &str) {
    let f = finding(name);
    assert!(f.is_scan, "{name}: {f:?}");
    assert!(f.sealed, "{name}: {f:?}");
    assert!(f.confidence >= 0.6, "{name}: {f:?}");
}

fn assert_not_sealed(name: &str) {
    let f = finding(name);
    assert!(f.is_scan, "{name}: {f:?}");
    assert!(!f.sealed, "{name}: {f:?}");
}

#[test]
fn every_fixture_matches_expected_json() {
    let text = std::fs::read_to_string(dir().join("expected.json")).expect("expected.json");
    let expected: BTreeMap<String, Option<bool>> = serde_json::from_str(&text).expect("json");
    let mut wrong = Vec::new();
    for (name, want) in &expected {
        let got = detect(name);
        let ok = match (want, &got) {
            (None, Err(p)) => p.code.as_str() == "scan_unreadable",
            (Some(w), Ok(f)) => f.sealed == *w,
            _ => false,
        };
        if !ok {
            wrong.push(format!("{name}: {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong: {wrong:#?}");
}

#[test]
fn every_scan_fixture_looks_like_a_document() {
    let text = std::fs::read_to_string(dir().join("expected.json")).expect("expected.json");
    let expected: BTreeMap<String, Option<bool>> = serde_json::from_str(&text).expect("json");
    for name in expected.keys().filter(|n| !n.starts_with("born_digital")) {
        if let Ok(f) = detect(name) {
            assert!(
                f.looks_like_document && f.document_score >= 0.5,
                "{name}: {f:?}"
            );
        }
    }
}

/// Event photos of tests/fixtures/photoscan that the ring test alone took
/// for sealed scans: a round emblem on a red backdrop under red lanterns,
/// and a lecture whose projected slide fills the middle.
#[test]
fn red_emblem_in_an_event_photo_is_not_a_seal() {
    for name in ["chromium_festival_25.jpg", "chromium_lecture_13.jpg"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/photoscan/photo")
            .join(name);
        let data = std::fs::read(path).expect("fixture");
        let f = detect_in_image(&data, &Limits::default()).expect(name);
        assert!(
            !f.is_scan && !f.sealed && !f.looks_like_document,
            "{name}: {f:?}"
        );
        assert!(f.document_score < 0.5, "{name}: {f:?}");
    }
}

#[test]
fn round_seal_over_text_is_found() {
    assert_sealed("round_seal_over_text.jpg");
}

#[test]
fn oval_and_rotated_seals_are_found() {
    assert_sealed("oval_seal.jpg");
    assert_sealed("seal_rotated_20.jpg");
}

#[test]
fn faded_pink_seal_is_found() {
    assert_sealed("faded_pink_seal.jpg");
}

#[test]
fn seal_with_one_side_faded_is_found() {
    assert_sealed("seal_half_faded.jpg");
}

#[test]
fn seal_in_heavily_compressed_jpeg_is_found() {
    assert_sealed("seal_low_quality_jpeg.jpg");
}

#[test]
fn small_round_red_emblem_in_letterhead_is_not_a_seal() {
    assert_not_sealed("round_red_logo_in_letterhead.jpg");
}

#[test]
fn noisy_blurred_skewed_scan_seal_is_found() {
    assert_sealed("seal_noisy_blurred_skewed.jpg");
}

#[test]
fn seal_on_phone_photo_is_found() {
    assert_sealed("phone_photo_with_seal.jpg");
}

#[test]
fn seal_below_red_letterhead_is_found() {
    assert_sealed("letterhead_with_seal.jpg");
}

#[test]
fn palette_png_seal_is_found() {
    assert_sealed("seal_scan.png");
}

#[test]
fn red_letterhead_is_not_a_seal() {
    assert_not_sealed("red_letterhead_no_seal.jpg");
    assert_not_sealed("scan_no_seal.pdf");
}

#[test]
fn red_underlines_ticks_and_open_circle_are_not_a_seal() {
    assert_not_sealed("red_underlines_and_ticks.jpg");
}

#[test]
fn red_table_lines_are_not_a_seal() {
    assert_not_sealed("red_table_lines.jpg");
}

#[test]
fn black_and_grey_scans_have_no_seal() {
    assert_not_sealed("black_only_scan.jpg");
    assert_not_sealed("gray_scan.tif");
}

#[test]
fn blank_page_is_reported() {
    let f = finding("blank_page.jpg");
    assert!(!f.sealed);
    assert!(
        f.problems.iter().any(|p| p.code.as_str() == "scan_blank"),
        "{f:?}"
    );
}

#[test]
fn low_resolution_scan_is_reported_with_low_confidence() {
    let f = finding("low_res_scan.bmp");
    assert!(!f.sealed);
    assert!(f.confidence < 0.5, "{f:?}");
    assert!(
        f.problems
            .iter()
            .any(|p| p.code.as_str() == "scan_low_resolution"),
        "{f:?}"
    );
}

#[test]
fn jpeg_and_flate_scan_pdfs_are_read() {
    assert_sealed("scan_jpeg.pdf");
    assert_sealed("scan_flate.pdf");
}

#[test]
fn seal_on_second_pdf_page_is_found() {
    let f = finding("two_pages_seal_on_second.pdf");
    assert!(f.sealed, "{f:?}");
    assert_eq!(f.pages, 2);
}

#[test]
fn born_digital_pdf_is_not_a_scan() {
    let f = finding("born_digital.pdf");
    assert!(!f.is_scan, "{f:?}");
    assert!(!f.sealed);
}

#[test]
fn electronic_seal_on_born_digital_pdf_is_found_through_its_soft_mask() {
    let f = finding("born_digital_with_e_seal.pdf");
    assert!(!f.is_scan, "{f:?}");
    assert!(f.sealed, "{f:?}");
}

#[test]
fn corrupt_files_are_unreadable_with_a_chinese_instruction() {
    for name in ["corrupt.pdf", "corrupt.jpg"] {
        let p = detect(name).expect_err(name);
        assert_eq!(p.code.as_str(), "scan_unreadable");
        assert!(p.message.contains("重新扫描"), "{}", p.message);
    }
    let p = detect_in_image(b"not an image at all", &Limits::default()).expect_err("text");
    assert_eq!(p.code.as_str(), "scan_unreadable");
}

#[test]
fn image_over_the_pixel_limit_is_refused_before_decoding() {
    let limits = Limits {
        max_image_pixels: 500_000,
        ..Limits::default()
    };
    for name in ["round_seal_over_text.jpg", "seal_scan.png", "scan_jpeg.pdf"] {
        let p = detect_with(name, &limits).expect_err(name);
        assert_eq!(p.code.as_str(), "scan_too_large", "{name}");
    }
    let limits = Limits {
        max_file_bytes: 1000,
        ..Limits::default()
    };
    let p = detect_with("scan_jpeg.pdf", &limits).expect_err("file too large");
    assert_eq!(p.code.as_str(), "scan_too_large");
}

#[test]
fn large_jpeg_is_decoded_at_reduced_scale() {
    // 1240×1754 at 150 dpi: DCT scaling to 1/2 decodes a quarter of the pixels.
    let f = finding("round_seal_over_text.jpg");
    assert!(f.peak_decoded_pixels <= 1240 * 1754 / 4 + 1000, "{f:?}");
}

#[test]
fn damaged_files_never_panic() {
    // Deterministic corruption: cut at several lengths, and flip bytes.
    let mut seed = 0x2025_0506_u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for name in [
        "scan_jpeg.pdf",
        "scan_flate.pdf",
        "oval_seal.jpg",
        "seal_scan.png",
    ] {
        let whole = std::fs::read(dir().join(name)).expect("fixture");
        for round in 0..10 {
            let mut data = whole.clone();
            if round % 2 == 0 {
                data.truncate(next() % whole.len());
            } else {
                for _ in 0..8 {
                    let i = next() % data.len();
                    data[i] = next() as u8;
                }
            }
            let limits = Limits::default();
            let _ = if name.ends_with(".pdf") {
                detect_in_pdf(&data, &limits)
            } else {
                detect_in_image(&data, &limits)
            };
        }
    }
}

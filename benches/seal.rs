//! Seal detection throughput: `cargo bench --bench seal`.
//!
//! A plain timing loop (no harness): prints ms per page for a 150-dpi A4
//! JPEG scan and for scan PDFs, and the most pixels any decoder produced.

use std::path::Path;
use std::time::{Duration, Instant};

use baosong::config::Limits;
use baosong::extract::seal::{SealFinding, detect_in_image, detect_in_pdf};
use baosong::model::Problem;

type Detect = fn(&[u8], &Limits) -> Result<SealFinding, Problem>;

fn bench(label: &str, file: &str, detect: Detect) {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scans"));
    let data = std::fs::read(dir.join(file)).expect("fixture");
    let limits = Limits::default();
    let first = detect(&data, &limits).expect("detect");
    let mut runs = Vec::new();
    let started = Instant::now();
    while runs.len() < 5 || (started.elapsed() < Duration::from_secs(3) && runs.len() < 200) {
        let t = Instant::now();
        let f = detect(&data, &limits).expect("detect");
        runs.push(t.elapsed().as_secs_f64() * 1000.0 / f64::from(f.pages.max(1)));
    }
    runs.sort_by(f64::total_cmp);
    let mean = runs.iter().sum::<f64>() / runs.len() as f64;
    println!(
        "{label:<38} {file:<32} pages {:>2}  sealed {:<5}  ms/page mean {mean:>7.1}  min {:>7.1}  median {:>7.1}  runs {:>3}  peak decoded {:.2} MP",
        first.pages,
        first.sealed,
        runs[0],
        runs[runs.len() / 2],
        runs.len(),
        first.peak_decoded_pixels as f64 / 1e6,
    );
}

fn main() {
    bench(
        "A4 150 dpi JPEG 1240x1754",
        "round_seal_over_text.jpg",
        detect_in_image,
    );
    bench("A4 100 dpi JPEG 827x1169", "oval_seal.jpg", detect_in_image);
    bench(
        "A4 100 dpi JPEG, no seal",
        "red_letterhead_no_seal.jpg",
        detect_in_image,
    );
    bench(
        "phone photo 1033x1402",
        "phone_photo_with_seal.jpg",
        detect_in_image,
    );
    bench("scan PDF, DCTDecode page", "scan_jpeg.pdf", detect_in_pdf);
    bench(
        "scan PDF, FlateDecode page",
        "scan_flate.pdf",
        detect_in_pdf,
    );
    bench(
        "scan PDF, 2 pages, seal on page 2",
        "two_pages_seal_on_second.pdf",
        detect_in_pdf,
    );
}

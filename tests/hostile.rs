//! Small files that ask a naive reader for gigabytes or hours
//! (tests/fixtures/hostile, made by make_hostile.py, and inputs the fuzzers
//! found). Each is read in-process, where the bounded readers must keep
//! it small and quick, and through the worker pool with a 256 MiB address
//! space, where it must come back with the same answer: a reader that
//! still blew up would cost the worker its life and the file a
//! "内存超限" problem instead.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use baosong::config::{Config, FormDef, Limits};
use baosong::extract::{Extraction, Extractor, InProcess};
use baosong::intake::FileEntry;
use baosong::model::ProblemCode;
use baosong::types::Sha256;
use baosong::worker::{Pool, PoolOptions};

/// Slack over the extraction budget for a slow, shared test machine.
const SLACK: Duration = Duration::from_secs(10);

fn forms() -> &'static [FormDef] {
    static FORMS: OnceLock<Vec<FormDef>> = OnceLock::new();
    FORMS.get_or_init(|| {
        Config::example(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("example config")
            .forms
    })
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        Pool::with_options(PoolOptions {
            workers: 2,
            memory_bytes: 256 << 20,
            ..PoolOptions::new(env!("CARGO_BIN_EXE_baosong"))
        })
        .expect("pool")
    })
}

fn fixture(name: &str) -> FileEntry {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    FileEntry {
        filename: name.to_owned(),
        path: name.to_owned(),
        declared_type: None,
        media_type: "application/octet-stream".into(),
        sha256: Sha256::of(&data),
        data,
        problems: Vec::new(),
    }
}

/// Reads `name` in-process and through the pool, each within the budget;
/// both answers must agree.
fn contained(name: &str) -> Extraction {
    let file = fixture(name);
    let limits = Limits::default();
    let budget = Duration::from_secs(limits.extract_timeout_secs) + SLACK;
    let started = Instant::now();
    let here = InProcess.extract(&file, forms(), &limits);
    assert!(
        started.elapsed() < budget,
        "{name}: {:?} in-process",
        started.elapsed()
    );
    let started = Instant::now();
    let there = pool().extract(&file, forms(), &limits);
    assert!(
        started.elapsed() < budget,
        "{name}: {:?} in a worker",
        started.elapsed()
    );
    assert_eq!(there, here, "{name}: the worker's answer differs");
    here
}

/// The file was read: no problem at all.
fn read(name: &str) -> Extraction {
    let x = contained(name);
    assert!(x.problems.is_empty(), "{name}: {:?}", x.problems);
    x
}

/// The file was refused with `code`, in a message naming it and saying `why`.
fn refused(name: &str, code: ProblemCode, why: &str) {
    let x = contained(name);
    let [p] = x.problems.as_slice() else {
        panic!("{name}: {:?}", x.problems);
    };
    assert_eq!(p.code, code, "{p:?}");
    assert!(
        p.message.contains(name) || code == ProblemCode::ScanTooLarge,
        "{p:?}"
    );
    assert!(p.message.contains(why), "{p:?}");
}

#[test]
fn xlsx_far_cell_is_bounded() {
    assert_eq!(read("far_cell.xlsx").text, "推荐表\n");
}

#[test]
fn xls_far_cell_and_its_dimensions_are_bounded() {
    assert_eq!(read("far_cell.xls").text, "1\n");
}

#[test]
fn xlsx_shared_string_shown_in_thousands_of_cells_is_refused() {
    refused(
        "shared_string.xlsx",
        ProblemCode::FileUnreadable,
        "表格内容过多，超出读取上限",
    );
}

#[test]
fn ods_repeated_rows_and_columns_are_bounded() {
    assert!(read("repeat_rows.ods").text.starts_with("推荐表\t推荐表"));
}

#[test]
fn docx_merged_cells_share_their_text() {
    assert!(read("merge_clones.docx").text.starts_with("简简简"));
}

#[test]
fn docx_deeply_nested_tables_are_refused() {
    refused(
        "deep_tables.docx",
        ProblemCode::FileUnreadable,
        "表格嵌套过深",
    );
}

#[test]
fn doc_paragraph_pages_are_read_once_and_runs_capped() {
    assert!(read("papx_runs.doc").text.starts_with("a\na\n"));
}

#[test]
fn doc_nested_fields_are_read_in_linear_time() {
    assert_eq!(read("nested_fields.doc").text, "");
}

#[test]
fn png_at_the_pixel_limit_is_decoded_row_by_row() {
    let x = contained("huge_rgba16.png");
    assert!(x.is_scan, "{x:?}");
    assert!(
        x.problems.iter().all(|p| p.code == ProblemCode::ScanBlank),
        "{:?}",
        x.problems
    );
}

#[test]
fn tiff_over_the_decode_budget_is_refused_before_decoding() {
    refused("huge_rgba16.tif", ProblemCode::ScanTooLarge, "10000×8000");
}

#[test]
fn pdf_flate_image_at_the_pixel_limit_is_decoded_row_by_row() {
    let x = contained("flate_image.pdf");
    assert!(x.is_scan, "{x:?}");
    assert!(
        x.problems.iter().all(|p| p.code == ProblemCode::ScanBlank),
        "{:?}",
        x.problems
    );
}

//! Photo or scan, and what counts as the 电子版: the generated set under
//! tests/fixtures/photoscan (made by make_photoscan.py: event photos rendered
//! by Chromium and drawn with Pillow, forms written with openpyxl and
//! python-docx, printed by LibreOffice, rasterised by pdftoppm, stamped,
//! scanned or photographed) through `extract::extract` and
//! `classify::classify`, as the pipeline runs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baosong::classify::{self, classify};
use baosong::config::{Config, FormDef, Limits};
use baosong::extract::{Extraction, extract};
use baosong::intake::FileEntry;
use baosong::model::ProblemCode;
use baosong::status::{self, Sent, SentDoc};
use baosong::types::OrgId;
use baosong::types::{DocForm, DocumentKind, Sha256};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photoscan")
}

fn config() -> Config {
    Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("example config")
}

fn forms() -> Vec<FormDef> {
    config().forms
}

fn media_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "pdf" => "application/pdf",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

/// The fixture `rel` as an attachment called `path` (its last part the file name).
fn entry(rel: &str, path: &str) -> FileEntry {
    let data = std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    FileEntry {
        filename: path.rsplit('/').next().unwrap_or(path).to_owned(),
        path: path.to_owned(),
        declared_type: None,
        media_type: media_type(path).to_owned(),
        sha256: Sha256::of(&data),
        data,
        problems: Vec::new(),
    }
}

struct Seen {
    kind: DocumentKind,
    form: DocForm,
    ex: Extraction,
    file: FileEntry,
}

fn run(rel: &str, path: &str, subject: &str) -> Seen {
    let file = entry(rel, path);
    let forms = forms();
    let ex = extract(&file, &forms, &Limits::default());
    let (kind, form) = classify(&file, &ex, subject, &forms);
    Seen {
        kind,
        form,
        ex,
        file,
    }
}

/// The matrix's columns: what the pipeline would list the file as.
fn verdict(s: &Seen) -> &'static str {
    match (s.form, s.ex.sealed) {
        (DocForm::Media, _)
            if matches!(s.kind, DocumentKind::Photo | DocumentKind::MediaCoverage) =>
        {
            "photo"
        }
        (DocForm::Scan, Some(true)) => "scan-sealed",
        (DocForm::Scan, Some(false)) => "scan-unsealed",
        _ => "other",
    }
}

fn files(sub: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir().join(sub))
        .expect("fixture folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jpg"))
        .map(|n| format!("{sub}/{n}"))
        .collect();
    v.sort();
    v
}

#[test]
fn photos_are_never_scans_and_scans_keep_their_seal_verdict() {
    let mut matrix: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (class, want) in [
        ("photo", "photo"),
        ("sealed", "scan-sealed"),
        ("unsealed", "scan-unsealed"),
    ] {
        for (i, rel) in files(class).iter().enumerate() {
            // Names that say nothing (a phone's, WeChat's): the content decides.
            let name = format!("IMG_20250518_{i:04}.jpg");
            let seen = run(rel, &name, "");
            let got = verdict(&seen);
            if class == "photo" && seen.ex.sealed.is_some() {
                wrong.push(format!(
                    "{rel}: a photo with a seal verdict {:?}",
                    seen.ex.sealed
                ));
            }
            *matrix.entry((class, got)).or_default() += 1;
            if got != want {
                wrong.push(format!("{rel}: {got}"));
            }
        }
    }
    let cols = ["photo", "scan-sealed", "scan-unsealed", "other"];
    let mut table = format!("{:<10}{}\n", "", cols.map(|c| format!("{c:>15}")).join(""));
    for class in ["photo", "sealed", "unsealed"] {
        let row: Vec<String> = cols
            .iter()
            .map(|c| format!("{:>15}", matrix.get(&(class, *c)).copied().unwrap_or(0)))
            .collect();
        table += &format!("{class:<10}{}\n", row.join(""));
    }
    println!("{table}");
    assert!(
        files("photo").len() >= 40 && files("sealed").len() >= 40 && files("unsealed").len() >= 40
    );
    // No photo is a scan or carries a seal verdict; no scan is missed.
    assert!(wrong.is_empty(), "{table}{wrong:#?}");
}

/// Six event photos, as in the issue; the first two (a round red emblem on a
/// red backdrop under lanterns, a projected slide) the ring test alone read
/// as sealed scans.
const EVENT_PHOTOS: [&str; 6] = [
    "photo/chromium_festival_25.jpg",
    "photo/chromium_lecture_13.jpg",
    "photo/chromium_stage_00.jpg",
    "photo/chromium_group_05.jpg",
    "photo/chromium_school_01.jpg",
    "photo/chromium_exhibition_03.jpg",
];

#[test]
fn event_photos_in_a_photo_zip_are_all_photos() {
    let names = [
        "1.开幕式.jpg",
        "2.院士报告会.jpg",
        "3.科学家精神进校园.jpg",
        "4.科普展览.jpg",
        "5.合影留念.jpg",
        "6.互动体验.jpg",
    ];
    for (rel, name) in EVENT_PHOTOS.iter().zip(names) {
        let seen = run(
            rel,
            &format!("活动照片.zip/{name}"),
            "报送2025年科技活动周总结材料",
        );
        assert_eq!(
            (seen.kind, seen.form),
            (DocumentKind::Photo, DocForm::Media),
            "{name}"
        );
        assert_eq!(
            seen.ex.sealed, None,
            "{name}: a photo carries no seal verdict"
        );
    }
}

#[test]
fn red_banner_photo_is_not_a_scan() {
    for rel in EVENT_PHOTOS {
        let seen = run(rel, "IMG_20250518_101500.jpg", "报送统计表");
        assert_eq!(
            (seen.kind, seen.form),
            (DocumentKind::Photo, DocForm::Media),
            "{rel}"
        );
        assert!(!seen.ex.is_scan, "{rel}");
    }
}

#[test]
fn a_scan_in_a_photo_zip_named_after_its_form_is_that_forms_scan() {
    let rel = &files("sealed")[0];
    let seen = run(rel, "活动照片.zip/统计表（盖章）.jpg", "");
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::StatisticsForm, DocForm::Scan)
    );
    assert_eq!(seen.ex.sealed, Some(true));
}

#[test]
fn a_file_named_as_a_photo_is_a_photo_whatever_it_shows() {
    let rel = &files("sealed")[0];
    let seen = run(rel, "活动现场照片3.jpg", "报送推荐表");
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::Photo, DocForm::Media)
    );
}

#[test]
fn a_name_with_both_form_and_photo_words_goes_by_what_it_shows() {
    let name = "特色群众性主题实践活动现场.jpg";
    let photo = run(EVENT_PHOTOS[0], name, "");
    assert_eq!(
        (photo.kind, photo.form),
        (DocumentKind::Photo, DocForm::Media)
    );
    let scan = run(&files("sealed")[0], name, "");
    assert_eq!(
        (scan.kind, scan.form),
        (DocumentKind::RecommendationForm, DocForm::Scan)
    );
}

#[test]
fn scan_with_a_plain_name_takes_its_kind_from_the_subject() {
    let seen = run(
        &files("sealed")[1],
        "IMG_20250505_0930.jpg",
        "南京市科技局报送推荐表",
    );
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::RecommendationForm, DocForm::Scan)
    );
    assert_eq!(seen.ex.sealed, Some(true));
}

#[test]
fn screenshot_of_the_form_table_is_that_form_not_coverage() {
    let rel = "extra/屏幕截图 2025-05-06 143512.png";
    let seen = run(
        rel,
        "屏幕截图 2025-05-06 143512.png",
        "报送2025年科技活动周推荐表",
    );
    assert!(seen.ex.ruled_table, "{:?}", seen.ex);
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::RecommendationForm, DocForm::Scan)
    );
    // Unstamped: the pipeline asks for the seal, as for any unsealed scan.
    assert_eq!(seen.ex.sealed, Some(false));
    let seen = run(rel, "屏幕截图 2025-05-06 143512.png", "");
    assert_eq!((seen.kind, seen.form), (DocumentKind::Other, DocForm::Scan));
    // Saved from WeChat, the name says nothing: a page all the same.
    let seen = run(
        "extra/mmexport1746512345678.jpg",
        "mmexport1746512345678.jpg",
        "统计表",
    );
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::StatisticsForm, DocForm::Scan)
    );
}

#[test]
fn screenshot_of_a_news_page_is_coverage_and_in_a_photo_zip_a_photo() {
    let rel = "extra/Screenshot_20250518_103544.jpg";
    let seen = run(rel, "Screenshot_20250518_103544.jpg", "报送推荐表");
    assert!(!seen.ex.ruled_table);
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::MediaCoverage, DocForm::Media)
    );
    let seen = run(rel, "活动照片.zip/Screenshot_20250518_103544.jpg", "");
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::Photo, DocForm::Media)
    );
}

fn not_editable(s: &Seen) -> Vec<String> {
    classify::problems(&s.file, &s.ex, s.kind, s.form)
        .into_iter()
        .filter(|p| p.code == ProblemCode::ElectronicNotEditable)
        .map(|p| p.message)
        .collect()
}

#[test]
fn form_exported_to_pdf_is_neither_electronic_nor_a_scan() {
    for (rel, kind) in [
        ("extra/推荐表.pdf", DocumentKind::RecommendationForm),
        ("extra/统计表.pdf", DocumentKind::StatisticsForm),
    ] {
        let name = rel.trim_start_matches("extra/");
        let seen = run(rel, name, "");
        assert!(!seen.ex.is_scan, "{rel}");
        assert_eq!((seen.kind, seen.form), (kind, DocForm::Other), "{rel}");
        let problems = not_editable(&seen);
        assert_eq!(problems.len(), 1, "{rel}");
        assert!(problems[0].contains(name), "{}", problems[0]);
        assert!(
            problems[0].contains("电子版请发送可编辑的Word/Excel文件；扫描件需加盖公章"),
            "{}",
            problems[0]
        );
    }
}

#[test]
fn exported_pdf_does_not_meet_the_electronic_requirement() {
    let config = config();
    let deadline = config
        .campaigns
        .iter()
        .flat_map(|c| &c.deadlines)
        .find(|d| d.id.as_str() == "recommend")
        .expect("recommend deadline");
    let seen = run("extra/推荐表.pdf", "推荐表.pdf", "");
    let got = Sent {
        arrived_at: chrono::Utc::now(),
        late: false,
        documents: vec![SentDoc {
            path: "推荐表.pdf".to_owned(),
            kind: seen.kind,
            form: seen.form,
            sha256: Sha256::of(b"export"),
            sealed: seen.ex.sealed,
            items: None,
            problems: Vec::new(),
        }],
        problems: Vec::new(),
    };
    let missing = status::unit_status(deadline, &OrgId::from("nj-kjj"), &[got]).missing;
    assert!(missing.iter().any(|m| m == "推荐表电子版"), "{missing:?}");
    assert!(
        missing.iter().any(|m| m == "推荐表盖章扫描件"),
        "{missing:?}"
    );
}

#[test]
fn exported_pdf_of_a_summary_report_is_still_its_electronic_copy() {
    let seen = run("extra/总结报告.pdf", "总结报告.pdf", "");
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::SummaryReport, DocForm::Electronic)
    );
    assert!(not_editable(&seen).is_empty());
}

#[test]
fn report_pdf_with_event_photos_pasted_in_is_not_a_scan() {
    let seen = run("extra/总结报告（含活动照片）.pdf", "总结报告.pdf", "");
    assert!(!seen.ex.is_scan, "{:?}", seen.ex);
    assert_eq!(seen.ex.sealed, None);
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::SummaryReport, DocForm::Electronic)
    );
}

#[test]
fn scanned_pdf_of_a_form_is_its_scan_without_the_export_problem() {
    let seen = run("extra/scan.pdf", "推荐表.pdf", "");
    assert!(seen.ex.is_scan);
    assert_eq!(
        (seen.kind, seen.form),
        (DocumentKind::RecommendationForm, DocForm::Scan)
    );
    assert_eq!(seen.ex.sealed, Some(true));
    assert!(not_editable(&seen).is_empty());
}

/// The plain 推荐表 of tests/fixtures/forms, as the other layouts must read.
fn plain_rows() -> serde_json::Value {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms/tuijian.xlsx"),
    )
    .expect("tuijian.xlsx");
    let file = FileEntry {
        filename: "推荐表.xlsx".into(),
        path: "推荐表.xlsx".into(),
        declared_type: None,
        media_type: media_type("x.xlsx").into(),
        sha256: Sha256::of(&data),
        data,
        problems: Vec::new(),
    };
    let ex = extract(&file, &forms(), &Limits::default());
    serde_json::to_value(&ex.table.expect("table").rows).unwrap()
}

#[test]
fn form_with_instructions_sheet_reordered_columns_or_a_remarks_column_reads_right() {
    let want = plain_rows();
    for rel in [
        "extra/tuijian_instructions_first.xlsx",
        "extra/tuijian_reordered_with_note.xlsx",
        "extra/tuijian_note_column.xlsx",
    ] {
        let seen = run(rel, "推荐表.xlsx", "");
        assert_eq!(
            (seen.kind, seen.form),
            (DocumentKind::RecommendationForm, DocForm::Electronic),
            "{rel}"
        );
        let table = seen.ex.table.as_ref().expect("table");
        assert_eq!(serde_json::to_value(&table.rows).unwrap(), want, "{rel}");
        assert!(
            seen.ex
                .problems
                .iter()
                .all(|p| p.code != ProblemCode::FieldMissing),
            "{rel}: {:?}",
            seen.ex.problems
        );
        assert!(not_editable(&seen).is_empty());
    }
}

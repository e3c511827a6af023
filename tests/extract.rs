//! Reads the form fixtures (tests/fixtures/forms, made by make_forms.py with
//! openpyxl, python-docx and LibreOffice) and compares with golden JSON.
//! `BLESS=1 cargo test --test extract` rewrites the goldens after a reviewed change.

use std::path::{Path, PathBuf};

use baosong::config::{Config, FormDef, Limits};
use baosong::extract::{Extraction, ReadAs, extract};
use baosong::intake::FileEntry;
use baosong::types::Sha256;
use serde_json::{Value, json};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms")
}

fn forms() -> Vec<FormDef> {
    Config::example(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("example config")
        .forms
}

fn media_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xls" => "application/vnd.ms-excel",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "doc" => "application/msword",
        "pdf" => "application/pdf",
        // WPS names the sniffer may not know: extract goes by the bytes.
        _ => "application/octet-stream",
    }
}

fn read(name: &str) -> Extraction {
    let data = std::fs::read(dir().join(name)).expect("fixture");
    let file = FileEntry {
        filename: name.to_owned(),
        path: name.to_owned(),
        declared_type: None,
        media_type: media_type(name).to_owned(),
        sha256: Sha256::of(&data),
        data,
        problems: Vec::new(),
    };
    extract(&file, &forms(), &Limits::default())
}

/// The golden view: what the report shows of an extraction.
fn view(x: &Extraction) -> Value {
    json!({
        "read_as": x.read_as,
        "table": x.table,
        "unit": x.unit,
        "problems": x.problems,
        "text_start": x.text.chars().take(80).collect::<String>(),
    })
}

fn golden(name: &str) {
    let got = view(&read(name));
    let path = dir().join(format!("{name}.expected.json"));
    if std::env::var_os("BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} missing", path.display())),
    )
    .unwrap();
    assert_eq!(
        got,
        want,
        "{name}: got\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
}

macro_rules! goldens {
    ($($test:ident => $file:literal,)*) => {
        $(#[test]
        fn $test() {
            golden($file);
        })*
    };
}

goldens! {
    tuijian_xlsx => "tuijian.xlsx",
    tuijian_xls => "tuijian.xls",
    tuijian_et => "tuijian.et",
    tuijian_ods => "tuijian.ods",
    tuijian_docx => "tuijian.docx",
    tuijian_doc => "tuijian.doc",
    tuijian_wps => "tuijian.wps",
    tongji_xlsx => "tongji.xlsx",
    tongji_xls => "tongji.xls",
    tongji_ods => "tongji.ods",
    tongji_docx => "tongji.docx",
    tongji_doc => "tongji.doc",
    tongji_units_xlsx => "tongji_units.xlsx",
    tongji_formula_xlsx => "tongji_formula.xlsx",
    tuijian_problems_xlsx => "tuijian_problems.xlsx",
    budget_xlsx_is_not_a_form => "budget.xlsx",
    tuijian_template_xlsx => "tuijian_template.xlsx",
    tongji_side_docx => "tongji_side.docx",
    report_pdf_text_layer => "report.pdf",
}

/// The seed forms as make_forms.py writes them, value by value.
fn seed_recommendations() -> Vec<[&'static str; 6]> {
    vec![
        [
            "1",
            "玄武区科普嘉年华",
            "组织科普展品展示、科学实验秀和院士报告会，面向青少年和社区居民普及人工智能与低空经济知识。",
            "2025年5月18日，南京市玄武区科技馆",
            "南京市科学技术局",
            "张明 13812345678",
        ],
        [
            "2",
            "江阴市科技工作者日座谈会",
            "邀请一线科技工作者代表座谈，交流科研经验，宣传科学家精神。",
            "2025年5月30日，江阴市科技馆",
            "南京市科学技术局",
            "李华 0510-86861234",
        ],
        [
            "3",
            "姑苏科普进社区",
            "在社区开展防灾减灾、健康科普讲座和互动体验活动。",
            "2025年5月20日 苏州市姑苏区平江街道",
            "南京市科学技术局",
            "王芳，025-83236071",
        ],
    ]
}

#[test]
fn seed_recommendation_form_reads_back_exactly_from_every_format() {
    let keys = ["seq", "name", "summary", "time_place", "unit", "contact"];
    for file in [
        "tuijian.xlsx",
        "tuijian.xls",
        "tuijian.et",
        "tuijian.ods",
        "tuijian.docx",
        "tuijian.doc",
        "tuijian.wps",
    ] {
        let x = read(file);
        let table = x.table.unwrap_or_else(|| panic!("{file}: no table"));
        assert_eq!(table.form, "推荐表", "{file}");
        let rows = table.rows.unwrap();
        assert_eq!(rows.len(), 3, "{file}");
        for (row, want) in rows.iter().zip(seed_recommendations()) {
            for (k, w) in keys.iter().zip(want) {
                assert_eq!(row[*k].text, w, "{file} {k}");
            }
            assert_eq!(row["seq"].value, json!(w_seq(want[0])), "{file}");
        }
        assert_eq!(x.unit.as_deref(), Some("南京市科学技术局"), "{file}");
        assert!(x.problems.is_empty(), "{file}: {:?}", x.problems);
    }
}

fn w_seq(s: &str) -> i64 {
    s.parse().unwrap()
}

#[test]
fn seed_statistics_form_reads_back_exactly_from_every_format() {
    let want: [(&str, Value); 19] = [
        ("events", json!(12)),
        ("fund_central", json!(12.5)),
        ("fund_provincial", json!(30)),
        ("fund_city", json!(8.6)),
        ("fund_county", json!(0)),
        ("fund_enterprise", json!(5)),
        ("fund_in_kind", json!(2.4)),
        ("fund_other", json!(1)),
        ("staff_fulltime", json!(45)),
        ("staff_scientists", json!(320)),
        ("staff_volunteers", json!(150)),
        ("staff_other", json!(20)),
        ("public_offline", json!(56000)),
        ("public_online", json!(120000)),
        ("media_outlets", json!(15)),
        ("media_reports", json!(42)),
        ("open_venues", json!(6)),
        ("open_institutes", json!(4)),
        ("open_universities", json!(2)),
    ];
    for file in [
        "tongji.xlsx",
        "tongji.xls",
        "tongji.ods",
        "tongji.docx",
        "tongji.doc",
        "tongji_formula.xlsx",
    ] {
        let x = read(file);
        let table = x.table.unwrap_or_else(|| panic!("{file}: no table"));
        assert_eq!(table.form, "统计表", "{file}");
        let fields = table.fields.unwrap();
        for (k, v) in &want {
            assert_eq!(fields.get(*k).map(|f| &f.value), Some(v), "{file} {k}");
        }
        assert_eq!(fields["unit"].text, "南京市科学技术局", "{file}");
        assert_eq!(x.unit.as_deref(), Some("南京市科学技术局"), "{file}");
        assert!(x.problems.is_empty(), "{file}: {:?}", x.problems);
    }
}

#[test]
fn a_file_with_its_type_wrongly_declared_is_read_by_its_bytes() {
    let data = std::fs::read(dir().join("tuijian.xlsx")).unwrap();
    let file = FileEntry {
        filename: "推荐表.doc".into(),
        path: "推荐表.doc".into(),
        declared_type: Some("application/msword".into()),
        media_type: "application/msword".into(),
        sha256: Sha256::of(&data),
        data,
        problems: Vec::new(),
    };
    let x = extract(&file, &forms(), &Limits::default());
    assert_eq!(x.read_as.map(ReadAs::as_str), Some("xlsx"));
    assert_eq!(x.table.and_then(|t| t.row_count()), Some(3));
}

#[test]
fn garbage_is_a_problem_not_a_panic() {
    let mut data = std::fs::read(dir().join("tuijian.doc")).unwrap();
    data.truncate(3000);
    let file = FileEntry {
        filename: "坏.doc".into(),
        path: "坏.doc".into(),
        declared_type: None,
        media_type: "application/msword".into(),
        sha256: Sha256::of(&data),
        data,
        problems: Vec::new(),
    };
    let x = extract(&file, &forms(), &Limits::default());
    assert!(x.table.is_none());
    assert!(
        x.problems
            .iter()
            .any(|p| p.code.as_str() == "file_unreadable"),
        "{:?}",
        x.problems
    );
}

#[test]
fn pdf_text_layer_reads_in_reading_order() {
    let x = read("report.pdf");
    assert!(x.table.is_none());
    assert!(!x.is_scan);
    for want in [
        "南京市2025年全国科技活动周和全国科技工作者日活动总结报告",
        // Quote marks drawn by a font of their own are placed by glyph widths,
        // which the reader does not compute: they may land later in the line.
        "南京市科学技术局围绕矢志创新，共建科技强国主题",
        "参与群众5.6万人次",
        "一、主要做法。二、活动成效。三、下一步打算。",
    ] {
        assert!(x.text.contains(want), "{want} not in {}", x.text);
    }
}

/// Truncated and bit-flipped copies of every fixture: each read ends with a
/// result (maybe a problem), never a panic or a hang.
#[test]
fn mutilated_files_never_panic() {
    let forms = forms();
    let limits = Limits {
        extract_timeout_secs: 5,
        ..Limits::default()
    };
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".json") && !n.ends_with(".py"))
        .collect();
    names.sort();
    for name in names {
        let original = std::fs::read(dir().join(&name)).unwrap();
        let len = original.len();
        let mut variants: Vec<Vec<u8>> = [len / 3, len / 2, len - len / 10]
            .iter()
            .map(|&n| original[..n].to_vec())
            .collect();
        for seed in 1..=6usize {
            let mut v = original.clone();
            let mut x = seed.wrapping_mul(2_654_435_761) % len;
            for _ in 0..8 {
                v[x] ^= 0x5A;
                x = (x.wrapping_mul(31) + 977) % len;
            }
            variants.push(v);
        }
        for data in variants {
            let file = FileEntry {
                filename: name.clone(),
                path: name.clone(),
                declared_type: None,
                media_type: media_type(&name).to_owned(),
                sha256: Sha256::of(&data),
                data,
                problems: Vec::new(),
            };
            let started = std::time::Instant::now();
            let _ = extract(&file, &forms, &limits);
            assert!(started.elapsed().as_secs() < 10, "{name} took too long");
        }
    }
}

#[test]
fn row_count_is_exposed_for_per_unit_limits() {
    // 青岛 allows at most 3 activities per 区市; the pipeline compares with this.
    let x = read("tuijian_problems.xlsx");
    assert_eq!(x.table.and_then(|t| t.row_count()), Some(4));
    let x = read("tongji.xlsx");
    assert_eq!(x.table.and_then(|t| t.row_count()), None);
}

//! Charsets a real mailbox holds, against a reference decoding. The mails in
//! tests/fixtures/charsets are written by Python's standard `email` package
//! (make_charsets.py), the way OA systems and scripts write them, and
//! expected.json holds what Python's `email` and `codecs` make of each.

use std::path::PathBuf;

use baosong::config::Limits;
use baosong::intake::{self, Intake, OwnIdentity};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charsets")
}

fn parse(name: &str) -> Intake {
    let raw = std::fs::read(dir().join(name)).unwrap();
    intake::parse(&raw, &Limits::default(), &OwnIdentity::default())
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[name].clone()
}

/// Checks a mail against Python's reading of it, field by field.
fn assert_matches_reference(name: &str) {
    let want = expected(name);
    let got = parse(name);
    assert_eq!(
        got.header.subject.as_deref(),
        want["subject"].as_str(),
        "{name}: subject"
    );
    let want_name = want["from_name"].as_str().filter(|n| !n.is_empty());
    assert_eq!(
        got.header.from_name.as_deref(),
        want_name,
        "{name}: from name"
    );
    let files: Vec<&str> = got.files.iter().map(|f| f.filename.as_str()).collect();
    let want_files: Vec<&str> = want["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files, want_files, "{name}: files");
    assert_eq!(
        got.body_text,
        want["body"].as_str().unwrap(),
        "{name}: body"
    );
}

#[test]
fn python_eucgb2312_cn_subject_is_decoded() {
    // Header(subject, "gb2312") writes `=?eucgb2312_cn?b?…?=`, folded into two
    // words; formataddr and the Header-encoded file name do the same.
    let i = parse("python_eucgb2312_cn.eml");
    assert_eq!(
        i.header.subject.as_deref(),
        Some("南京市科学技术局关于报送2025年科技活动周重点活动推荐表（第二批）的函")
    );
    assert_eq!(i.header.from_name.as_deref(), Some("南京市科技局人才处"));
    assert_eq!(i.files[0].filename, "南京市推荐表.xlsx");
    assert_matches_reference("python_eucgb2312_cn.eml");
}

#[test]
fn python_big5_tw_names_are_decoded() {
    assert_matches_reference("python_big5_tw.eml");
}

#[test]
fn python_hz_subject_and_body_are_decoded() {
    assert_matches_reference("python_hz.eml");
}

#[test]
fn python_euc_kr_and_iso_2022_jp_mail_is_decoded() {
    assert_matches_reference("python_euc_kr.eml");
    assert_matches_reference("python_iso_2022_jp.eml");
}

#[test]
fn raw_latin1_subject_is_read_in_the_declared_charset() {
    let i = parse("raw_latin1_subject.eml");
    assert_eq!(i.header.subject.as_deref(), Some("Frösche und Kräuter"));
    assert_matches_reference("raw_latin1_subject.eml");
}

#[test]
fn raw_big5_headers_are_read_in_the_declared_big5_not_gb18030() {
    assert_matches_reference("raw_big5_subject_declared.eml");
}

#[test]
fn raw_utf8_subject_stays_utf8_beside_a_gbk_body() {
    assert_matches_reference("raw_utf8_subject_gbk_body.eml");
}

#[test]
fn unknown_label_is_sniffed_utf8_then_gb18030_then_declared() {
    assert_matches_reference("unknown_label_utf8_bytes.eml");
    assert_matches_reference("unknown_label_gbk_bytes.eml");
    assert_matches_reference("unknown_label_declared_latin1.eml");
}

#[test]
fn every_fixture_has_a_reference_and_matches_it() {
    let mut count = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(expected(name).is_object(), "{name}: no reference");
            assert_matches_reference(name);
            count += 1;
        }
    }
    assert_eq!(count, 11);
}

//! Runs `intake::parse` over every mail of the corpus in tests/fixtures/mail:
//! none panics, each takes under a second, and what each one tests holds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use baosong::config::Limits;
use baosong::intake::{self, Intake, OwnIdentity};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail")
}

fn own() -> OwnIdentity {
    OwnIdentity {
        addresses: vec![
            "kjtrcc83236071@163.com".into(),
            "jskxdxb@163.com".into(),
            "kepuyue@cast.example.cn".into(),
        ],
        message_id_domain: "baosong.kjt.example.cn".into(),
    }
}

fn parse_with(name: &str, limits: &Limits) -> Intake {
    let raw = std::fs::read(dir().join(name)).unwrap();
    intake::parse(&raw, limits, &own())
}

fn parse(name: &str) -> Intake {
    parse_with(name, &Limits::default())
}

fn paths(i: &Intake) -> Vec<&str> {
    i.files.iter().map(|f| f.path.as_str()).collect()
}

fn codes(i: &Intake) -> Vec<&str> {
    i.files
        .iter()
        .flat_map(|f| f.problems.iter().map(|p| p.code.as_str()))
        .chain(i.problems.iter().map(|p| p.code.as_str()))
        .collect()
}

#[test]
fn every_fixture_parses_quickly_without_panic() {
    let mut count = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let raw = std::fs::read(&path).unwrap();
            let start = Instant::now();
            let i = intake::parse(&raw, &Limits::default(), &own());
            assert!(start.elapsed() < Duration::from_secs(1), "{path:?}");
            assert!(i.header.message_id.is_some(), "{path:?}");
            assert!(i.header.received.is_some(), "{path:?}");
            count += 1;
        }
    }
    assert!(count >= 32, "only {count} fixtures");
}

#[test]
fn foxmail_gbk_names_and_subject_are_decoded() {
    let i = parse("foxmail_gbk_recommend_xlsx.eml");
    assert_eq!(
        i.header.subject.as_deref(),
        Some("南京市科学技术局2025年科技活动周重点活动推荐表")
    );
    assert_eq!(i.header.from.as_deref(), Some("njkjjrcc@nanjing.gov.cn"));
    assert_eq!(i.header.from_name.as_deref(), Some("南京市科技局人才处"));
    assert_eq!(paths(&i), ["南京市推荐表.xlsx"]);
    assert!(i.files[0].media_type.contains("spreadsheetml"));
    assert!(i.body_text.contains("王敏 025-68787211"));
    assert!(i.auto_generated.is_none());
}

#[test]
fn qq_gb18030_attachment_name_is_decoded() {
    let i = parse("qq_web_gb18030_recommend_docx.eml");
    assert_eq!(i.header.subject.as_deref(), Some("徐州市科协推荐表"));
    assert_eq!(paths(&i), ["徐州市科协推荐表.docx"]);
    assert_eq!(
        i.files[0].declared_type.as_deref(),
        Some("application/octet-stream")
    );
    assert!(i.files[0].media_type.contains("wordprocessingml"));
}

#[test]
fn outlook_rfc2231_continuation_in_gbk_is_decoded() {
    let i = parse("outlook_rfc2231_continuation_gbk.eml");
    assert_eq!(
        paths(&i),
        ["常州市科学技术局关于推荐2025年科技活动周重点活动的推荐表.docx"]
    );
}

#[test]
fn outlook_inline_logo_is_not_a_document_but_a_photo_is() {
    let i = parse("outlook_rfc2231_recommend_logo_late.eml");
    assert_eq!(paths(&i), ["苏州市科技局推荐表.xlsx"]);
    let i = parse("scan_jpg_red_seal_photo_and_logo.eml");
    assert_eq!(paths(&i), ["推荐表盖章扫描件.jpg", "活动照片1.jpg"]);
}

#[test]
fn raw_8bit_gbk_headers_are_decoded() {
    let i = parse("outlook_express_raw_gbk_filename.eml");
    assert_eq!(i.header.subject.as_deref(), Some("连云港市科协统计表"));
    assert_eq!(i.header.from_name.as_deref(), Some("连云港市科协"));
    assert_eq!(paths(&i), ["连云港统计表.xls"]);
    assert_eq!(i.files[0].media_type, "application/vnd.ms-excel");
    assert!(i.body_text.contains("马骏"));
}

#[test]
fn big5_mail_is_decoded() {
    let i = parse("big5_hk_unit_recommend.eml");
    assert_eq!(
        i.header.subject.as_deref(),
        Some("香港科學館 全國科普月活動推薦表")
    );
    assert_eq!(paths(&i), ["推薦表.docx"]);
    assert!(i.body_text.contains("請查收"));
}

#[test]
fn apple_and_thunderbird_names_are_decoded() {
    assert_eq!(
        paths(&parse("applemail_octet_stream_docx.eml")),
        ["推荐表（东南大学科协）.docx"]
    );
    assert_eq!(
        paths(&parse("thunderbird_rfc2231_summary_and_scan.eml")),
        ["南京大学科协总结报告.docx", "推荐表扫描件.pdf"]
    );
}

#[test]
fn forwarded_message_files_are_kept_under_its_name() {
    let i = parse("forwarded_rfc822_with_attachments.eml");
    assert_eq!(
        paths(&i),
        [
            "邗江区推荐表.eml/扬州邗江区推荐表.xlsx",
            "邗江区推荐表.eml/推荐表盖章扫描件.jpg"
        ]
    );
    assert!(i.body_text.contains("邗江区推荐表及盖章件见附件"));
}

#[test]
fn wps_et_and_wps_are_sniffed_as_office_binaries() {
    let i = parse("foxmail_wps_et_and_pdf.eml");
    let types: Vec<_> = i.files.iter().map(|f| f.media_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "application/vnd.ms-excel",
            "application/msword",
            "application/pdf"
        ]
    );
}

#[test]
fn zips_with_gbk_and_utf8_names_are_unpacked() {
    let i = parse("zip_windows_gbk_names.eml");
    assert_eq!(
        paths(&i),
        [
            "南通市科协报送材料.zip/报送材料/推荐表_南通科协.xlsx",
            "南通市科协报送材料.zip/报送材料/推荐表盖章扫描件.jpg"
        ]
    );
    let i = parse("zip_utf8_flag.eml");
    assert_eq!(
        paths(&i),
        [
            "淮安市科协.zip/淮安市科协/淮安市科协统计表.docx",
            "淮安市科协.zip/淮安市科协/活动照片1.jpg"
        ]
    );
    let i = parse("zip_nested.eml");
    assert_eq!(
        paths(&i),
        [
            "宿迁材料.zip/推荐表.zip/宿迁推荐表.xlsx",
            "宿迁材料.zip/说明.txt"
        ]
    );
}

#[test]
fn nested_zip_beyond_depth_limit_is_a_problem() {
    let limits = Limits {
        max_archive_depth: 1,
        ..Limits::default()
    };
    let i = parse_with("zip_nested.eml", &limits);
    assert_eq!(
        paths(&i),
        ["宿迁材料.zip/推荐表.zip", "宿迁材料.zip/说明.txt"]
    );
    assert_eq!(codes(&i), ["archive_too_deep"]);
}

#[test]
fn zip_bomb_is_stopped() {
    let start = Instant::now();
    let i = parse("zip_bomb.eml");
    assert!(start.elapsed() < Duration::from_millis(800));
    assert_eq!(paths(&i), ["统计表.zip"]);
    assert_eq!(codes(&i), ["archive_ratio"]);
    let limits = Limits {
        max_compression_ratio: 100_000,
        max_unpacked_bytes: 5 << 20,
        ..Limits::default()
    };
    assert_eq!(
        codes(&parse_with("zip_bomb.eml", &limits)),
        ["archive_too_large"]
    );
}

#[test]
fn bad_files_get_problems() {
    let cases = [
        ("zip_encrypted.eml", "archive_encrypted"),
        ("rar_attachment.eml", "archive_unsupported"),
        ("encrypted_xlsx.eml", "encrypted_file"),
        ("foxmail_xlsm_macro.eml", "macro_file"),
        ("qq_exe_attachment.eml", "executable"),
    ];
    for (name, code) in cases {
        let i = parse(name);
        assert_eq!(codes(&i), [code], "{name}");
        let message = &i.files[0].problems[0].message;
        assert!(
            message.contains(&i.files[0].filename) || message.contains(".zip"),
            "{message}"
        );
    }
    assert_eq!(
        parse("zip_encrypted.eml").files[0].path,
        "泰州市科协统计表.zip/泰州市科协统计表.xlsx"
    );
}

#[test]
fn large_attachment_links_are_found() {
    let i = parse("qq_web_large_attachment_link.eml");
    assert_eq!(i.links.len(), 2);
    assert!(i.links[0].starts_with("https://wx.mail.qq.com/ftn/download?func=3&k="));
    assert_eq!(codes(&i), ["large_attachment_link"]);
    let i = parse("netease163_large_attachment_link.eml");
    assert_eq!(i.links.len(), 2);
    assert!(i.files.is_empty());
}

#[test]
fn machine_mail_is_auto_generated() {
    let cases = [
        ("qq_autoreply.eml", "subject 自动回复"),
        ("outlook_out_of_office.eml", "header Auto-Submitted"),
        ("postfix_bounce.eml", "header Return-Path"),
        ("netease163_bounce.eml", "header Return-Path"),
        ("mailing_list_newsletter.eml", "header List-"),
        ("own_ack_loop.eml", "sender is our own address"),
    ];
    for (name, reason) in cases {
        let got = parse(name).auto_generated;
        assert!(
            got.as_deref().is_some_and(|r| r.starts_with(reason)),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn units_mail_is_not_auto_generated() {
    for name in [
        "reply_to_our_ack_with_attachment.eml",
        "netease163_no_attachment_forgot.eml",
        "foxmail_gbk_statistics_xls_scan_pdf.eml",
        "kepuyue_late_statistics.eml",
    ] {
        assert!(parse(name).auto_generated.is_none(), "{name}");
    }
}

#[test]
fn bodies_and_empty_cases() {
    let i = parse("netease163_html_only_docx.eml");
    assert!(
        i.body_text
            .contains("1. 南京“科技工作者日”院士专家进社区\n2. 青少年科学嘉年华"),
        "{}",
        i.body_text
    );
    let i = parse("netease163_empty_body_attachment_only.eml");
    assert!(i.body_text.is_empty());
    assert_eq!(paths(&i), ["常州市科协统计表.xlsx"]);
    let i = parse("netease163_no_attachment_forgot.eml");
    assert!(i.files.is_empty());
    assert!(i.body_text.contains("附件见后"));
}

#[test]
fn received_time_is_the_delivery_time() {
    let i = parse("late_recommend_received_header.eml");
    assert_eq!(
        i.header.date.unwrap().to_rfc3339(),
        "2025-05-06T23:52:10+08:00"
    );
    assert_eq!(
        i.header.received.unwrap().to_rfc3339(),
        "2025-05-07T00:03:12+08:00"
    );
}

#[test]
fn oversized_message_keeps_headers_only() {
    let limits = Limits {
        max_message_bytes: 50_000,
        ..Limits::default()
    };
    let i = parse_with("thunderbird_rfc2231_summary_and_scan.eml", &limits);
    assert_eq!(
        i.header.subject.as_deref(),
        Some("南京大学科协-总结报告及推荐表扫描件")
    );
    assert!(i.files.is_empty());
    assert_eq!(codes(&i), ["message_too_large"]);
}

#[test]
fn too_many_files_are_cut_with_a_problem() {
    let limits = Limits {
        max_attachments: 1,
        ..Limits::default()
    };
    let i = parse_with("foxmail_wps_et_and_pdf.eml", &limits);
    assert_eq!(i.files.len(), 1);
    assert_eq!(codes(&i), ["too_many_attachments"]);
}

#[test]
fn garbage_and_truncated_input_does_not_panic() {
    let raw = std::fs::read(dir().join("forwarded_rfc822_with_attachments.eml")).unwrap();
    for cut in (0..raw.len()).step_by(997) {
        intake::parse(&raw[..cut], &Limits::default(), &own());
    }
    intake::parse(b"", &Limits::default(), &own());
    intake::parse(&[0xFF; 4096], &Limits::default(), &own());
}

/// Sender text is hostile input: what intake hands on holds no control
/// characters, escape sequences or NUL.
#[test]
fn hostile_sender_text_is_made_safe() {
    let raw = b"From: =?utf-8?b?5bygCuS4iQ==?= <z@example.cn>\r\n\
To: jskxdxb@163.com\r\n\
Subject: =?utf-8?q?x=0D=0ABcc:_evil@example.com?=\r\n\
Date: Mon, 05 May 2025 10:12:00 +0800\r\n\
Message-ID: <a\x00b@example.cn>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
\xe9\x99\x84\xe4\xbb\xb6\x00\xe8\xa7\x81\xe5\x90\x8e\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment;\r\n\
\tfilename=\"=?utf-8?q?=1B=5B31m=E6=8E=A8=E8=8D=90=E8=A1=A8=1B=5B0m=2Exlsx?=\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGVsbG8=\r\n\
--b--\r\n";
    let i = intake::parse(raw, &Limits::default(), &own());
    assert_eq!(i.header.from_name.as_deref(), Some("张 三"));
    assert_eq!(i.header.subject.as_deref(), Some("x Bcc: evil@example.com"));
    assert_eq!(i.header.message_id.as_deref(), Some("ab@example.cn"));
    assert_eq!(i.body_text, "附件见后");
    assert_eq!(paths(&i), ["推荐表.xlsx"]);
    assert_eq!(i.files[0].filename, "推荐表.xlsx");
}

/// A spreadsheet cut short is still the spreadsheet the unit sent: named
/// as what it claims to be, classified by its name, reported unreadable.
#[test]
fn truncated_xlsx_is_an_unreadable_form_not_a_corrupt_archive() {
    use baosong::classify::classify;
    use baosong::extract::Extraction;
    use baosong::types::{DocForm, DocumentKind};
    use lettre::message::header::ContentType;
    use lettre::message::{Attachment, Message, MultiPart, SinglePart};

    let forms = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forms");
    let mut xlsx = std::fs::read(forms.join("tuijian.xlsx")).unwrap();
    xlsx.truncate(xlsx.len() / 2);
    let xlsx_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    let mail = Message::builder()
        .from("njkjjrcc@nanjing.gov.cn".parse().unwrap())
        .to("jskxdxb@163.com".parse().unwrap())
        .subject("南京市科技局材料")
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain("见附件".to_owned()))
                .singlepart(
                    Attachment::new("推荐表.xlsx".to_owned())
                        .body(xlsx, ContentType::parse(xlsx_type).unwrap()),
                ),
        )
        .unwrap()
        .formatted();
    let i = intake::parse(&mail, &Limits::default(), &own());
    assert_eq!(paths(&i), ["推荐表.xlsx"]);
    let file = &i.files[0];
    assert_eq!(file.media_type, xlsx_type);
    assert_eq!(codes(&i), ["file_unreadable"]);
    assert_eq!(
        file.problems[0].message,
        "《推荐表.xlsx》文件已损坏，无法打开，请确认文件能正常打开后重新发送"
    );
    let subject = i.header.subject.as_deref().unwrap_or_default();
    assert_eq!(
        classify(file, &Extraction::default(), subject, &[]),
        (DocumentKind::RecommendationForm, DocForm::Electronic)
    );
}

//! Outbound mail against a real SMTP server (aiosmtpd), a real browser
//! (chromium) and a real spreadsheet program (LibreOffice, when installed).

// Each test binary uses part of the shared sink.
#[allow(dead_code)]
#[path = "common/smtp.rs"]
mod smtp;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use baosong::config::{Layout, Sender, SmtpConfig, SmtpTransport, TlsMode};
use baosong::export::{self, ExportColumn, ExportData, ExportForm, ExportRow};
use baosong::model::FieldValue;
use baosong::outbound::compose::Stamp;
use baosong::outbound::transport::MailSender;
use baosong::outbound::{
    MailKind, Templates, Transport, compose, new_message_id, sample, to_bytes,
};
use baosong::types::MailAddress;
use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, FixedOffset, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use smtp::{SinkOptions, SmtpSink};

const FROM: &str = "kjt@baosong.example.cn";

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        transport: SmtpTransport::Smtp,
        host: Some("127.0.0.1".into()),
        port: Some(port),
        tls: TlsMode::None,
        from: Sender::parse(&format!("江苏省科技活动周报送 <{FROM}>")).unwrap(),
        reply_to: Some(Sender::parse(FROM).unwrap()),
        message_id_domain: "baosong.example.cn".into(),
        ..SmtpConfig::default()
    }
}

fn stamp<'a>(cfg: &'a SmtpConfig, id: &'a str) -> Stamp<'a> {
    Stamp {
        from: &cfg.from.0,
        reply_to: cfg.reply_to.as_ref().map(|r| &r.0),
        message_id: id,
        date: Utc::now(),
    }
}

fn addr(s: &str) -> MailAddress {
    MailAddress::parse(s).unwrap()
}

fn transport(cfg: &SmtpConfig, password: Option<&str>) -> Transport {
    Transport::from_config(cfg, password).expect("transport builds")
}

async fn send(t: &Transport, m: &lettre::Message) -> Result<(), baosong::outbound::SendError> {
    let out = compose::Outgoing::new(m);
    t.send(&out.envelope_from, &out.recipients, &out.bytes)
        .await
}

fn header<'a>(m: &'a mail_parser::Message<'a>, name: &str) -> String {
    m.header_raw(name).unwrap_or_default().trim().to_owned()
}

fn cst(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

#[tokio::test]
async fn ack_has_recipient_threading_and_auto_submitted_headers() {
    let sink = SmtpSink::start(SinkOptions::default());
    let cfg = smtp_config(sink.port);
    let mut data = sample::ack();
    data.original_message_id = Some("orig-1@nanjing.gov.cn".into());
    data.original_references = vec!["<root-0@nanjing.gov.cn>".into()];
    data.problems = vec!["邮件正文提到的“超大附件”链接无法下载，请直接添加附件".into()];
    let id = new_message_id(&cfg.message_id_domain, MailKind::Ack, Utc::now());
    let m = compose::ack(&Templates::builtin(), &data, &stamp(&cfg, &id)).unwrap();
    send(&transport(&cfg, None), &m).await.unwrap();

    let got = sink.wait_for(1);
    assert_eq!(got[0].rcpt_tos, ["njkjjrcc@nanjing.gov.cn"]);
    assert_eq!(got[0].mail_from, FROM);
    assert!(
        got[0].bytes == to_bytes(&m),
        "the stored bytes are what is sent"
    );
    let msg = MessageParser::default().parse(&got[0].bytes).unwrap();
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("njkjjrcc@nanjing.gov.cn"));
    assert_eq!(to.name(), Some("王明"));
    assert_eq!(
        msg.message_id(),
        Some(id.trim_matches(['<', '>'])),
        "Message-ID is the one fixed at enqueue"
    );
    assert_eq!(header(&msg, "In-Reply-To"), "<orig-1@nanjing.gov.cn>");
    assert_eq!(
        header(&msg, "References"),
        "<root-0@nanjing.gov.cn> <orig-1@nanjing.gov.cn>"
    );
    assert_eq!(header(&msg, "Auto-Submitted"), "auto-replied");
    assert_eq!(header(&msg, "X-Auto-Response-Suppress"), "All");
    assert!(msg.header_raw("Precedence").is_none());
    assert_eq!(
        msg.subject(),
        Some("回执：已收到《南京市科技活动周推荐表》")
    );
    assert_eq!(
        msg.reply_to().unwrap().first().unwrap().address(),
        Some(FROM)
    );

    let text = msg.body_text(0).unwrap();
    let html = msg.body_html(0).unwrap();
    assert_eq!(msg.text_body.len(), 1);
    assert_eq!(msg.html_body.len(), 1);
    assert!(text.contains("2025年5月5日 14:03"), "{text}");
    assert!(text.contains("贵单位（南京市科学技术局）"), "{text}");
    assert!(
        text.contains("✘ 推荐表（电子版）：南京市推荐表.xlsx"),
        "{text}"
    );
    assert!(text.contains("读取3项活动"), "{text}");
    assert!(
        text.contains("需要修改：第3项活动简介126字，超过100字"),
        "{text}"
    );
    assert!(text.contains("材料.zip/附件2.pdf"), "{text}");
    assert!(text.contains("未见公章"), "{text}");
    assert!(text.contains("超大附件"), "{text}");
    assert!(
        text.contains("需修改后重新发送：推荐表电子版、推荐表盖章扫描件"),
        "{text}"
    );
    assert!(!text.contains("已齐全"), "{text}");
    assert!(text.contains("本次截止时间：2025年5月6日24:00"), "{text}");
    assert!(html.contains("南京市推荐表.xlsx") && html.contains("推荐表盖章扫描件"));
    assert!(!html.contains("<script") && !html.contains("<style"));
}

#[tokio::test]
async fn reminder_is_auto_generated() {
    let sink = SmtpSink::start(SinkOptions::default());
    let cfg = smtp_config(sink.port);
    let mut data = sample::reminder();
    data.to = vec![addr("a@xz.gov.cn"), addr("b@xz.gov.cn")];
    let id = new_message_id(&cfg.message_id_domain, MailKind::Reminder, Utc::now());
    let m = compose::reminder(&Templates::builtin(), &data, &stamp(&cfg, &id)).unwrap();
    send(&transport(&cfg, None), &m).await.unwrap();

    let got = sink.wait_for(1);
    assert_eq!(got[0].rcpt_tos, ["a@xz.gov.cn", "b@xz.gov.cn"]);
    let msg = MessageParser::default().parse(&got[0].bytes).unwrap();
    assert_eq!(header(&msg, "Auto-Submitted"), "auto-generated");
    assert_eq!(header(&msg, "X-Auto-Response-Suppress"), "All");
    assert!(msg.header_raw("In-Reply-To").is_none());
    let subject = msg.subject().unwrap();
    assert!(subject.contains("2025年5月6日24:00截止"), "{subject}");
    let text = msg.body_text(0).unwrap();
    assert!(text.starts_with("徐州市科学技术协会："), "{text}");
    assert!(text.contains("距截止还有3天"), "{text}");
    assert!(text.contains("1. 推荐表盖章扫描件"), "{text}");
    assert!(text.contains("已收到：推荐表电子版"), "{text}");
    assert!(msg.body_html(0).unwrap().contains("推荐表盖章扫描件"));
}

/// A 统计表 from three units (one wrote 无 for a number) and a 推荐表 with two activities.
fn export_data() -> ExportData {
    let fv = |v: serde_json::Value, t: &str| FieldValue {
        value: v,
        text: t.into(),
    };
    let stat = |org: &str, events: i64, fund: f64, fund_text: &str, public: i64| ExportRow {
        org_name: org.into(),
        values: BTreeMap::from([
            ("unit".to_owned(), fv(org.into(), org)),
            ("events".to_owned(), fv(events.into(), &events.to_string())),
            ("fund_city".to_owned(), fv(fund.into(), fund_text)),
            (
                "public_offline".to_owned(),
                fv(public.into(), &public.to_string()),
            ),
        ]),
        source_file: format!("{org}统计表.xlsx"),
        received_at: cst("2025-06-18T10:00:00+08:00"),
    };
    let mut no_fund = stat("徐州市科学技术局", 7, 0.0, "无", 3000);
    no_fund
        .values
        .insert("fund_city".into(), fv(serde_json::Value::Null, "无"));
    let col = |key: &str, label: &str, unit: Option<&str>| ExportColumn {
        key: key.into(),
        label: label.into(),
        unit: unit.map(str::to_owned),
    };
    let rec = |seq: i64, name: &str, summary: &str| {
        BTreeMap::from([
            ("seq".to_owned(), fv(seq.into(), &seq.to_string())),
            ("name".to_owned(), fv(name.into(), name)),
            ("summary".to_owned(), fv(summary.into(), summary)),
            (
                "unit".to_owned(),
                fv("南京市科学技术局".into(), "南京市科学技术局"),
            ),
        ])
    };
    ExportData {
        forms: vec![
            ExportForm {
                name: "推荐表".into(),
                layout: Layout::Rows,
                columns: vec![
                    col("seq", "序号", None),
                    col("name", "活动名称", None),
                    col("summary", "活动简介", None),
                    col("time_place", "举办时间、地点", None),
                    col("unit", "推荐单位", None),
                    col("contact", "联系人及电话", None),
                ],
                rows: [
                    (1, "科技馆开放日", "面向中小学生开放展厅"),
                    (2, "院士讲堂", "邀请院士作科普报告"),
                ]
                .into_iter()
                .map(|(s, n, su)| ExportRow {
                    org_name: "南京市科学技术局".into(),
                    values: rec(s, n, su),
                    source_file: "南京市推荐表.xlsx".into(),
                    received_at: cst("2025-05-05T14:03:00+08:00"),
                })
                .collect(),
            },
            ExportForm {
                name: "统计表".into(),
                layout: Layout::Fields,
                columns: vec![
                    col("unit", "地方/部门（盖章）", None),
                    col("events", "开展次数", Some("次")),
                    col("fund_city", "市级财政经费投入情况", Some("万元")),
                    col("public_offline", "线下活动群众参与数量", Some("人次")),
                ],
                rows: vec![
                    stat("南京市科学技术局", 120, 35.5, "35.5万元", 100_000),
                    stat("无锡市科学技术协会", 25, 12.25, "12.25", 17_500),
                    no_fund,
                ],
            },
        ],
        status: vec![sample::digest().campaigns[0].deadlines[0].clone()],
    }
}

fn sheet(xlsx: &[u8], name: &str) -> calamine::Range<Data> {
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(xlsx.to_vec())).unwrap();
    wb.worksheet_range(name).unwrap()
}

fn number(d: &Data) -> f64 {
    match d {
        Data::Float(f) => *f,
        Data::Int(i) => *i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

/// Checks the 统计表 sheet read back: numbers are numbers, the 合计 row holds the sums.
fn check_statistics(range: &calamine::Range<Data>) {
    let rows: Vec<_> = range.rows().collect();
    assert_eq!(rows[0][0], Data::String("单位".into()));
    assert_eq!(rows[0][2], Data::String("开展次数（次）".into()));
    assert_eq!(
        rows[0][3],
        Data::String("市级财政经费投入情况（万元）".into())
    );
    assert_eq!(number(&rows[1][2]), 120.0);
    assert_eq!(
        rows[3][3],
        Data::String("无".into()),
        "what the unit wrote is kept"
    );
    let total = rows
        .iter()
        .find(|r| r[0] == Data::String("合计".into()))
        .unwrap();
    assert_eq!(number(&total[2]), 152.0);
    assert_eq!(number(&total[3]), 47.75);
    assert_eq!(number(&total[4]), 120_500.0);
}

#[tokio::test]
async fn digest_has_table_and_xlsx_attachment() {
    let sink = SmtpSink::start(SinkOptions::default());
    let cfg = smtp_config(sink.port);
    let mut data = sample::digest();
    data.to = vec![addr("a@kjt.example.cn"), addr("b@kx.example.cn")];
    data.attention[1].reason = "发送失败：550 no such user".into();
    let xlsx = export::workbook(&export_data()).unwrap();
    let id = new_message_id(&cfg.message_id_domain, MailKind::Digest, Utc::now());
    let m = compose::digest(&Templates::builtin(), &data, Some(&xlsx), &stamp(&cfg, &id)).unwrap();
    send(&transport(&cfg, None), &m).await.unwrap();

    let got = sink.wait_for(1);
    assert_eq!(got[0].rcpt_tos, ["a@kjt.example.cn", "b@kx.example.cn"]);
    let msg = MessageParser::default().parse(&got[0].bytes).unwrap();
    assert_eq!(header(&msg, "Auto-Submitted"), "auto-generated");
    let html = msg.body_html(0).unwrap();
    assert!(html.contains("<table"), "{html}");
    for org in ["南京市科学技术局", "无锡市科学技术协会", "徐州市科学技术局"]
    {
        assert!(html.contains(org), "{org}");
    }
    assert!(html.contains("550 no such user"));
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("尚未报送：徐州市科学技术局"), "{text}");

    let att = msg.attachments().next().expect("an attachment");
    assert_eq!(att.attachment_name(), Some("报送情况汇总20250620.xlsx"));
    assert_eq!(att.contents(), xlsx.as_slice());
    check_statistics(&sheet(att.contents(), "统计表"));
    let rec = sheet(att.contents(), "推荐表");
    assert_eq!(rec.height(), 3);
    assert_eq!(rec.get((2, 2)), Some(&Data::String("院士讲堂".into())));
    let status = sheet(att.contents(), "报送情况");
    assert_eq!(
        status.get((3, 1)),
        Some(&Data::String("徐州市科学技术局".into()))
    );
    assert_eq!(status.get((3, 2)), Some(&Data::String("缺".into())));
}

#[test]
fn workbook_opens_in_libreoffice_and_sums_match() {
    let xlsx = export::workbook(&export_data()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("汇总.xlsx");
    std::fs::write(&path, &xlsx).unwrap();
    if Command::new("soffice").arg("--version").output().is_err() {
        eprintln!("soffice not installed: LibreOffice check skipped");
        return;
    }
    // All sheets to CSV (UTF-8, comma), formulas recalculated by LibreOffice.
    let status = Command::new("soffice")
        .arg(format!(
            "-env:UserInstallation=file://{}/lo",
            dir.path().display()
        ))
        .args([
            "--headless",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1",
            "--outdir",
        ])
        .arg(dir.path())
        .arg(&path)
        .output()
        .unwrap();
    let csv_path = dir.path().join("汇总-统计表.csv");
    let csv = std::fs::read_to_string(&csv_path).unwrap_or_else(|_| {
        panic!(
            "LibreOffice wrote no {}: {}",
            csv_path.display(),
            String::from_utf8_lossy(&status.stderr)
        )
    });
    let total = csv
        .lines()
        .find(|l| l.starts_with("合计"))
        .expect("合计 row");
    let cells: Vec<&str> = total.split(',').collect();
    assert_eq!(&cells[2..5], ["152", "47.75", "120500"], "{csv}");
}

/// Measures the digest inside the frame once it has loaded: where each
/// section starts, whether anything is wider than the frame, the text of
/// every table cell. `--dump-dom` prints the host page after this ran.
const MEASURE: &str = r#"<script>
window.addEventListener('load', function () {
  var frame = document.getElementById('digest');
  var doc = frame.contentDocument;
  var top = function (el) { return el ? Math.round(el.getBoundingClientRect().top) : -1; };
  var items = Array.prototype.slice.call(doc.querySelectorAll('td.item'));
  var m = {
    width: frame.contentWindow.innerWidth,
    page: doc.documentElement.scrollWidth,
    attention: top(doc.getElementById('attention')),
    changes: top(doc.getElementById('changes')),
    matrix: top(doc.querySelector('div.matrix')),
    itemsRight: Math.max.apply(null, items.map(function (e) { return Math.round(e.getBoundingClientRect().right); })),
    items: items.map(function (e) { return e.textContent; }),
    cells: Array.prototype.slice.call(doc.querySelectorAll('td')).map(function (e) { return e.textContent.trim(); })
  };
  var pre = document.createElement('pre');
  pre.id = 'metrics';
  pre.textContent = JSON.stringify(m);
  document.body.appendChild(pre);
});
</script>"#;

/// The digest in headless Chromium, in a frame `width`×`height` CSS px
/// (Chromium's window is at least 500 px wide; a frame can be a phone):
/// a screenshot of the frame, and the page's own measurements. None
/// without Chromium.
fn render_digest(
    html: &str,
    width: u32,
    height: u32,
) -> Option<(image::RgbImage, serde_json::Value)> {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        assert!(
            std::env::var_os("BAOSONG_REQUIRE_CHROMIUM").is_none(),
            "BAOSONG_REQUIRE_CHROMIUM is set but chromium is not installed"
        );
        eprintln!("chromium not installed: digest rendering check skipped");
        return None;
    };
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("digest-{width}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("digest.html"), html).unwrap();
    let page = out.join("host.html");
    let png = out.join("digest.png");
    let srcdoc = html.replace('&', "&amp;").replace('"', "&quot;");
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html><html><body style=\"margin:0\"><iframe id=\"digest\" \
             style=\"border:0;display:block;width:{width}px;height:{height}px\" \
             srcdoc=\"{srcdoc}\"></iframe>{MEASURE}</body></html>"
        ),
    )
    .unwrap();
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().unwrap();
    let window = format!("--window-size={},{height}", width.max(500));
    let run = |extra: &str| {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                &window,
                extra,
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap()
    };
    let shot = run(&format!("--screenshot={}", png.display()));
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (width.max(500), height));
    let img = image::imageops::crop_imm(&img, 0, 0, width, height).to_image();
    img.save(out.join("frame.png")).unwrap();
    let dom = String::from_utf8_lossy(&run("--dump-dom").stdout).into_owned();
    let metrics = dom
        .split("<pre id=\"metrics\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the page measured itself: {dom}"));
    let metrics = metrics
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some((img, serde_json::from_str(&metrics).unwrap()))
}

/// Pixels near `rgb` (each channel within 40) in the rows `ys`.
fn pixels_like(img: &image::RgbImage, rgb: [u8; 3], ys: std::ops::Range<u32>) -> usize {
    img.enumerate_pixels()
        .filter(|(_, y, _)| ys.contains(y))
        .filter(|(_, _, p)| p.0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 40))
        .count()
}

#[test]
fn the_digest_reads_at_phone_and_desktop_width_in_chromium() {
    let html = Templates::builtin().digest(&sample::digest()).unwrap().html;
    const RED: [u8; 3] = [0xc5, 0x22, 0x1f];
    let number =
        |m: &serde_json::Value, k: &str| m[k].as_i64().unwrap_or_else(|| panic!("{k} in {m}"));

    // A phone, 390 px: nothing is wider than the screen (the matrix scrolls
    // in its own box), and the first screen opens with 需处理, item #42 first.
    let Some((img, m)) = render_digest(&html, 390, 844) else {
        return;
    };
    assert_eq!(number(&m, "width"), 390, "{m}");
    assert!(number(&m, "page") <= 390, "the page scrolls sideways: {m}");
    assert!(number(&m, "itemsRight") <= 390, "an item is cut off: {m}");
    let items = m["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{m}");
    assert!(items[0].as_str().unwrap().contains("#42"), "{m}");
    assert!(items[1].as_str().unwrap().contains("#S3"), "{m}");
    let (attention, changes, matrix) = (
        number(&m, "attention"),
        number(&m, "changes"),
        number(&m, "matrix"),
    );
    assert!(0 < attention && attention < 200, "{m}");
    assert!(
        attention < changes && changes < matrix,
        "sections out of order: {m}"
    );
    let red = pixels_like(&img, RED, 0..(attention as u32 + 400));
    assert!(
        red > 300,
        "only {red} red pixels: no 需处理 heading and item bars on the first screen"
    );

    // A desktop: the matrix's coloured cells are on the page, the units in cells.
    let Some((img, m)) = render_digest(&html, 1200, 1600) else {
        return;
    };
    assert!(number(&m, "page") <= 1200, "{m}");
    let cells: Vec<&str> = m["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for org in ["南京市科学技术局", "无锡市科学技术协会", "徐州市科学技术局"]
    {
        assert!(cells.contains(&org), "{org} in a table cell: {cells:?}");
    }
    let top = number(&m, "matrix") as u32;
    let coloured: usize = [[0xe6, 0xf4, 0xea], [0xfc, 0xe8, 0xe6], [0xf3, 0xe8, 0xfd]]
        .into_iter()
        .map(|c| pixels_like(&img, c, top..1600))
        .sum();
    assert!(
        coloured > 5_000,
        "only {coloured} pixels of coloured cells: no matrix?"
    );
}

#[tokio::test]
async fn transient_smtp_failure_is_retryable() {
    let mut sink = SmtpSink::start(SinkOptions::default());
    let cfg = smtp_config(sink.port);
    let t = transport(&cfg, None);
    let m = compose::reminder(
        &Templates::builtin(),
        &sample::reminder(),
        &stamp(
            &cfg,
            &new_message_id(&cfg.message_id_domain, MailKind::Reminder, Utc::now()),
        ),
    )
    .unwrap();

    sink.refuse("451 4.3.0 Try again later");
    let err = send(&t, &m).await.unwrap_err();
    assert_eq!(err.code(), Some(451), "{err}");
    assert!(err.is_transient(), "{err}");

    // Server down: a connection failure is worth retrying too.
    sink.accept();
    sink.stop();
    let err = send(&t, &m).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), None);

    // Back up: the same transport delivers.
    sink.restart();
    send(&t, &m).await.unwrap();
    assert!(sink.wait_for(1)[0].bytes == to_bytes(&m));
}

#[tokio::test]
async fn permanent_rejection_is_not_retryable() {
    let sink = SmtpSink::start(SinkOptions::default());
    let cfg = smtp_config(sink.port);
    let t = transport(&cfg, None);
    let m = compose::ack(
        &Templates::builtin(),
        &sample::ack(),
        &stamp(
            &cfg,
            &new_message_id(&cfg.message_id_domain, MailKind::Ack, Utc::now()),
        ),
    )
    .unwrap();
    sink.refuse("550 5.1.1 No such user here");
    let err = send(&t, &m).await.unwrap_err();
    assert_eq!(err.code(), Some(550), "{err}");
    assert!(!err.is_transient(), "{err}");

    let err = t
        .send(FROM, &["not an address".into()], &to_bytes(&m))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
}

#[tokio::test]
async fn file_transport_writes_eml() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SmtpConfig {
        transport: SmtpTransport::File,
        directory: dir.path().join("outbox"),
        ..smtp_config(0)
    };
    let t = Transport::from_config(&cfg, None).unwrap();
    let id = new_message_id(&cfg.message_id_domain, MailKind::Ack, Utc::now());
    let m = compose::ack(&Templates::builtin(), &sample::ack(), &stamp(&cfg, &id)).unwrap();
    send(&t, &m).await.unwrap();
    // Sending again (a retry) replaces the file rather than adding one.
    send(&t, &m).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let name = format!("{}.eml", id.trim_matches(['<', '>']));
    assert_eq!(files, std::slice::from_ref(&name));
    let bytes = std::fs::read(dir.path().join("outbox").join(name)).unwrap();
    assert_eq!(bytes, to_bytes(&m));
}

#[tokio::test]
async fn starttls_with_ca_file_and_auth_works() {
    let sink = SmtpSink::start(SinkOptions {
        starttls: true,
        auth: Some(("kjt".into(), "s3cret-授权码".into())),
    });
    let cfg = SmtpConfig {
        tls: TlsMode::Starttls,
        ca_file: sink.ca_file.clone(),
        username: Some("kjt".into()),
        ..smtp_config(sink.port)
    };

    let report = baosong::outbound::transport::check(&cfg, Some("s3cret-授权码"))
        .await
        .unwrap();
    assert!(
        report.contains("encrypted") && !report.contains("not encrypted"),
        "{report}"
    );
    assert!(report.contains("logged in as kjt"), "{report}");
    assert!(!report.contains("s3cret"), "{report}");

    let m = compose::ack(
        &Templates::builtin(),
        &sample::ack(),
        &stamp(
            &cfg,
            &new_message_id(&cfg.message_id_domain, MailKind::Ack, Utc::now()),
        ),
    )
    .unwrap();
    send(&transport(&cfg, Some("s3cret-授权码")), &m)
        .await
        .unwrap();
    let got = sink.wait_for(1);
    assert!(got[0].tls, "delivered over TLS");
    assert_eq!(got[0].login.as_deref(), Some("kjt"));

    // A wrong password is the server's 535: no mail can go until the
    // config is fixed, so every mail waits (none is given up on).
    let err = send(&transport(&cfg, Some("wrong")), &m).await.unwrap_err();
    assert!(err.is_setup(), "{err}");
    assert!(err.to_string().contains("535"), "{err}");
    let err = baosong::outbound::transport::check(&cfg, Some("wrong"))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("wrong"), "{err}");

    // Without the CA the certificate is not trusted.
    let untrusted = SmtpConfig {
        ca_file: None,
        ..cfg.clone()
    };
    let err = send(&transport(&untrusted, Some("s3cret-授权码")), &m)
        .await
        .unwrap_err();
    assert!(
        err.is_setup(),
        "a certificate problem waits for the config: {err}"
    );
    assert_eq!(sink.received().len(), 1);
}

#[test]
fn broken_template_is_a_startup_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for name in Templates::file_names() {
        std::fs::copy(builtin.join(name), dir.path().join(name)).unwrap();
    }
    Templates::load(Some(dir.path())).expect("the shipped templates load");

    // A syntax error: an unclosed block on line 3.
    let path = dir.path().join("reminder.txt.j2");
    let good = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let broken = format!("{}\n{}\n{{% if missing %}}\n", lines[0], lines[1]);
    std::fs::write(&path, broken).unwrap();
    let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("reminder.txt.j2"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("line "), "{err}");

    // A misspelt variable is caught at startup too, with its line.
    let typo = good.replacen("{{ org_name }}：", "\n\n{{ org_nmae }}：", 1);
    std::fs::write(&path, typo).unwrap();
    let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("reminder.txt.j2 line 5"), "{err}");
    assert!(err.contains("unknown variable"), "{err}");

    // A missing file names the file.
    std::fs::remove_file(&path).unwrap();
    let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("reminder.txt.j2"), "{err}");
}

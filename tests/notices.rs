//! The five seed notices (`../shared/seeds/`), each run as a campaign from
//! its config in `examples/notices/` alone. Mail as units send it — on
//! time, late, incomplete, breaking a rule of the notice, from an address
//! nobody knows, To one contact mailbox and Cc the other — goes through the
//! daemon in-process (Maildirs, SQLite, a scripted mail server, a fixed
//! clock), and each test reads what people are told: the ack, the `status`
//! matrix, the digest and the exported workbook. They must agree.
//!
//! Attachments: `tests/fixtures/notices/` (made by `make_notices.py`), the
//! stamped scans of `tests/fixtures/mail/files/`, the videos of
//! `tests/fixtures/media/`; photos of a given size are padded here.

use std::io::{Cursor, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baosong::actions::Services;
use baosong::clock::{Clock, FixedClock};
use baosong::commands;
use baosong::config::Config;
use baosong::daemon::{self, RunOptions};
use baosong::directory::Directory;
use baosong::outbound::transport::{MailSender, SendError};
use baosong::outbound::{DigestData, DigestDeadline, DigestRow};
use calamine::Reader as _;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use tokio_util::sync::CancellationToken;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// A wall-clock time in China, `2025-05-05 09:12`.
fn cst(s: &str) -> DateTime<FixedOffset> {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .from_local_datetime(&naive)
        .unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    cst(s).with_timezone(&Utc)
}

/// A mail as handed to the server: envelope sender, recipients, bytes.
type Handed = (String, Vec<String>, Vec<u8>);

/// A mail server that takes everything.
#[derive(Default)]
struct Smtp {
    sent: Mutex<Vec<Handed>>,
}

#[async_trait::async_trait]
impl MailSender for Smtp {
    async fn send(&self, from: &str, to: &[String], bytes: &[u8]) -> Result<(), SendError> {
        self.sent
            .lock()
            .unwrap()
            .push((from.to_owned(), to.to_vec(), bytes.to_vec()));
        Ok(())
    }
}

/// One mail we sent, read back.
#[derive(Debug, Clone)]
struct Out {
    envelope_from: String,
    to: Vec<String>,
    subject: String,
    text: String,
    auto_submitted: String,
}

impl Smtp {
    fn all(&self) -> Vec<Out> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(from, to, bytes)| {
                let m = mail_parser::MessageParser::default().parse(bytes).unwrap();
                Out {
                    envelope_from: from.clone(),
                    to: to.clone(),
                    subject: m.subject().unwrap_or_default().to_owned(),
                    text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                    auto_submitted: m
                        .header_raw("Auto-Submitted")
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                }
            })
            .collect()
    }

    /// The acks sent to `addr`, oldest first.
    fn acks_to(&self, addr: &str) -> Vec<Out> {
        self.all()
            .into_iter()
            .filter(|o| o.auto_submitted == "auto-replied" && o.to == [addr.to_owned()])
            .collect()
    }

    /// The one ack sent to `addr`.
    fn ack_to(&self, addr: &str) -> Out {
        let acks = self.acks_to(addr);
        assert_eq!(acks.len(), 1, "one ack to {addr}: {acks:#?}");
        acks.into_iter().next().unwrap()
    }

    fn reminders_to(&self, addr: &str) -> Vec<Out> {
        self.all()
            .into_iter()
            .filter(|o| o.subject.starts_with("提醒") && o.to.contains(&addr.to_owned()))
            .collect()
    }
}

/// One notice's campaign: its config file, with the store, the outbox and
/// Maildirs for its mailboxes in a temporary folder.
struct Notice {
    dir: tempfile::TempDir,
    config: Config,
    directory: Directory,
    clock: Arc<FixedClock>,
    smtp: Arc<Smtp>,
    seq: usize,
    /// Mail to deliver: when, to which mailboxes, the bytes.
    posted: Vec<(DateTime<FixedOffset>, Vec<String>, Vec<u8>)>,
}

impl Notice {
    fn load(name: &str) -> Notice {
        let path = Path::new(MANIFEST)
            .join("examples/notices")
            .join(format!("{name}.toml"));
        let mut config = Config::load(&path).unwrap();
        let directory = Directory::load(&config.organisations.file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        config.store.database = format!("sqlite://{}", root.join("b.db").display());
        config.store.archive = root.join("archive");
        config.smtp.directory = root.join("outbox");
        for mb in &mut config.mailboxes {
            let md = root.join("maildir").join(mb.name.as_str());
            for sub in ["new", "cur", "tmp"] {
                std::fs::create_dir_all(md.join(sub)).unwrap();
            }
            mb.imap = None;
            mb.maildir = Some(md);
        }
        Notice {
            dir,
            config,
            directory,
            clock: Arc::new(FixedClock::new(utc("2025-04-30 09:00"))),
            smtp: Arc::new(Smtp::default()),
            seq: 0,
            posted: Vec::new(),
        }
    }

    fn address(&self, mailbox: &str) -> String {
        self.config
            .mailboxes
            .iter()
            .find(|m| m.name.as_str() == mailbox)
            .unwrap()
            .address
            .clone()
    }

    async fn services(&self) -> Services {
        Services::open(
            self.config.clone(),
            self.directory.clone(),
            self.clock.clone(),
        )
        .await
        .unwrap()
    }

    /// `mail` is to reach each of `mailboxes` a few seconds after it was sent.
    fn post(&mut self, mailboxes: &[&str], mail: &Mail) {
        let at = cst(&mail.sent) + chrono::Duration::seconds(5);
        let boxes = mailboxes.iter().map(|m| (*m).to_owned()).collect();
        self.posted.push((at, boxes, mail.bytes()));
    }

    /// Delivers what was posted in the order it arrives (a copy per mailbox,
    /// with its own delivery headers), the daemon running once a minute
    /// after each arrival, as it would.
    async fn replay(&mut self, services: &Services) {
        let mut posted = std::mem::take(&mut self.posted);
        posted.sort_by_key(|(at, _, _)| *at);
        for (t, mailboxes, mail) in posted {
            for mb in &mailboxes {
                self.seq += 1;
                let addr = self.address(mb);
                let mut copy = format!(
                    "Delivered-To: {addr}\r\n\
                     Received: from mx.example.cn by mail for <{addr}>; {}\r\n",
                    t.format("%a, %-d %b %Y %H:%M:%S %z")
                )
                .into_bytes();
                copy.extend_from_slice(&mail);
                let name = format!("{}.M{}P1.notices", t.timestamp(), self.seq);
                let md = self.dir.path().join("maildir").join(mb);
                std::fs::write(md.join("new").join(name), copy).unwrap();
            }
            self.run(services, &(t + chrono::Duration::minutes(1)))
                .await;
        }
    }

    /// One `run --once` at `at`.
    async fn run(&self, services: &Services, at: &DateTime<FixedOffset>) {
        self.clock.set(at.with_timezone(&Utc));
        let sources = commands::mailbox_sources(services).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(120),
            daemon::run(
                services.clone(),
                sources,
                self.smtp.clone(),
                RunOptions { once: true },
                CancellationToken::new(),
            ),
        )
        .await
        .expect("a one-shot run ends")
        .expect("a one-shot run succeeds");
    }
}

// ---------------------------------------------------------------- mail

static MAIL_SEQ: AtomicUsize = AtomicUsize::new(0);

/// How a mail client writes a mail: header charset and its name.
#[derive(Clone, Copy)]
enum Client {
    /// Foxmail 7.2: GBK everywhere.
    Foxmail,
    /// 163 / QQ web mail, Outlook: UTF-8.
    Web,
}

/// A mail as a unit's contact writes it.
struct Mail {
    from: (String, String),
    to: Vec<String>,
    cc: Vec<String>,
    subject: String,
    sent: String,
    body: String,
    files: Vec<(String, Vec<u8>)>,
    client: Client,
}

fn mail(from_name: &str, from: &str, subject: &str, sent: &str) -> Mail {
    Mail {
        from: (from_name.to_owned(), from.to_owned()),
        to: Vec::new(),
        cc: Vec::new(),
        subject: subject.to_owned(),
        sent: sent.to_owned(),
        body: "您好！\r\n\r\n报送材料见附件，请查收。\r\n".to_owned(),
        files: Vec::new(),
        client: Client::Web,
    }
}

impl Mail {
    fn to(mut self, addr: &str) -> Self {
        self.to.push(addr.to_owned());
        self
    }

    fn cc(mut self, addr: &str) -> Self {
        self.cc.push(addr.to_owned());
        self
    }

    fn body(mut self, text: &str) -> Self {
        self.body = text.replace('\n', "\r\n");
        self
    }

    fn file(mut self, name: &str, data: Vec<u8>) -> Self {
        self.files.push((name.to_owned(), data));
        self
    }

    fn foxmail(mut self) -> Self {
        self.client = Client::Foxmail;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let n = MAIL_SEQ.fetch_add(1, Ordering::Relaxed);
        let (charset, mailer) = match self.client {
            Client::Foxmail => ("GBK", "Foxmail 7.2.25.375[cn]"),
            Client::Web => ("UTF-8", "Coremail Webmail Server Version 2023.1"),
        };
        let word = |s: &str| encoded_word(s, charset);
        let boundary = format!("----=_NextPart_000_{n:04}_01DBB5C2.5E3A7F10");
        let domain = self
            .from
            .1
            .rsplit_once('@')
            .map_or("example.cn", |(_, d)| d);
        let mut m = String::new();
        m.push_str(&format!(
            "From: {} <{}>\r\n",
            word(&self.from.0),
            self.from.1
        ));
        m.push_str(&format!("To: {}\r\n", self.to.join(", ")));
        if !self.cc.is_empty() {
            m.push_str(&format!("Cc: {}\r\n", self.cc.join(", ")));
        }
        m.push_str(&format!("Subject: {}\r\n", word(&self.subject)));
        m.push_str(&format!(
            "Date: {}\r\n",
            cst(&self.sent).format("%a, %-d %b %Y %H:%M:%S %z")
        ));
        m.push_str(&format!(
            "Message-ID: <{n}.{}@{domain}>\r\n",
            cst(&self.sent).timestamp()
        ));
        m.push_str(&format!("X-Mailer: {mailer}\r\nMIME-Version: 1.0\r\n"));
        let body = encode(&self.body, charset);
        if self.files.is_empty() {
            m.push_str(&format!(
                "Content-Type: text/plain; charset=\"{charset}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
                base64_lines(&body)
            ));
            return m.into_bytes();
        }
        m.push_str(&format!(
            "Content-Type: multipart/mixed;\r\n\tboundary=\"{boundary}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n"
        ));
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: text/plain; charset=\"{charset}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64_lines(&body)
        ));
        for (name, data) in &self.files {
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: {};\r\n\tname=\"{}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment;\r\n\tfilename=\"{}\"\r\n\r\n{}\r\n",
                media_type(name),
                word(name),
                word(name),
                base64_lines(data)
            ));
        }
        m.push_str(&format!("--{boundary}--\r\n"));
        m.into_bytes()
    }
}

fn encode(s: &str, charset: &str) -> Vec<u8> {
    if charset == "GBK" {
        encoding_rs::GBK.encode(s).0.into_owned()
    } else {
        s.as_bytes().to_vec()
    }
}

/// RFC 2047 `=?charset?B?…?=`.
fn encoded_word(s: &str, charset: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    format!("=?{charset}?B?{}?=", base64(&encode(s, charset)))
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_lines(data: &[u8]) -> String {
    let b = base64(data);
    let mut out = String::with_capacity(b.len() + b.len() / 38);
    for (i, c) in b.chars().enumerate() {
        if i > 0 && i % 76 == 0 {
            out.push_str("\r\n");
        }
        out.push(c);
    }
    out
}

fn media_type(name: &str) -> &'static str {
    match name
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "zip" => "application/x-zip-compressed",
        _ => "application/octet-stream",
    }
}

// ---------------------------------------------------------------- files

fn fixture(path: &str) -> Vec<u8> {
    let p: PathBuf = Path::new(MANIFEST).join("tests/fixtures").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An activity photo of about `bytes` bytes, different for each `n`: the
/// corpus photo with comment segments of noise, as a camera's metadata
/// makes a JPEG larger without changing the picture.
fn photo(n: u32, bytes: usize) -> Vec<u8> {
    let base = fixture("mail/files/活动照片1.jpg");
    let mut out = base[..2].to_vec();
    let mut state = 0x9E37_79B9_u32 ^ n.wrapping_mul(0x85EB_CA6B);
    let mut left = bytes.saturating_sub(base.len());
    while left > 4 {
        let len = left.min(65_535) - 2;
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((len + 2) as u16).to_be_bytes());
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out.push(state as u8);
        }
        left = left.saturating_sub(len + 4);
    }
    out.extend_from_slice(&base[2..]);
    out
}

/// A photo saved as PNG (about 0.5 MB), where 附件3 asks for JPG.
fn png_photo() -> Vec<u8> {
    let mut state = 7_u32;
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([(x / 3) as u8, (y / 2) as u8, (state & 0x3F) as u8 + 120])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A .zip as Windows' "发送到 → 压缩文件夹" makes it.
fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

// ---------------------------------------------------------------- reading

/// The number (`baosong show N`) of the message from `addr`.
async fn message_from(services: &Services, addr: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(&services.config.store.database)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE from_addr = $1")
        .bind(addr)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    id
}

async fn status(services: &Services, campaign: &str, deadline: &str) -> String {
    commands::status(services, Some(campaign), Some(deadline))
        .await
        .unwrap()
}

/// The matrix row of `org` in `status` output.
fn status_row<'a>(status: &'a str, org: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.trim_start().starts_with(org) && !l.contains("需修改："))
        .unwrap_or_else(|| panic!("a row for {org} in\n{status}"))
}

fn digest_deadline<'a>(d: &'a DigestData, name: &str) -> &'a DigestDeadline {
    d.campaigns
        .iter()
        .flat_map(|c| &c.deadlines)
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("deadline {name} in the digest"))
}

fn digest_row<'a>(d: &'a DigestDeadline, org: &str) -> &'a DigestRow {
    d.rows
        .iter()
        .find(|r| r.org_name == org)
        .unwrap_or_else(|| panic!("{org} in the digest of {}", d.name))
}

/// The consolidated workbook, read back.
struct Workbook(calamine::Xlsx<Cursor<Vec<u8>>>);

impl Workbook {
    async fn export(services: &Services) -> Workbook {
        let data = services.export_data().await.unwrap();
        let bytes = baosong::export::workbook(&data).unwrap();
        Workbook(calamine::open_workbook_from_rs(Cursor::new(bytes)).unwrap())
    }

    fn rows(&mut self, sheet: &str) -> Vec<Vec<String>> {
        let names = self.0.sheet_names();
        assert!(names.iter().any(|n| n == sheet), "{sheet} in {names:?}");
        let range = self.0.worksheet_range(sheet).unwrap();
        range
            .rows()
            .map(|r| r.iter().map(ToString::to_string).collect())
            .collect()
    }

    /// The row of `org` in a sheet, as header → cell.
    fn row(&mut self, sheet: &str, org: &str) -> Vec<(String, String)> {
        let rows = self.rows(sheet);
        let header = rows[0].clone();
        let row = rows
            .iter()
            .find(|r| r.iter().any(|c| c == org))
            .unwrap_or_else(|| panic!("{org} in {sheet}: {rows:?}"))
            .clone();
        header.into_iter().zip(row).collect()
    }
}

fn cell<'a>(row: &'a [(String, String)], header: &str) -> &'a str {
    row.iter()
        .find(|(h, _)| h == header)
        .map(|(_, c)| c.as_str())
        .unwrap_or_else(|| panic!("column {header} in {row:?}"))
}

/// What a unit hears and what every view of it says agree: the ack says
/// 已齐全 exactly when the unit is complete in the matrix, the digest and
/// the export, and each problem in the ack is listed in all three.
fn assert_told_everywhere(
    ack: &Out,
    status_row_problems: &[String],
    digest: &DigestRow,
    export: &[(String, String)],
) {
    let complete = ack.text.contains("已齐全");
    assert_eq!(
        complete, digest.complete,
        "ack:\n{}\ndigest: {digest:?}",
        ack.text
    );
    assert_eq!(
        cell(export, "是否齐全"),
        if complete { "是" } else { "否" },
        "{export:?}"
    );
    for line in ack.text.lines() {
        let line = line.trim();
        let Some(p) = line
            .strip_prefix("需要修改：")
            .or_else(|| line.strip_prefix("请注意："))
        else {
            continue;
        };
        assert!(!complete, "已齐全 with something to fix:\n{}", ack.text);
        assert!(
            status_row_problems.iter().any(|s| s == p),
            "{p} in status: {status_row_problems:?}"
        );
        assert!(
            digest.problems.iter().any(|s| s == p),
            "{p} in the digest: {:?}",
            digest.problems
        );
        assert!(
            cell(export, "需修改").lines().any(|s| s == p),
            "{p} in the export: {export:?}"
        );
    }
}

/// The problems `status` lists under a unit.
fn status_problems(status: &str, org: &str) -> Vec<String> {
    let head = format!("{org} 需修改：");
    let mut lines = status.lines().skip_while(|l| l.trim() != head);
    if lines.next().is_none() {
        return Vec::new();
    }
    lines
        .take_while(|l| l.starts_with("    - "))
        .map(|l| l.trim_start_matches("    - ").to_owned())
        .collect()
}

// ---------------------------------------------------------------- 江苏

const JS_KJT: &str = "kjtrcc83236071@163.com";
const JS_KX: &str = "jskxdxb@163.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jiangsu_recommendation_forms_scan_and_electronic_by_6_may() {
    let mut n = Notice::load("jiangsu");
    let s = n.services().await;
    let rec = || fixture("mail/files/推荐表盖章扫描件.jpg");

    // On time and complete, To the 科技厅 mailbox and Cc the 科协 one.
    let nj = "njkjjrcc@nanjing.gov.cn";
    let m = mail(
        "南京市科技局 王敏",
        nj,
        "南京市科技局报送科技活动周推荐表",
        "2025-05-05 09:12",
    )
    .to(JS_KJT)
    .cc(JS_KX)
    .file(
        "南京市推荐表.xlsx",
        fixture("notices/jiangsu/南京市推荐表.xlsx"),
    )
    .file("推荐表盖章扫描件.jpg", rec())
    .foxmail();
    n.post(&["kjt", "kx"], &m);
    // Only the scan: begun, not 未报.
    let wx = "wxkx_xcb@163.com";
    let m = mail(
        "无锡市科协",
        wx,
        "无锡市科协推荐表（盖章版）",
        "2025-05-05 15:30",
    )
    .to(JS_KX)
    .file("推荐表盖章版.pdf", fixture("mail/files/推荐表盖章版.pdf"));
    n.post(&["kx"], &m);
    // A scan without a seal, where the notice asks for a stamped one.
    let njkx = "njkxdyb@126.com";
    let m = mail(
        "南京市科协 李静",
        njkx,
        "南京市科协推荐表扫描件",
        "2025-05-06 08:30",
    )
    .to(JS_KX)
    .file("推荐表扫描件.pdf", fixture("mail/files/推荐表扫描件.pdf"));
    n.post(&["kx"], &m);
    // 活动简介 over 100 字: to fix.
    let sz = "szkjjrcc@suzhou.gov.cn";
    let m = mail(
        "苏州市科技局 朱琳",
        sz,
        "苏州市科技局推荐表",
        "2025-05-06 10:05",
    )
    .to(JS_KJT)
    .file(
        "苏州市科技局推荐表.xlsx",
        fixture("notices/jiangsu/苏州市科技局推荐表.xlsx"),
    )
    .file("苏州市推荐表盖章件.jpg", rec());
    n.post(&["kjt"], &m);
    // After 5月6日24:00: late.
    let zj = "zjkjjrc@zhenjiang.gov.cn";
    let m = mail(
        "镇江市科技局",
        zj,
        "镇江市科技局推荐表（补报）",
        "2025-05-07 09:05",
    )
    .to(JS_KJT)
    .file(
        "镇江市科技局推荐表.xlsx",
        fixture("notices/jiangsu/镇江市科技局推荐表.xlsx"),
    )
    .file("推荐表盖章扫描件.jpg", rec());
    n.post(&["kjt"], &m);
    // Nobody knows the sender, and nothing names a unit.
    let stranger = "zhangwei1987@qq.com";
    let m = mail("张伟", stranger, "科普进社区活动方案", "2025-05-05 20:41")
        .to(JS_KJT)
        .file("活动方案.docx", fixture("notices/jiangsu/活动方案.docx"));
    n.post(&["kjt"], &m);
    n.replay(&s).await;

    // The acks.
    let ack = n.smtp.ack_to(nj);
    assert_eq!(ack.envelope_from, JS_KJT, "answered from the To mailbox");
    assert!(ack.text.contains("本次所需材料已齐全"), "{}", ack.text);
    assert!(
        ack.text.contains("截止时间：2025年5月6日24:00"),
        "{}",
        ack.text
    );
    let ack_wx = n.smtp.ack_to(wx);
    assert_eq!(ack_wx.envelope_from, JS_KX);
    assert!(
        ack_wx.text.contains("尚缺：推荐表电子版"),
        "{}",
        ack_wx.text
    );
    assert!(!ack_wx.text.contains("已齐全"));
    let ack_njkx = n.smtp.ack_to(njkx);
    assert!(ack_njkx.text.contains("未见公章"), "{}", ack_njkx.text);
    assert!(
        ack_njkx
            .text
            .contains("《推荐表扫描件.pdf》中未检测到红色公章"),
        "{}",
        ack_njkx.text
    );
    assert!(
        ack_njkx.text.contains("需修改后重新发送：推荐表盖章扫描件"),
        "{}",
        ack_njkx.text
    );
    let ack_sz = n.smtp.ack_to(sz);
    assert!(ack_sz.text.contains("超过100字"), "{}", ack_sz.text);
    assert!(
        ack_sz.text.contains("需修改后重新发送：推荐表电子版"),
        "{}",
        ack_sz.text
    );
    let ack_zj = n.smtp.ack_to(zj);
    assert!(ack_zj.text.contains("逾期"), "{}", ack_zj.text);
    assert!(
        ack_zj.text.contains("本次所需材料已齐全"),
        "{}",
        ack_zj.text
    );
    assert!(n.smtp.acks_to(stranger).is_empty(), "no ack to a stranger");

    // The matrix.
    let st = status(&s, "js-2025", "recommend").await;
    assert!(
        st.contains("（截止 2025年5月6日24:00）: 33 个单位，齐全 2，部分 3，未报 28，逾期 1"),
        "{st}"
    );
    let header = st
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        header,
        ["单位", "推荐表盖章扫描件", "推荐表电子版", "需修改"]
    );
    assert_eq!(
        status_row(&st, "南京市科学技术局")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["南京市科学技术局", "已收·章", "5月5日", "已收", "5月5日"]
    );
    assert!(status_row(&st, "无锡市科学技术协会").contains("—"), "{st}");
    assert!(status_row(&st, "镇江市科学技术局").contains("逾期"), "{st}");
    assert!(
        status_row(&st, "苏州市科学技术局").contains("需修改"),
        "{st}"
    );
    assert!(st.contains("需人工处理的邮件"), "{st}");
    assert!(st.contains(stranger), "{st}");

    // The digest and the export say the same.
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let d = digest_deadline(&digest, "特色群众性主题实践活动推荐表");
    assert_eq!(
        (d.counts.complete, d.counts.partial, d.counts.late),
        (2, 3, 1)
    );
    assert!(digest.attention.iter().any(|a| a.who.contains(stranger)));
    let mut wb = Workbook::export(&s).await;
    let sheet = "报送情况-特色群众性主题实践活动推荐表";
    for (org, addr) in [
        ("南京市科学技术局", nj),
        ("无锡市科学技术协会", wx),
        ("南京市科学技术协会", njkx),
        ("苏州市科学技术局", sz),
        ("镇江市科学技术局", zj),
    ] {
        let ack = n.smtp.ack_to(addr);
        let row = wb.row(sheet, org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
    let row = wb.row(sheet, "镇江市科学技术局");
    assert!(cell(&row, "推荐表电子版").starts_with("逾期"), "{row:?}");
    let activities = wb.rows("推荐表-特色群众性主题实践活动推荐表");
    assert!(
        activities
            .iter()
            .any(|r| r.iter().any(|c| c == "苏州青少年科学营")),
        "{activities:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jiangsu_summary_and_statistics_by_22_june_and_a_unit_named_only_in_its_report() {
    let mut n = Notice::load("jiangsu");
    let s = n.services().await;

    // Everything, To the 科协 mailbox and Cc the 科技厅 one.
    let xz = "xzkxdyb@163.com";
    let m = mail(
        "徐州市科协 张伟",
        xz,
        "徐州市科协科技活动周总结及统计表",
        "2025-06-18 16:20",
    )
    .to(JS_KX)
    .cc(JS_KJT)
    .file(
        "徐州市科协统计表.xlsx",
        fixture("notices/jiangsu/徐州市科协统计表.xlsx"),
    )
    .file("统计表扫描.jpg", fixture("mail/files/统计表扫描.jpg"))
    .file(
        "徐州市科协总结报告.docx",
        fixture("notices/jiangsu/徐州市科协总结报告.docx"),
    );
    n.post(&["kx", "kjt"], &m);
    // From a personal address; only the report names the unit.
    let personal = "13912345678@139.com";
    let m = mail("李华", personal, "科技活动周总结报告", "2025-06-19 11:02")
        .to(JS_KJT)
        .file("总结报告.docx", fixture("notices/jiangsu/总结报告.docx"));
    n.post(&["kjt"], &m);
    // 约 and 元 in a 万元 field: to fix.
    let wx = "wxkx_xcb@163.com";
    let m = mail("无锡市科协", wx, "无锡市科协统计表", "2025-06-20 09:30")
        .to(JS_KX)
        .file(
            "无锡市科协统计表.xlsx",
            fixture("notices/jiangsu/无锡市科协统计表.xlsx"),
        )
        .file("统计表盖章版.pdf", fixture("mail/files/统计表盖章版.pdf"));
    n.post(&["kx"], &m);
    // Late and incomplete.
    let cz = "czkx@czkx.org.cn";
    let m = mail("常州市科协", cz, "常州市科协统计表", "2025-06-23 08:40")
        .to(JS_KX)
        .file(
            "常州市科协统计表.xlsx",
            fixture("mail/files/常州市科协统计表.xlsx"),
        );
    n.post(&["kx"], &m);
    n.replay(&s).await;

    let ack = n.smtp.ack_to(xz);
    assert_eq!(ack.envelope_from, JS_KX);
    assert!(ack.text.contains("本次所需材料已齐全"), "{}", ack.text);
    assert!(ack.text.contains("2025年6月22日24:00"), "{}", ack.text);
    let ack_p = n.smtp.ack_to(personal);
    assert!(
        ack_p.text.contains("贵单位（江苏省计算机学会）"),
        "{}",
        ack_p.text
    );
    assert!(
        ack_p.text.contains("尚缺：统计表盖章扫描件、统计表电子版"),
        "{}",
        ack_p.text
    );
    let ack_wx = n.smtp.ack_to(wx);
    assert!(ack_wx.text.contains("约5000"), "{}", ack_wx.text);
    assert!(ack_wx.text.contains("30000元"), "{}", ack_wx.text);
    assert!(ack_wx.text.contains("尚缺：总结报告"), "{}", ack_wx.text);
    let ack_cz = n.smtp.ack_to(cz);
    assert!(ack_cz.text.contains("逾期"), "{}", ack_cz.text);

    // Where the unit came from is recorded with the evidence.
    let shown = commands::show(&s, message_from(&s, personal).await)
        .await
        .unwrap();
    assert!(
        shown.contains(
            "content: 总结报告.docx line “报送单位：江苏省计算机学会” names 江苏省计算机学会"
        ),
        "{shown}"
    );

    let st = status(&s, "js-2025", "summary").await;
    assert!(st.contains("齐全 1，部分 3，未报 29，逾期 1"), "{st}");
    assert!(status_row(&st, "江苏省计算机学会").contains("已收"), "{st}");
    assert!(st.contains("合计："), "{st}");
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let d = digest_deadline(&digest, "活动总结报告和开展情况统计表");
    assert!(
        d.totals
            .iter()
            .any(|t| t.label == "开展次数" && t.value.starts_with("3")),
        "{:?}",
        d.totals
    );
    let mut wb = Workbook::export(&s).await;
    let sheet = "报送情况-活动总结报告和开展情况统计表";
    for (org, addr) in [
        ("徐州市科学技术协会", xz),
        ("江苏省计算机学会", personal),
        ("无锡市科学技术协会", wx),
        ("常州市科学技术协会", cz),
    ] {
        let ack = n.smtp.ack_to(addr);
        let row = wb.row(sheet, org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
    let stats = wb.row("统计表-活动总结报告和开展情况统计表", "徐州市科学技术协会");
    assert_eq!(cell(&stats, "开展次数（次）"), "12", "{stats:?}");
}

// ---------------------------------------------------------------- 青岛

const QD_KJJ: &str = "kjjrencaichu@qd.shandong.cn";
const QD_KX: &str = "qdskxfxb@qd.shandong.cn";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qingdao_recommendation_forms_by_7_may_noon_at_most_three_activities() {
    let mut n = Notice::load("qingdao");
    let s = n.services().await;
    let due = "2025年5月7日12:00";

    let sn = "snqkjj@qdsn.gov.cn";
    let m = mail(
        "市南区科技局 王涛",
        sn,
        "市南区科技局推荐表",
        "2025-05-06 16:00",
    )
    .to(QD_KJJ)
    .cc(QD_KX)
    .file(
        "市南区科技局推荐表.xlsx",
        fixture("notices/qingdao/市南区科技局推荐表.xlsx"),
    );
    n.post(&["qd-kjj", "qd-kx"], &m);
    // Four activities, then three: the limit is on the unit's latest form.
    let ls = "lskjj@laoshan.gov.cn";
    let m = mail("崂山区科技局", ls, "崂山区推荐表", "2025-05-07 10:30")
        .to(QD_KJJ)
        .file(
            "崂山区推荐表.xlsx",
            fixture("notices/qingdao/崂山区推荐表.xlsx"),
        );
    n.post(&["qd-kjj"], &m);
    // Only a stamped scan; the notice asks for the 电子版.
    let jm = "jmqkx@jimo.gov.cn";
    let m = mail("即墨区科协", jm, "即墨区科协推荐表", "2025-05-07 09:00")
        .to(QD_KX)
        .file("推荐表盖章版.pdf", fixture("mail/files/推荐表盖章版.pdf"));
    n.post(&["qd-kx"], &m);
    // A personal address; the form's 推荐单位 names the unit.
    let hd = "zhaomin_hd@qq.com";
    let m = mail("赵敏", hd, "推荐表", "2025-05-07 11:20")
        .to(QD_KX)
        .file("推荐表.xlsx", fixture("notices/qingdao/推荐表.xlsx"));
    n.post(&["qd-kx"], &m);
    let m = mail(
        "崂山区科技局",
        ls,
        "崂山区推荐表（修改后）",
        "2025-05-07 11:40",
    )
    .to(QD_KJJ)
    .file(
        "崂山区推荐表（修改）.xlsx",
        fixture("notices/qingdao/崂山区推荐表（修改）.xlsx"),
    );
    n.post(&["qd-kjj"], &m);
    // Half an hour after 12:00.
    let cy = "cykjj@chengyang.gov.cn";
    let m = mail("城阳区科技局", cy, "城阳区推荐表", "2025-05-07 12:30")
        .to(QD_KJJ)
        .file(
            "城阳区推荐表.xlsx",
            fixture("notices/qingdao/城阳区推荐表.xlsx"),
        );
    n.post(&["qd-kjj"], &m);
    let stranger = "13800000000@163.com";
    let m = mail("", stranger, "活动方案", "2025-05-07 08:00")
        .to(QD_KJJ)
        .file("活动方案.docx", fixture("notices/jiangsu/活动方案.docx"));
    n.post(&["qd-kjj"], &m);
    n.replay(&s).await;

    let ack = n.smtp.ack_to(sn);
    assert_eq!(ack.envelope_from, QD_KJJ);
    assert!(ack.text.contains("读取3项推荐表"), "{}", ack.text);
    assert!(
        ack.text.contains(&format!("截止时间：{due}")),
        "{}",
        ack.text
    );
    assert!(ack.text.contains("已齐全"), "{}", ack.text);
    let acks = n.smtp.acks_to(ls);
    assert_eq!(acks.len(), 2);
    assert!(
        acks[0]
            .text
            .contains("推荐表中共4项活动，每个单位最多推荐3项，请删减后重新发送。"),
        "{}",
        acks[0].text
    );
    assert!(acks[0].text.contains("需修改后重新发送：推荐表电子版"));
    assert!(!acks[0].text.contains("已齐全"));
    assert!(acks[1].text.contains("已齐全"), "{}", acks[1].text);
    let ack_jm = n.smtp.ack_to(jm);
    assert!(
        ack_jm.text.contains("尚缺：推荐表电子版"),
        "{}",
        ack_jm.text
    );
    let ack_hd = n.smtp.ack_to(hd);
    assert!(
        ack_hd.text.contains("贵单位（青岛市黄岛区科学技术协会）"),
        "{}",
        ack_hd.text
    );
    let ack_cy = n.smtp.ack_to(cy);
    assert!(ack_cy.text.contains("逾期"), "{}", ack_cy.text);
    assert!(n.smtp.acks_to(stranger).is_empty());
    // The reminder the day before says the same time.
    let reminders = n.smtp.reminders_to("pdkjj@pingdu.gov.cn");
    assert_eq!(reminders.len(), 1, "{reminders:#?}");
    assert!(
        reminders[0].subject.contains(due),
        "{}",
        reminders[0].subject
    );
    assert!(reminders[0].text.contains(due), "{}", reminders[0].text);

    let st = status(&s, "qd-2025", "recommend").await;
    assert!(
        st.contains(&format!(
            "（截止 {due}）: 8 个单位，齐全 4，部分 1，未报 3，逾期 1"
        )),
        "{st}"
    );
    assert!(
        status_row(&st, "青岛市即墨区科学技术协会").contains("—"),
        "{st}"
    );
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let text = s.templates.digest(&digest).unwrap().text;
    assert!(
        text.contains(&format!("特色群众性主题实践活动推荐表（截止时间：{due}）")),
        "{text}"
    );
    let d = digest_deadline(&digest, "特色群众性主题实践活动推荐表");
    let mut wb = Workbook::export(&s).await;
    let sheet = "报送情况-特色群众性主题实践活动推荐表";
    for (org, addr) in [
        ("青岛市市南区科学技术局", sn),
        ("青岛市即墨区科学技术协会", jm),
        ("青岛市黄岛区科学技术协会", hd),
        ("青岛市城阳区科学技术局", cy),
    ] {
        let ack = n.smtp.ack_to(addr);
        let row = wb.row(sheet, org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
    let laoshan = wb.row(sheet, "青岛市崂山区科学技术局");
    assert_eq!(cell(&laoshan, "是否齐全"), "是");
    let activities = wb.rows("推荐表-特色群众性主题实践活动推荐表");
    let laoshan_rows = activities
        .iter()
        .filter(|r| r[0] == "青岛市崂山区科学技术局")
        .count();
    assert_eq!(
        laoshan_rows, 3,
        "the latest form replaces the first: {activities:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qingdao_summary_with_photos_counted_across_zips_and_mails() {
    let mut n = Notice::load("qingdao");
    let s = n.services().await;
    // 附件3: 现场照片 at least 5, 线上活动照片 at least 2, told apart by name.
    let (site, online) = ("现场照片", "线上活动照片");

    // Four 现场 photos in a zip: one short, and no 线上 ones.
    let sn = "snqkjj@qdsn.gov.cn";
    let zipped = zip(&[
        ("活动照片/现场照片1.jpg", photo(1, 300_000)),
        ("活动照片/现场照片2.jpg", photo(2, 450_000)),
        ("活动照片/现场照片3.jpg", photo(3, 600_000)),
        ("活动照片/现场照片4.jpg", photo(4, 1_200_000)),
    ]);
    let m = mail(
        "市南区科技局 王涛",
        sn,
        "市南区科技活动周总结、统计表及照片",
        "2025-06-10 10:00",
    )
    .to(QD_KJJ)
    .file(
        "市南区科技活动周总结.docx",
        fixture("notices/qingdao/市南区科技活动周总结.docx"),
    )
    .file(
        "市南区统计表.xlsx",
        fixture("notices/qingdao/市南区统计表.xlsx"),
    )
    .file("活动照片.zip", zipped);
    n.post(&["qd-kjj"], &m);
    // One photo again, one more 现场 and two 线上: five and two.
    let m = mail("市南区科技局 王涛", sn, "补充活动照片", "2025-06-12 15:00")
        .to(QD_KJJ)
        .cc(QD_KX)
        .file("现场照片4.jpg", photo(4, 1_200_000))
        .file("现场照片5.jpg", photo(5, 350_000))
        .file("线上活动照片1.jpg", photo(6, 250_000))
        .file("线上活动照片2.jpg", photo(7, 260_000));
    n.post(&["qd-kjj", "qd-kx"], &m);
    // Seven photos, three of which break 附件3 (too large, too small, PNG).
    let ls = "lskjj@laoshan.gov.cn";
    let m = mail("崂山区科技局", ls, "崂山区总结材料", "2025-06-15 09:00")
        .to(QD_KJJ)
        .file(
            "崂山区活动总结.docx",
            fixture("notices/qingdao/崂山区活动总结.docx"),
        )
        .file(
            "崂山区统计表.xlsx",
            fixture("notices/qingdao/崂山区统计表.xlsx"),
        )
        .file("现场照片1.jpg", photo(11, 300_000))
        .file("现场照片2.jpg", photo(12, 300_000))
        .file("现场照片3.jpg", photo(13, 2_500_000))
        .file("现场照片4.jpg", photo(14, 150_000))
        .file("现场照片5.png", png_photo())
        .file("线上活动照片1.jpg", photo(15, 300_000))
        .file("线上活动照片2.jpg", photo(16, 300_000));
    n.post(&["qd-kjj"], &m);
    let cy = "cykjj@chengyang.gov.cn";
    let m = mail("城阳区科技局", cy, "城阳区活动总结", "2025-06-16 17:00")
        .to(QD_KJJ)
        .file(
            "城阳区活动总结.docx",
            fixture("notices/qingdao/城阳区活动总结.docx"),
        );
    n.post(&["qd-kjj"], &m);
    // Photos alone from a personal address: nothing says whose.
    let stranger = "li_photo@163.com";
    let m = mail("李摄影", stranger, "活动照片", "2025-06-17 21:00")
        .to(QD_KX)
        .file("IMG_0001.jpg", photo(41, 400_000))
        .file("IMG_0002.jpg", photo(42, 400_000));
    n.post(&["qd-kx"], &m);
    let jm = "jmqkx@jimo.gov.cn";
    let m = mail("即墨区科协", jm, "即墨区科协活动总结", "2025-06-19 08:30")
        .to(QD_KX)
        .file(
            "即墨区科协活动总结.docx",
            fixture("notices/qingdao/即墨区科协活动总结.docx"),
        );
    n.post(&["qd-kx"], &m);
    n.replay(&s).await;

    let acks = n.smtp.acks_to(sn);
    assert_eq!(acks.len(), 2, "{acks:#?}");
    assert!(
        acks[0].text.contains(&format!("尚缺：{site}1张、{online}")),
        "{}",
        acks[0].text
    );
    assert!(
        acks[0].text.contains(&format!(
            "{site}：符合要求的照片共4张，要求不少于5张，请补充后发送。"
        )),
        "{}",
        acks[0].text
    );
    assert!(acks[1].text.contains("已齐全"), "{}", acks[1].text);
    assert_eq!(acks[1].envelope_from, QD_KJJ);
    let ack_ls = n.smtp.ack_to(ls);
    for said in [
        "照片《现场照片3.jpg》大小为 2.5 MB，超出 2 MB 上限，请压缩后重新发送",
        "照片《现场照片4.jpg》大小为 150 KB，小于 0.2 MB 下限，请发送未经压缩的原图",
        "照片《现场照片5.png》为 PNG 格式，要求 JPG 格式，请转换后重新发送",
        &format!("需修改后重新发送：{site}"),
    ] {
        assert!(ack_ls.text.contains(said), "{said} in\n{}", ack_ls.text);
    }
    assert!(!ack_ls.text.contains("已齐全"));
    let ack_cy = n.smtp.ack_to(cy);
    assert!(
        ack_cy
            .text
            .contains(&format!("尚缺：统计表、{site}、{online}")),
        "{}",
        ack_cy.text
    );
    assert!(n.smtp.ack_to(jm).text.contains("逾期"));
    assert!(n.smtp.acks_to(stranger).is_empty());

    let st = status(&s, "qd-2025", "summary").await;
    assert!(st.contains("齐全 1，部分 3，未报 4，逾期 1"), "{st}");
    assert!(
        st.contains(&format!("{stranger}  《活动照片》  未能确认单位")),
        "{st}"
    );
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let d = digest_deadline(&digest, "活动总结报告、统计表和活动照片");
    let mut wb = Workbook::export(&s).await;
    let sheet = "报送情况-活动总结报告、统计表和活动照片";
    let shinan = wb.row(sheet, "青岛市市南区科学技术局");
    assert_eq!(cell(&shinan, site), "已收 6月12日", "{shinan:?}");
    assert_eq!(cell(&shinan, online), "已收 6月12日", "{shinan:?}");
    // 崂山's two 线上 photos are good; its 现场 ones are to fix.
    let laoshan = wb.row(sheet, "青岛市崂山区科学技术局");
    assert!(cell(&laoshan, online).starts_with("已收"), "{laoshan:?}");
    assert!(cell(&laoshan, site).starts_with("需修改"), "{laoshan:?}");
    for (org, ack) in [
        ("青岛市市南区科学技术局", acks[1].clone()),
        ("青岛市崂山区科学技术局", ack_ls),
        ("青岛市城阳区科学技术局", ack_cy),
    ] {
        let row = wb.row(sheet, org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
}

// ---------------------------------------------------------------- 北京交通大学

const BJTU: &str = "mywu@bjtu.edu.cn";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bjtu_recommendation_forms_by_6_may_from_the_schools() {
    let mut n = Notice::load("bjtu");
    let s = n.services().await;

    // To the one mailbox, Cc a colleague in 党委宣传部: one ack, to the sender.
    let cs = "cs_kx@bjtu.edu.cn";
    let m = mail(
        "计算机学院 李明",
        cs,
        "计算机学院科技活动周推荐表",
        "2025-05-05 14:00",
    )
    .to(BJTU)
    .cc("wangrx@bjtu.edu.cn")
    .file(
        "计算机学院推荐表.docx",
        fixture("notices/bjtu/计算机学院推荐表.docx"),
    );
    n.post(&["bjtu"], &m);
    // 联系人及电话 left empty.
    let ei = "ei_kx@bjtu.edu.cn";
    let m = mail("电子信息工程学院", ei, "电信学院推荐表", "2025-05-06 09:00")
        .to(BJTU)
        .file(
            "电子信息工程学院推荐表.xlsx",
            fixture("notices/bjtu/电子信息工程学院推荐表.xlsx"),
        );
    n.post(&["bjtu"], &m);
    let tt = "tt_kx@bjtu.edu.cn";
    let m = mail("交通运输学院", tt, "交通运输学院推荐表", "2025-05-07 08:10")
        .to(BJTU)
        .file(
            "交通运输学院推荐表.xlsx",
            fixture("notices/bjtu/交通运输学院推荐表.xlsx"),
        );
    n.post(&["bjtu"], &m);
    // Only a scan, unstamped; the notice asks for the form itself, no seal.
    let sem = "sem_kx@bjtu.edu.cn";
    let m = mail("经济管理学院", sem, "经管学院推荐表", "2025-05-06 11:00")
        .to(BJTU)
        .file("推荐表扫描件.pdf", fixture("mail/files/推荐表扫描件.pdf"));
    n.post(&["bjtu"], &m);
    // A student's own address, on the university's domain: no unit named.
    let student = "21251234@bjtu.edu.cn";
    let m = mail("王同学", student, "推荐表", "2025-05-06 22:00")
        .to(BJTU)
        .file("推荐表.xlsx", fixture("notices/bjtu/推荐表.xlsx"));
    n.post(&["bjtu"], &m);
    n.replay(&s).await;

    let ack = n.smtp.ack_to(cs);
    assert!(ack.text.contains("已齐全"), "{}", ack.text);
    assert!(
        n.smtp
            .all()
            .iter()
            .all(|o| !o.to.contains(&"wangrx@bjtu.edu.cn".to_owned())),
        "nothing to the Cc"
    );
    let ack_ei = n.smtp.ack_to(ei);
    assert!(ack_ei.text.contains("联系人及电话"), "{}", ack_ei.text);
    assert!(
        ack_ei.text.contains("需修改后重新发送：推荐表电子版"),
        "{}",
        ack_ei.text
    );
    assert!(n.smtp.ack_to(tt).text.contains("逾期"));
    let ack_sem = n.smtp.ack_to(sem);
    assert!(
        ack_sem.text.contains("尚缺：推荐表电子版"),
        "{}",
        ack_sem.text
    );
    assert!(
        !ack_sem.text.contains("公章"),
        "no seal asked for: {}",
        ack_sem.text
    );
    assert!(n.smtp.acks_to(student).is_empty());

    let st = status(&s, "bjtu-2025", "recommend").await;
    assert!(
        st.contains("8 个单位，齐全 2，部分 2，未报 4，逾期 1"),
        "{st}"
    );
    assert!(st.contains(student), "{st}");
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let d = digest_deadline(&digest, "特色群众性主题实践活动推荐表");
    let mut wb = Workbook::export(&s).await;
    let sheet = "报送情况-特色群众性主题实践活动推荐表";
    for (org, addr) in [
        ("计算机科学与技术学院", cs),
        ("电子信息工程学院", ei),
        ("交通运输学院", tt),
        ("经济管理学院", sem),
    ] {
        let ack = n.smtp.ack_to(addr);
        let row = wb.row(sheet, org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bjtu_summary_statistics_images_and_media_coverage_by_13_june() {
    let mut n = Notice::load("bjtu");
    let s = n.services().await;

    let cs = "cs_kx@bjtu.edu.cn";
    let m = mail(
        "计算机学院 李明",
        cs,
        "计算机学院科技活动周总结材料",
        "2025-06-10 10:00",
    )
    .to(BJTU)
    .file(
        "计算机学院科技活动周总结.docx",
        fixture("notices/bjtu/计算机学院科技活动周总结.docx"),
    )
    .file(
        "计算机学院统计表.xlsx",
        fixture("notices/bjtu/计算机学院统计表.xlsx"),
    )
    .file("活动视频.mp4", fixture("media/short_10s.mp4"))
    .file("媒体报道截图.jpg", fixture("notices/bjtu/媒体报道截图.jpg"));
    n.post(&["bjtu"], &m);
    // A video that cannot be read, and no 统计表 or coverage.
    let sem = "sem_kx@bjtu.edu.cn";
    let m = mail("经济管理学院", sem, "经管学院总结材料", "2025-06-11 16:00")
        .to(BJTU)
        .file(
            "经管学院总结材料.docx",
            fixture("notices/bjtu/经管学院总结材料.docx"),
        )
        .file("活动视频.mp4", fixture("media/truncated.mp4"));
    n.post(&["bjtu"], &m);
    // A teacher's personal address; only the report says 报送单位：理学院.
    let sci = "sunyue1985@126.com";
    let m = mail("孙悦", sci, "科技活动周总结材料", "2025-06-12 09:30")
        .to(BJTU)
        .file(
            "科技活动周总结.docx",
            fixture("notices/bjtu/科技活动周总结.docx"),
        )
        .file("活动照片.jpg", photo(21, 300_000));
    n.post(&["bjtu"], &m);
    let tt = "tt_kx@bjtu.edu.cn";
    let m = mail(
        "交通运输学院",
        tt,
        "交通运输学院活动照片",
        "2025-06-14 10:00",
    )
    .to(BJTU)
    .file("活动照片1.jpg", photo(22, 300_000));
    n.post(&["bjtu"], &m);
    n.replay(&s).await;

    let ack = n.smtp.ack_to(cs);
    assert!(ack.text.contains("已齐全"), "{}", ack.text);
    assert!(ack.text.contains("媒体报道"), "{}", ack.text);
    let ack_sem = n.smtp.ack_to(sem);
    assert!(ack_sem.text.contains("视频无法读取"), "{}", ack_sem.text);
    assert!(
        ack_sem.text.contains("尚缺：统计表、媒体报道资料"),
        "{}",
        ack_sem.text
    );
    assert!(
        ack_sem.text.contains("需修改后重新发送：影像资料"),
        "{}",
        ack_sem.text
    );
    let ack_sci = n.smtp.ack_to(sci);
    assert!(
        ack_sci.text.contains("贵单位（理学院）"),
        "{}",
        ack_sci.text
    );
    let ack_tt = n.smtp.ack_to(tt);
    assert!(ack_tt.text.contains("逾期"), "{}", ack_tt.text);
    assert!(
        ack_tt.text.contains("尚缺：总结材料、统计表、媒体报道资料"),
        "{}",
        ack_tt.text
    );

    let st = status(&s, "bjtu-2025", "summary").await;
    let header = st
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        header,
        [
            "单位",
            "总结材料",
            "统计表",
            "影像资料",
            "媒体报道资料",
            "需修改"
        ],
        "{st}"
    );
    assert!(st.contains("齐全 1，部分 3，未报 4，逾期 1"), "{st}");
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let d = digest_deadline(&digest, "总结材料、统计表、影像资料和媒体报道");
    let mut wb = Workbook::export(&s).await;
    let sheet = "报送情况-总结材料、统计表、影像资料和媒体报道";
    for (org, addr) in [
        ("计算机科学与技术学院", cs),
        ("经济管理学院", sem),
        ("理学院", sci),
        ("交通运输学院", tt),
    ] {
        let ack = n.smtp.ack_to(addr);
        let row = wb.row(sheet, org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
}

// ---------------------------------------------------------------- 山西

const SX_KJT: &str = "sxskjhdz@163.com";
const SX_KX: &str = "sxsxhxs@163.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shanxi_reports_and_images_by_15_june_videos_at_most_3_minutes() {
    let mut n = Notice::load("shanxi");
    let dl = &n.config.campaigns[0].deadlines[0];
    assert_eq!(
        dl.due_at,
        utc("2025-06-15 23:59") + chrono::Duration::seconds(59)
    );
    assert!(
        dl.due_is_day,
        "due = 2025-06-15, a TOML date, is the end of that day"
    );
    let s = n.services().await;

    let ty = "tykjj_rc@taiyuan.gov.cn";
    let m = mail(
        "太原市科技局 张华",
        ty,
        "太原市科技活动周总结报告及影像资料",
        "2025-06-10 11:00",
    )
    .to(SX_KJT)
    .cc(SX_KX)
    .file(
        "太原市科技局科技活动周总结报告.docx",
        fixture("notices/shanxi/太原市科技局科技活动周总结报告.docx"),
    )
    .file("活动视频.mp4", fixture("media/short_10s.mp4"))
    .file("活动照片1.jpg", photo(31, 400_000))
    .foxmail();
    n.post(&["sx-kjt", "sx-kx"], &m);
    // A 4-minute video, then a cut one.
    let dt = "dtkjj@dt.gov.cn";
    let m = mail("大同市科技局", dt, "大同市活动总结报告", "2025-06-11 09:00")
        .to(SX_KJT)
        .file(
            "大同市科技活动周总结.docx",
            fixture("notices/shanxi/大同市科技活动周总结.docx"),
        )
        .file("活动视频.mp4", fixture("media/long_252s.mp4"));
    n.post(&["sx-kjt"], &m);
    let m = mail(
        "大同市科技局",
        dt,
        "Re: 活动视频（剪辑后）",
        "2025-06-13 17:00",
    )
    .to(SX_KJT)
    .file("活动视频（剪辑版）.mp4", fixture("media/short_10s.mp4"));
    n.post(&["sx-kjt"], &m);
    // Six event photos (red banners, red shirts) zipped with GBK names, and
    // no report yet: photos, not stamped scans, and not 已齐全.
    let dtkx = "dtkx_kpb@163.com";
    let m = mail(
        "大同市科协 赵丽",
        dtkx,
        "大同市科协活动图片",
        "2025-06-12 18:30",
    )
    .to(SX_KX)
    .file(
        "大同市科协活动图片.zip",
        fixture("notices/shanxi/大同市科协活动图片.zip"),
    )
    .foxmail();
    n.post(&["sx-kx"], &m);
    let tykx = "tykx_xcb@163.com";
    let m = mail(
        "太原市科协",
        tykx,
        "太原市科协活动总结报告",
        "2025-06-12 10:00",
    )
    .to(SX_KX)
    .file(
        "太原市科协活动总结报告.docx",
        fixture("notices/shanxi/太原市科协活动总结报告.docx"),
    );
    n.post(&["sx-kx"], &m);
    // 报送单位：山西大学 only inside the report, from a personal address.
    let sxu = "wangfang_2019@126.com";
    let m = mail("王芳", sxu, "科技活动周总结报告及照片", "2025-06-13 15:20")
        .to(SX_KX)
        .file(
            "活动总结报告.docx",
            fixture("notices/shanxi/活动总结报告.docx"),
        )
        .file("活动照片.jpg", photo(32, 500_000));
    n.post(&["sx-kx"], &m);
    let tyut = "kx@tyut.edu.cn";
    let m = mail(
        "太原理工大学科协",
        tyut,
        "太原理工大学总结报告",
        "2025-06-16 09:00",
    )
    .to(SX_KJT)
    .file(
        "太原理工大学总结报告.docx",
        fixture("notices/shanxi/太原理工大学总结报告.docx"),
    )
    .file("活动照片.jpg", photo(33, 500_000));
    n.post(&["sx-kjt"], &m);
    let stranger = "liuqiang888@163.com";
    let m = mail("刘强", stranger, "总结", "2025-06-14 20:00")
        .to(SX_KJT)
        .file("总结.docx", fixture("notices/shanxi/总结.docx"));
    n.post(&["sx-kjt"], &m);
    n.replay(&s).await;

    let ack = n.smtp.ack_to(ty);
    assert_eq!(ack.envelope_from, SX_KJT);
    assert!(ack.text.contains("已齐全"), "{}", ack.text);
    assert!(ack.text.contains("2025年6月15日24:00"), "{}", ack.text);
    let acks = n.smtp.acks_to(dt);
    assert_eq!(acks.len(), 2);
    assert!(
        acks[0].text.contains("超过3分钟，请剪辑后重新发送"),
        "{}",
        acks[0].text
    );
    assert!(acks[0].text.contains("需修改后重新发送：影像资料"));
    assert!(acks[1].text.contains("已齐全"), "{}", acks[1].text);
    assert!(n.smtp.ack_to(tykx).text.contains("尚缺：影像资料"));
    let ack_dtkx = n.smtp.ack_to(dtkx);
    let photo_lines: Vec<&str> = ack_dtkx
        .text
        .lines()
        .filter(|l| l.contains("活动照片（影像资料）：大同市科协活动图片.zip/"))
        .collect();
    assert_eq!(photo_lines.len(), 6, "{}", ack_dtkx.text);
    assert!(
        photo_lines
            .iter()
            .any(|l| l.ends_with("3.科学家精神进校园.jpg")),
        "{}",
        ack_dtkx.text
    );
    for never in ["统计表", "公章", "媒体报道", "已齐全"] {
        assert!(
            !ack_dtkx.text.contains(never),
            "{never} in\n{}",
            ack_dtkx.text
        );
    }
    assert!(
        ack_dtkx.text.contains("尚缺：总结报告"),
        "{}",
        ack_dtkx.text
    );
    let ack_sxu = n.smtp.ack_to(sxu);
    assert!(
        ack_sxu.text.contains("贵单位（山西大学）"),
        "{}",
        ack_sxu.text
    );
    assert!(ack_sxu.text.contains("已齐全"), "{}", ack_sxu.text);
    assert!(n.smtp.ack_to(tyut).text.contains("逾期"));
    assert!(n.smtp.acks_to(stranger).is_empty());
    let shown = commands::show(&s, message_from(&s, sxu).await)
        .await
        .unwrap();
    assert!(
        shown.contains("“报送单位：山西大学” names 山西大学"),
        "{shown}"
    );

    let st = status(&s, "sx-2025", "summary").await;
    assert!(
        st.contains("7 个单位，齐全 4，部分 2，未报 1，逾期 1"),
        "{st}"
    );
    assert!(status_row(&st, "大同市科学技术局").contains("已收"), "{st}");
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let d = digest_deadline(&digest, "活动总结报告和影像资料");
    let mut wb = Workbook::export(&s).await;
    let sheet = "报送情况";
    for (org, ack) in [
        ("太原市科学技术局", ack),
        ("大同市科学技术局", acks[1].clone()),
        ("太原市科学技术协会", n.smtp.ack_to(tykx)),
        ("大同市科学技术协会", ack_dtkx),
        ("山西大学", ack_sxu),
        ("太原理工大学", n.smtp.ack_to(tyut)),
    ] {
        let row = wb.row(sheet, org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
}

// ---------------------------------------------------------------- 全国科普月

const KPY: &str = "kepuyue@cast.example.cn";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kepuyue_activity_summaries_by_10_october() {
    let mut n = Notice::load("kepuyue");
    let s = n.services().await;

    let bj = "kpb@bast.net.cn";
    let m = mail(
        "北京市科协科普部 王静",
        bj,
        "北京市科协全国科普月活动总结",
        "2025-10-08 10:00",
    )
    .to(KPY)
    .cc("zhangsan@bast.net.cn")
    .file(
        "北京市科协全国科普月活动总结.docx",
        fixture("notices/kepuyue/北京市科协全国科普月活动总结.docx"),
    );
    n.post(&["kpy"], &m);
    // 落款 “中国计算机学会（盖章）” above the date; sent from QQ Mail.
    let ccf = "chenchen_ccf@qq.com";
    let m = mail("陈晨", ccf, "全国科普月活动总结", "2025-10-09 16:45")
        .to(KPY)
        .file(
            "全国科普月活动总结.docx",
            fixture("notices/kepuyue/全国科普月活动总结.docx"),
        );
    n.post(&["kpy"], &m);
    // Forgot the attachment, then sent it.
    let js = "kpb@jskx.org.cn";
    let m = mail(
        "江苏省科协科普部",
        js,
        "江苏省科协科普月活动总结",
        "2025-10-09 09:00",
    )
    .to(KPY)
    .body("您好，江苏省科协全国科普月活动总结见附件。");
    n.post(&["kpy"], &m);
    // A report that cannot be opened.
    let sd = "kpb@sdast.org.cn";
    let mut broken = fixture("notices/kepuyue/江苏省科协科普月活动总结.docx");
    broken.truncate(3000);
    let m = mail(
        "山东省科协",
        sd,
        "山东省科协科普月活动总结",
        "2025-10-10 11:00",
    )
    .to(KPY)
    .file("山东省科协科普月活动总结.docx", broken);
    n.post(&["kpy"], &m);
    let m = mail(
        "江苏省科协科普部",
        js,
        "Re: 江苏省科协科普月活动总结",
        "2025-10-09 09:20",
    )
    .to(KPY)
    .file(
        "江苏省科协科普月活动总结.docx",
        fixture("notices/kepuyue/江苏省科协科普月活动总结.docx"),
    );
    n.post(&["kpy"], &m);
    let ccs = "office@chemsoc.org.cn";
    let m = mail(
        "中国化学会",
        ccs,
        "中国化学会科普月总结",
        "2025-10-11 10:00",
    )
    .to(KPY)
    .file(
        "中国化学会科普月总结.docx",
        fixture("notices/kepuyue/中国化学会科普月总结.docx"),
    );
    n.post(&["kpy"], &m);
    let stranger = "kepu2025@163.com";
    let m = mail("", stranger, "活动总结", "2025-10-09 08:00")
        .to(KPY)
        .file("活动总结.docx", fixture("notices/kepuyue/活动总结.docx"));
    n.post(&["kpy"], &m);
    n.replay(&s).await;

    assert!(n.smtp.ack_to(bj).text.contains("已齐全"));
    let ack_ccf = n.smtp.ack_to(ccf);
    assert!(
        ack_ccf.text.contains("贵单位（中国计算机学会）"),
        "{}",
        ack_ccf.text
    );
    assert!(ack_ccf.text.contains("已齐全"), "{}", ack_ccf.text);
    let acks = n.smtp.acks_to(js);
    assert_eq!(acks.len(), 2);
    assert!(acks[0].text.contains("没有找到附件"), "{}", acks[0].text);
    assert!(acks[0].text.contains("尚缺：活动总结"), "{}", acks[0].text);
    assert!(acks[1].text.contains("已齐全"), "{}", acks[1].text);
    let ack_sd = n.smtp.ack_to(sd);
    assert!(!ack_sd.text.contains("已齐全"), "{}", ack_sd.text);
    assert!(
        ack_sd.text.contains("文件已损坏，无法打开"),
        "{}",
        ack_sd.text
    );
    assert!(n.smtp.ack_to(ccs).text.contains("逾期"));
    assert!(n.smtp.acks_to(stranger).is_empty());

    let st = status(&s, "kepuyue-2025", "summary").await;
    assert!(
        st.contains("（截止 2025年10月10日24:00）: 7 个单位，齐全 4，部分 1，未报 2，逾期 1"),
        "{st}"
    );
    let digest = s.digest_data(n.clock.now()).await.unwrap();
    let d = digest_deadline(&digest, "全国科普月活动总结");
    let mut wb = Workbook::export(&s).await;
    for (org, ack) in [
        ("北京市科学技术协会", n.smtp.ack_to(bj)),
        ("中国计算机学会", ack_ccf),
        ("江苏省科学技术协会", acks[1].clone()),
        ("山东省科学技术协会", ack_sd),
        ("中国化学会", n.smtp.ack_to(ccs)),
    ] {
        let row = wb.row("报送情况", org);
        assert_told_everywhere(&ack, &status_problems(&st, org), digest_row(d, org), &row);
    }
}

// ---------------------------------------------------------------- details

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_times_in_the_campaign_zone_whatever_the_schedule_zone() {
    let mut n = Notice::load("kepuyue");
    n.config.schedule.timezone = baosong::config::Zone(chrono_tz::UTC);
    let s = n.services().await;
    let bj = "kpb@bast.net.cn";
    let m = mail(
        "北京市科协",
        bj,
        "北京市科协全国科普月活动总结",
        "2025-10-08 10:00",
    )
    .to(KPY)
    .file(
        "北京市科协全国科普月活动总结.docx",
        fixture("notices/kepuyue/北京市科协全国科普月活动总结.docx"),
    );
    n.post(&["kpy"], &m);
    n.replay(&s).await;
    let shown = commands::show(&s, message_from(&s, bj).await)
        .await
        .unwrap();
    assert!(
        shown.contains("arrived:  2025-10-08T10:00:05+08:00"),
        "{shown}"
    );
}

#[test]
fn every_document_kind_a_config_may_require_is_documented() {
    let readme = std::fs::read_to_string(Path::new(MANIFEST).join("README.md")).unwrap();
    for kind in [
        "recommendation_form",
        "statistics_form",
        "summary_report",
        "photo",
        "video",
        "media_coverage",
        "other",
    ] {
        assert!(readme.contains(&format!("`{kind}`")), "{kind} in README.md");
    }
}

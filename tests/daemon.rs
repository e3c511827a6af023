//! The daemon end to end: mail appended to a real Dovecot, read over IMAP,
//! stored (SQLite, and PostgreSQL once), acknowledged through a real SMTP
//! server (aiosmtpd), reminders and the digest sent. Each test starts its own
//! Dovecot and SMTP sink; they need root, `dovecot-imapd` and aiosmtpd.
//!
//! The daemon runs in-process (`daemon::run` with a cancellation token) or as
//! the `baosong` binary where a test kills it. Nothing pins the process-wide
//! clock: tests run in parallel threads and would see each other's time.

#[allow(dead_code)]
#[path = "common/dovecot.rs"]
mod dovecot;
#[allow(dead_code)]
#[path = "common/pg.rs"]
mod pg;
#[allow(dead_code)]
#[path = "common/smtp.rs"]
mod smtp;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baosong::actions::Services;
use baosong::clock::SystemClock;
use baosong::commands;
use baosong::daemon::{self, DaemonError, RunOptions};
use baosong::types::OrgId;
use chrono::{DateTime, Utc};
use dovecot::Dovecot;
use mail_parser::{MessageParser, MimeHeaders};
use smtp::{Received, SinkOptions, SmtpSink};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const OUR_ADDRESS: &str = "kjtrcc83236071@163.com";
const MSGID_DOMAIN: &str = "baosong.kjt.example.cn";
const PASSWORD_ENV: &str = "BAOSONG_TEST_IMAP_PASSWORD";

// ------------------------------------------------------------------ helpers

/// Waits (without blocking the runtime) until `$cond` holds, polling.
macro_rules! wait_for {
    ($secs:expr, $what:expr, $cond:expr) => {{
        let start = Instant::now();
        loop {
            if $cond {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs($secs),
                "timed out after {} s waiting for {}",
                $secs,
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

fn corpus(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(format!("{name}.eml"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A corpus mail made unique (its own sha256) by a header line on top.
fn unique(name: &str, seq: usize) -> Vec<u8> {
    let mut out = format!("X-Test-Seq: {seq}\r\n").into_bytes();
    out.extend(corpus(name));
    out
}

/// Every corpus mail, sorted by name.
fn corpus_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".eml").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

#[derive(Clone, Copy)]
enum Password {
    File,
    Env,
}

struct Opts {
    /// None: SQLite in the test's folder.
    database: Option<String>,
    retry_base_secs: u64,
    smtp_timeout_secs: u64,
    password: Password,
    /// `tls` of the IMAP mailbox: none, implicit or starttls (with the test CA).
    imap_tls: &'static str,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            database: None,
            retry_base_secs: 30,
            smtp_timeout_secs: 60,
            password: Password::File,
            imap_tls: "none",
        }
    }
}

/// One test's servers, folder and config file.
struct Setup {
    dovecot: Dovecot,
    sink: SmtpSink,
    dir: tempfile::TempDir,
    config: PathBuf,
    db_url: String,
}

impl Setup {
    async fn new(opts: Opts) -> Setup {
        let dovecot = Dovecot::start(opts.imap_tls != "none");
        let sink = SmtpSink::start(SinkOptions::default());
        let dir = tempfile::Builder::new()
            .prefix("baosong-daemon-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        let db_url = opts
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", root.join("b.db").display()));
        std::fs::write(
            root.join("imap-password"),
            format!("{}\n", dovecot.password()),
        )
        .unwrap();
        for mb in ["kx", "kpy"] {
            for sub in ["new", "cur", "tmp"] {
                std::fs::create_dir_all(root.join("maildir").join(mb).join(sub)).unwrap();
            }
        }
        let text = config_text(&dovecot, sink.port, root, &db_url, &opts);
        let config = root.join("baosong.toml");
        std::fs::write(&config, text).unwrap();
        // The schema exists before anyone looks, whoever runs the daemon.
        let store = baosong::store::Store::open(&db_url).await.unwrap();
        store.close().await;
        Setup {
            dovecot,
            sink,
            dir,
            config,
            db_url,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    async fn services(&self) -> Services {
        let (config, directory) = commands::load(Some(&self.config)).expect("config loads");
        Services::open(config, directory, std::sync::Arc::new(SystemClock))
            .await
            .expect("services")
    }

    /// Appends to INBOX, with an INTERNALDATE when given; returns the UID.
    fn append(&self, bytes: &[u8], date: Option<&str>) -> u32 {
        self.dovecot.probe().append("INBOX", bytes, date).1
    }

    async fn db(&self) -> Db {
        Db::open(&self.db_url).await
    }

    /// `baosong --config … ARGS` as a child, its log in the test folder.
    fn spawn(&self, args: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("baosong.log"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_baosong"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("BAOSONG_LOG", "info")
            .env(PASSWORD_ENV, self.dovecot.password())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run baosong")
    }

    /// Runs the binary to its end; its stdout.
    fn run_bin(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_baosong"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env(PASSWORD_ENV, self.dovecot.password())
            .output()
            .expect("run baosong");
        assert!(
            out.status.success(),
            "baosong {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("baosong.log")).unwrap_or_default()
    }
}

/// The test's config: the example's forms, campaigns and schedule, with its
/// mailbox `kjt` on the test's Dovecot, the other two as empty Maildirs, SMTP
/// to the sink and the store in the test's folder.
fn config_text(d: &Dovecot, smtp_port: u16, root: &Path, db_url: &str, opts: &Opts) -> String {
    let ex = baosong::config::EXAMPLE_TOML;
    let mailboxes = ex.find("[[mailbox]]").expect("example has mailboxes");
    let orgs = ex
        .find("[organisations]")
        .expect("example has [organisations]");
    let replace = |text: &str, from: &str, to: &str| {
        assert!(text.contains(from), "the example config has no `{from}`");
        text.replacen(from, to, 1)
    };
    let head = replace(
        &ex[..mailboxes],
        "\"sqlite://var/baosong.db\"",
        &format!("\"{db_url}\""),
    );
    let head = replace(
        &head,
        "archive = \"var/archive\"",
        &format!("archive = \"{}\"", root.join("archive").display()),
    );
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/organisations.csv");
    let tail = replace(
        &ex[orgs..],
        "file = \"examples/organisations.csv\"",
        &format!("file = \"{}\"", directory.display()),
    );
    // The cron never fires during a test: reminders and digests are enqueued
    // by the tests themselves.
    let tail = replace(
        &tail,
        "reminder_cron = \"0 0 9 * * *\"",
        "reminder_cron = \"0 0 9 1 1 * 2099\"",
    );
    let tail = replace(
        &tail,
        "digest_cron = \"0 30 8 * * Mon-Fri\"",
        "digest_cron = \"0 30 8 1 1 * 2099\"",
    );
    let password = match opts.password {
        Password::File => format!("{{ file = \"{}\" }}", root.join("imap-password").display()),
        Password::Env => format!("{{ env = \"{PASSWORD_ENV}\" }}"),
    };
    let maildir = |name: &str| root.join("maildir").join(name).display().to_string();
    format!(
        r#"{head}
[[mailbox]]
name = "kjt"
address = "{OUR_ADDRESS}"
after = "seen"
poll_interval_secs = 600

[mailbox.imap]
host = "127.0.0.1"
port = {imap_port}
tls = "{imap_tls}"
{ca_file}username = "{user}"
password = {password}

[[mailbox]]
name = "kx"
address = "jskxdxb@163.com"
maildir = "{kx}"
after = "seen"

[[mailbox]]
name = "kpy"
address = "kepuyue@cast.example.cn"
maildir = "{kpy}"
after = "seen"

[smtp]
transport = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "江苏省科技活动周报送 <{OUR_ADDRESS}>"
message_id_domain = "{MSGID_DOMAIN}"
ack_per_recipient_per_hour = 5
retry_base_secs = {retry}
timeout_secs = {smtp_timeout}

{tail}"#,
        imap_port = match opts.imap_tls {
            "implicit" => d.tls_port().expect("a TLS Dovecot"),
            _ => d.port(),
        },
        imap_tls = opts.imap_tls,
        ca_file = if opts.imap_tls == "none" {
            String::new()
        } else {
            format!("ca_file = \"{}\"\n", d.ca_pem().display())
        },
        user = d.user(),
        kx = maildir("kx"),
        kpy = maildir("kpy"),
        retry = opts.retry_base_secs,
        smtp_timeout = opts.smtp_timeout_secs,
    )
}

/// Read-only looks at the store, beside the daemon.
struct Db(AnyPool);

#[derive(Debug, Clone)]
struct MsgRow {
    id: i64,
    sha256: String,
    archive_path: String,
    uidvalidity: Option<i64>,
    uid: Option<i64>,
    header_message_id: Option<String>,
    from: Option<String>,
    auto_generated: Option<String>,
    parse_status: String,
    late: Option<i16>,
    org: Option<String>,
    /// The ack waits for a coordinator (unknown sender).
    ack_held: i16,
}

#[derive(Debug, Clone)]
struct OutRow {
    kind: String,
    message_id: String,
    to: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    related: Option<i64>,
}

impl Db {
    async fn open(url: &str) -> Db {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        Db(pool)
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.0)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn messages(&self) -> Vec<MsgRow> {
        sqlx::query(
            "SELECT m.id, m.sha256, m.archive_path, m.uidvalidity, m.uid, m.header_message_id, \
               m.from_addr, m.auto_generated, m.parse_status, s.late, s.org_id, m.ack_held \
             FROM messages m LEFT JOIN submissions s ON s.message_id = m.id ORDER BY m.id",
        )
        .fetch_all(&self.0)
        .await
        .unwrap()
        .iter()
        .map(|r| MsgRow {
            id: r.get("id"),
            sha256: r.get("sha256"),
            archive_path: r.get("archive_path"),
            uidvalidity: r.get("uidvalidity"),
            uid: r.get("uid"),
            header_message_id: r.get("header_message_id"),
            from: r.get("from_addr"),
            auto_generated: r.get("auto_generated"),
            parse_status: r.get("parse_status"),
            late: r.get("late"),
            org: r.get("org_id"),
            ack_held: r.get("ack_held"),
        })
        .collect()
    }

    async fn outbox(&self) -> Vec<OutRow> {
        sqlx::query(
            "SELECT kind, message_id, to_addrs, status, attempts, last_error, related_message \
             FROM outbox ORDER BY id",
        )
        .fetch_all(&self.0)
        .await
        .unwrap()
        .iter()
        .map(|r| OutRow {
            kind: r.get("kind"),
            message_id: r.get("message_id"),
            to: r.get("to_addrs"),
            status: r.get("status"),
            attempts: r.get("attempts"),
            last_error: r.get("last_error"),
            related: r.get("related_message"),
        })
        .collect()
    }

    /// Problem codes per message id.
    async fn problems(&self) -> BTreeMap<i64, Vec<String>> {
        let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for r in sqlx::query("SELECT message_id, code FROM problems ORDER BY id")
            .fetch_all(&self.0)
            .await
            .unwrap()
        {
            out.entry(r.get("message_id"))
                .or_default()
                .push(r.get("code"));
        }
        out
    }
}

/// UID → flags of every message in INBOX.
fn flags(d: &Dovecot) -> BTreeMap<u32, Vec<String>> {
    let mut p = d.probe();
    if p.select("INBOX").exists == 0 {
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for line in p.ok("UID FETCH 1:* (FLAGS)") {
        let Some(uid) = line
            .split("UID ")
            .nth(1)
            .and_then(|s| s.split([' ', ')']).next())
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let flags = line
            .split("FLAGS (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        out.insert(uid, flags);
    }
    out
}

fn seen_uids(d: &Dovecot) -> BTreeSet<u32> {
    flags(d)
        .into_iter()
        .filter(|(_, f)| f.iter().any(|f| f == "\\Seen"))
        .map(|(uid, _)| uid)
        .collect()
}

fn stored_uids(msgs: &[MsgRow]) -> BTreeSet<u32> {
    msgs.iter()
        .filter_map(|m| m.uid.map(|u| u as u32))
        .collect()
}

/// The daemon in-process until [`Running::stop`].
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), DaemonError>>,
}

impl Running {
    async fn start(services: &Services) -> Running {
        let cancel = CancellationToken::new();
        let sources = commands::mailbox_sources(services).await.expect("sources");
        let sender = commands::mail_sender(&services.config).expect("sender");
        let task = tokio::spawn(daemon::run(
            services.clone(),
            sources,
            sender,
            RunOptions { once: false },
            cancel.clone(),
        ));
        Running { cancel, task }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the daemon stops when cancelled")
            .expect("the daemon task did not panic")
            .expect("the daemon ran without error");
    }
}

/// One pass: read the mailboxes, send what is due, return.
async fn run_once(services: &Services) {
    tokio::time::timeout(
        Duration::from_secs(60),
        daemon::run(
            services.clone(),
            commands::mailbox_sources(services).await.expect("sources"),
            commands::mail_sender(&services.config).expect("sender"),
            RunOptions { once: true },
            CancellationToken::new(),
        ),
    )
    .await
    .expect("a one-shot run ends")
    .expect("a one-shot run succeeds");
}

fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default().parse(bytes).expect("a mail")
}

fn header(m: &mail_parser::Message<'_>, name: &str) -> String {
    m.header_raw(name).unwrap_or_default().trim().to_owned()
}

/// The Message-ID an ack answers, without brackets.
fn in_reply_to(r: &Received) -> String {
    header(&parse(&r.bytes), "In-Reply-To")
        .trim_matches(['<', '>'])
        .to_owned()
}

fn message_id(r: &Received) -> String {
    parse(&r.bytes).message_id().unwrap_or_default().to_owned()
}

fn body_text(r: &Received) -> String {
    let m = parse(&r.bytes);
    m.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}

async fn sink_count(sink: &SmtpSink) -> usize {
    sink.received().len()
}

fn assert_archived(root: &Path, msgs: &[MsgRow]) {
    for m in msgs {
        let path = root.join("archive").join(&m.archive_path);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "message #{} has no archive file {}: {e}",
                m.id,
                path.display()
            )
        });
        assert_eq!(
            baosong::types::Sha256::of(&bytes).as_str(),
            m.sha256,
            "archive file of #{} holds its bytes",
            m.id
        );
    }
}

/// The daemon logged in over TLS (the probe's own logins are plain).
fn assert_tls_login(d: &Dovecot) {
    let tls = |l: &str| l.contains("Login: user=<alice>") && l.contains("TLS");
    let log = d.log_when(tls);
    assert!(log.lines().any(tls), "no login over TLS:\n{log}");
}

fn cst(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_appended_over_imap_is_stored_acked_and_flagged_after_commit() {
    let s = Setup::new(Opts::default()).await;
    // (fixture, INTERNALDATE, expected late)
    let mails = [
        (
            "foxmail_gbk_recommend_xlsx",
            "28-Apr-2025 10:13:00 +0800",
            Some(0),
        ),
        ("qq_autoreply", "30-Apr-2025 08:01:10 +0800", None),
        (
            "zip_windows_gbk_names",
            "05-May-2025 11:08:30 +0800",
            Some(0),
        ),
        // Date header 5月4日, but it reached the mailbox after the deadline.
        (
            "applemail_octet_stream_docx",
            "07-May-2025 00:30:00 +0800",
            Some(1),
        ),
        // Date 23:52 and a Received header after midnight, but INTERNALDATE before it.
        (
            "late_recommend_received_header",
            "06-May-2025 23:55:00 +0800",
            Some(0),
        ),
    ];
    let mut uids = BTreeMap::new();
    for (name, date, _) in &mails {
        uids.insert(*name, s.append(&corpus(name), Some(date)));
    }
    let services = s.services().await;
    let db = s.db().await;
    let daemon = Running::start(&services).await;

    // Until everything is in: whatever is \Seen must already be committed
    // (flags are read first, rows second).
    let mut samples = 0;
    wait_for!(30, "5 messages stored and 4 acks sent", {
        let seen = seen_uids(&s.dovecot);
        let stored = stored_uids(&db.messages().await);
        assert!(
            seen.is_subset(&stored),
            "flagged before committed: seen {seen:?}, stored {stored:?}"
        );
        samples += 1;
        stored.len() == 5 && sink_count(&s.sink).await >= 4
    });
    assert!(samples > 0);
    // Nothing more comes (no ack to the auto-reply).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = s.sink.received();
    assert_eq!(
        got.len(),
        4,
        "one ack per human mail, none to the auto-reply"
    );

    let msgs = db.messages().await;
    assert_archived(s.root(), &msgs);
    let by_uid: BTreeMap<u32, &MsgRow> = msgs.iter().map(|m| (m.uid.unwrap() as u32, m)).collect();
    for (name, _, late) in &mails {
        let m = by_uid[&uids[name]];
        let original = corpus(name);
        let original = parse(&original);
        assert_eq!(
            m.header_message_id.as_deref(),
            original.message_id(),
            "{name}"
        );
        if *name == "qq_autoreply" {
            assert!(m.auto_generated.is_some(), "{name} is auto-generated");
            assert!(
                got.iter()
                    .all(|r| in_reply_to(r) != m.header_message_id.clone().unwrap()),
                "no ack to the auto-reply"
            );
            continue;
        }
        assert_eq!(m.late, *late, "{name}: lateness from INTERNALDATE");
        let from = original.from().unwrap().first().unwrap().address().unwrap();
        let acks: Vec<&Received> = got
            .iter()
            .filter(|r| Some(in_reply_to(r).as_str()) == original.message_id())
            .collect();
        assert_eq!(acks.len(), 1, "{name}: one ack");
        let ack = parse(&acks[0].bytes);
        assert_eq!(acks[0].rcpt_tos, [from.to_lowercase()], "{name}: envelope");
        assert_eq!(
            ack.to()
                .unwrap()
                .first()
                .unwrap()
                .address()
                .unwrap()
                .to_lowercase(),
            from.to_lowercase(),
            "{name}: To"
        );
        assert_eq!(header(&ack, "Auto-Submitted"), "auto-replied", "{name}");
        assert_eq!(header(&ack, "X-Auto-Response-Suppress"), "All", "{name}");
        assert!(
            ack.message_id().unwrap().ends_with(MSGID_DOMAIN),
            "{name}: our Message-ID domain"
        );
        assert_eq!(acks[0].mail_from, OUR_ADDRESS);
    }
    // Every message flagged \Seen once committed.
    let seen = seen_uids(&s.dovecot);
    assert_eq!(seen, uids.values().copied().collect());
    // The ack rows are what was sent.
    let outbox = db.outbox().await;
    assert_eq!(outbox.len(), 4);
    assert!(outbox.iter().all(|o| o.kind == "ack" && o.status == "sent"));
    let senders: BTreeSet<String> = msgs
        .iter()
        .filter(|m| m.auto_generated.is_none())
        .filter_map(|m| m.from.clone())
        .collect();
    let to: BTreeSet<String> = outbox.iter().map(|o| o.to.clone()).collect();
    assert_eq!(to, senders, "one ack row per human sender");

    // `baosong show` tells the coordinator the late one is late.
    let late = by_uid[&uids["applemail_octet_stream_docx"]];
    let shown = s.run_bin(&["show", &late.id.to_string()]);
    assert!(shown.contains("LATE"), "{shown}");
    assert!(
        shown.contains("2025-05-07T00:30:00+08:00"),
        "arrived is INTERNALDATE, in the campaign's zone: {shown}"
    );
    let on_time = by_uid[&uids["late_recommend_received_header"]];
    let shown = s.run_bin(&["show", &on_time.id.to_string()]);
    assert!(!shown.contains("LATE"), "{shown}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_then_restart_stores_every_mail_once() {
    let s = Setup::new(Opts {
        password: Password::Env,
        ..Opts::default()
    })
    .await;
    let names = corpus_names();
    let total = 30;
    for i in 0..total {
        s.append(&unique(&names[i % names.len()], i), None);
    }
    let db = s.db().await;
    // No ack may be accepted while the daemon can die: a kill between the
    // server's 250 and the row marked sent would send it twice (SMTP cannot
    // be transactional). Acks are queued and retried meanwhile.
    s.sink.refuse("451 4.3.0 Try again later");
    let count = async || db.count("SELECT COUNT(*) FROM messages").await;

    let mut rounds = 0;
    let mut stored = count().await;
    while stored < total as i64 {
        rounds += 1;
        assert!(
            rounds <= 40,
            "no progress after {rounds} restarts; log:\n{}",
            s.log()
        );
        let before = stored;
        let mut child = s.spawn(&["run"]);
        match rounds % 3 {
            // Killed right after it started, often before the first commit.
            0 => tokio::time::sleep(Duration::from_millis(30 * (rounds % 5) as u64)).await,
            // Killed right after a few commits.
            _ => {
                // Polled tightly, so the kill often lands between a commit and its flag.
                let target = (before + 1 + (rounds % 4) as i64).min(total as i64);
                let start = Instant::now();
                while count().await < target {
                    assert!(start.elapsed() < Duration::from_secs(30), "no progress");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        stored = count().await;
        // Flagged only once committed, whenever the kill came.
        let seen = seen_uids(&s.dovecot);
        let committed = stored_uids(&db.messages().await);
        assert!(
            seen.is_subset(&committed),
            "flagged but not stored: {:?}",
            seen.difference(&committed)
        );
        eprintln!(
            "round {rounds}: killed with {stored}/{total} stored, {} of them not yet flagged",
            committed.difference(&seen).count()
        );
    }
    assert!(
        rounds >= 3,
        "the daemon was killed several times ({rounds})"
    );

    // Then SMTP works again, and a last run (an hour later, past every
    // retry and the dead processes' leases) sends what is queued.
    s.sink.accept();
    let later = (Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let mut child = s.spawn(&["--now", &later, "run", "--once"]);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "run --once hangs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{}", s.log());

    let msgs = db.messages().await;
    assert_eq!(msgs.len(), total, "every mail stored exactly once");
    let uids = stored_uids(&msgs);
    assert_eq!(uids.len(), total, "one row per UID");
    let shas: BTreeSet<&str> = msgs.iter().map(|m| m.sha256.as_str()).collect();
    assert_eq!(shas.len(), total);
    assert_archived(s.root(), &msgs);

    let outbox = db.outbox().await;
    for m in &msgs {
        let acks = outbox
            .iter()
            .filter(|o| o.kind == "ack" && o.related == Some(m.id))
            .count();
        let want = usize::from(m.auto_generated.is_none() && m.ack_held == 0);
        assert_eq!(acks, want, "acks for #{} from {:?}", m.id, m.from);
    }
    let ack_rows: Vec<&OutRow> = outbox.iter().filter(|o| o.kind == "ack").collect();
    assert!(ack_rows.len() > 15, "most corpus mails are answered");
    let held = msgs.iter().filter(|m| m.ack_held == 1).count();
    assert!(
        held > 0 && held < 10,
        "unknown senders wait for a coordinator: {held}"
    );
    assert!(
        ack_rows.iter().all(|o| o.status == "sent"),
        "{:?}",
        ack_rows
            .iter()
            .map(|o| (&o.status, &o.last_error))
            .collect::<Vec<_>>()
    );

    let got = s.sink.received();
    assert_eq!(got.len(), ack_rows.len(), "one ack received per ack row");
    let ids: BTreeSet<String> = got.iter().map(message_id).collect();
    assert_eq!(ids.len(), got.len(), "Message-IDs unique");
    let rows: BTreeSet<String> = ack_rows
        .iter()
        .map(|o| o.message_id.trim_matches(['<', '>']).to_owned())
        .collect();
    assert_eq!(ids, rows, "the sink got exactly the ack rows");
    let answered: BTreeSet<String> = got.iter().map(in_reply_to).collect();
    assert_eq!(answered.len(), got.len(), "no mail answered twice");

    assert_eq!(seen_uids(&s.dovecot), uids, "every message \\Seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidvalidity_reset_does_not_duplicate_messages() {
    let s = Setup::new(Opts::default()).await;
    for (i, name) in ["foxmail_gbk_recommend_xlsx", "qq_autoreply", "zip_nested"]
        .iter()
        .enumerate()
    {
        s.append(
            &corpus(name),
            Some(&format!("0{}-May-2025 10:00:00 +0800", i + 1)),
        );
    }
    let services = s.services().await;
    let db = s.db().await;
    run_once(&services).await;
    assert_eq!(db.count("SELECT COUNT(*) FROM messages").await, 3);
    assert_eq!(s.sink.wait_for(2).len(), 2);
    let old = db.messages().await[0].uidvalidity.unwrap();

    let new = s.dovecot.reset_uidvalidity("INBOX");
    assert_ne!(i64::from(new), old);
    // One genuinely new mail after the reset.
    s.append(
        &corpus("netease163_html_only_docx"),
        Some("05-May-2025 10:00:00 +0800"),
    );
    run_once(&services).await;

    let msgs = db.messages().await;
    assert_eq!(msgs.len(), 4, "the three old mails are not stored again");
    assert_eq!(
        msgs.iter()
            .filter(|m| m.uidvalidity == Some(i64::from(new)))
            .count(),
        1,
        "only the new mail has the new UIDVALIDITY"
    );
    let outbox = db.outbox().await;
    assert_eq!(outbox.len(), 3, "no second ack");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = s.sink.received();
    assert_eq!(got.len(), 3, "no second ack received");
    let answered: BTreeSet<String> = got.iter().map(in_reply_to).collect();
    assert_eq!(answered.len(), 3);
    let state = services.store.mailbox_state(&"kjt".into()).await.unwrap();
    assert_eq!(
        state.map(|(v, _)| v),
        Some(new),
        "the poller follows the new UIDVALIDITY"
    );
    assert_eq!(
        seen_uids(&s.dovecot).len(),
        4,
        "all flagged under the new UIDVALIDITY"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sender_headers_over_imap_never_stop_the_mailbox() {
    let s = Setup::new(Opts::default()).await;
    let known = "njkjjrcc@nanjing.gov.cn";
    let mail = |from: &str, subject: &str, extra: &str, n: usize| {
        format!(
            "From: {from}\r\nTo: {OUR_ADDRESS}\r\nSubject: {subject}\r\n\
             Message-ID: <hostile-{n}@test.example>\r\n{extra}\r\n附件见后。\r\n"
        )
        .into_bytes()
    };
    let long_name = "长".repeat(2000);
    let hostile = [
        mail("\"王五\" <wang wu@example.com>", "材料", "", 1),
        mail("nobody", "材料", "", 2),
        mail("", "材料", "", 3),
        mail(
            &format!("南京市科技局 <{known}>"),
            "材料",
            "Reply-To: undisclosed-recipients:;\r\n",
            4,
        ),
        mail(
            &format!("南京市科技局 <{known}>"),
            "材料",
            "Reply-To: <<>>@@\r\n",
            5,
        ),
        mail(&format!("{long_name} <{known}>"), "材料", "", 6),
        mail(
            &format!("南京市科技局 <{known}>"),
            "=?UTF-8?B?eA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5jb20=?=",
            "",
            7,
        ),
    ];
    let date = Some("30-Apr-2025 10:00:00 +0800");
    let mut uids = BTreeSet::new();
    for (i, h) in hostile.iter().enumerate() {
        uids.insert(s.append(h, date));
        uids.insert(s.append(
            &mail("无锡市科技局 <wxkjjrc@wuxi.gov.cn>", "推荐表", "", 100 + i),
            date,
        ));
    }
    let services = s.services().await;
    run_once(&services).await;

    let db = s.db().await;
    let msgs = db.messages().await;
    assert_eq!(stored_uids(&msgs), uids, "every mail stored");
    assert_eq!(seen_uids(&s.dovecot), uids, "every mail flagged");
    let outbox = db.outbox().await;
    let acks: Vec<&OutRow> = outbox.iter().filter(|o| o.kind == "ack").collect();
    // The ordinary ones (5 per hour per recipient) and the known unit's.
    assert!(
        acks.iter()
            .filter(|o| o.to == "wxkjjrc@wuxi.gov.cn")
            .count()
            == 5,
        "{acks:?}"
    );
    assert!(acks.iter().all(|o| o.status == "sent"), "{acks:?}");
    for r in s.sink.wait_for(acks.len()) {
        let text = String::from_utf8_lossy(&r.bytes).into_owned();
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        assert!(!head.to_ascii_lowercase().contains("\nbcc"), "{head}");
        assert!(!head.contains("victim"), "{head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_mail_is_stored_marked_and_the_next_one_processed() {
    let s = Setup::new(Opts::default()).await;
    // Binary noise without headers (no NUL: IMAP literals cannot carry it).
    let mut x: u32 = 0x2545_f491;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 255) as u8 + 1
        })
        .collect();
    // A multipart cut off in the middle of its attachment.
    let good = corpus("foxmail_gbk_recommend_xlsx");
    let truncated = good[..good.len() / 2].to_vec();
    // One 2 MB line and nothing else.
    let mut long = vec![b'X'; 2 * 1024 * 1024];
    long.extend_from_slice(b"\r\n");
    let date = Some("30-Apr-2025 10:00:00 +0800");
    let u_noise = s.append(&noise, date);
    let u_trunc = s.append(&truncated, date);
    let u_long = s.append(&long, date);
    let u_good = s.append(&corpus("netease163_html_only_docx"), date);

    let services = s.services().await;
    let db = s.db().await;
    let daemon = Running::start(&services).await;
    wait_for!(30, "4 messages stored and 2 acks", {
        db.messages().await.len() == 4 && sink_count(&s.sink).await >= 2
    });
    let msgs = db.messages().await;
    let problems = db.problems().await;
    let by_uid: BTreeMap<u32, &MsgRow> = msgs.iter().map(|m| (m.uid.unwrap() as u32, m)).collect();
    let codes = |uid: u32| problems.get(&by_uid[&uid].id).cloned().unwrap_or_default();
    for (what, uid, code) in [
        ("noise", u_noise, "message_unreadable"),
        ("truncated", u_trunc, "file_unreadable"),
        ("2 MB line", u_long, "message_unreadable"),
    ] {
        let m = by_uid[&uid];
        // parse_status is about the message; a file's problem is the file's.
        if code.starts_with("message_") {
            assert_eq!(m.parse_status, "problems", "{what}");
        }
        assert!(
            codes(uid).iter().any(|c| c == code),
            "{what}: expected {code}, got {:?}",
            codes(uid)
        );
    }
    assert_archived(s.root(), &msgs);
    assert_eq!(
        seen_uids(&s.dovecot),
        BTreeSet::from([u_noise, u_trunc, u_long, u_good]),
        "bad mail is flagged as processed too: the mailbox goes on"
    );
    let good = by_uid[&u_good];
    assert_eq!(good.org.as_deref(), Some("nj-kx"));
    let values = db
        .count(&format!(
            "SELECT COUNT(*) FROM records r JOIN documents d ON d.id = r.document_id \
             JOIN submissions s ON s.id = d.submission_id WHERE s.message_id = {}",
            good.id
        ))
        .await;
    assert!(values > 0, "the good mail's table was read");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = s.sink.received();
    assert_eq!(
        got.len(),
        2,
        "acks for the truncated and the good mail only"
    );
    // The sender of the truncated mail is told which file could not be read.
    let trunc_ack = got
        .iter()
        .find(|r| in_reply_to(r) == by_uid[&u_trunc].header_message_id.clone().unwrap())
        .expect("an ack for the truncated mail");
    let text = body_text(trunc_ack);
    assert!(text.contains("南京市推荐表.xlsx"), "{text}");
    assert!(text.contains("无法读取"), "{text}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_delivers_a_new_mail_without_waiting_for_the_poll() {
    // Over implicit TLS, as with a real provider (imap.163.com:993).
    let s = Setup::new(Opts {
        imap_tls: "implicit",
        ..Opts::default()
    })
    .await;
    s.append(&corpus("foxmail_gbk_recommend_xlsx"), None);
    let services = s.services().await;
    let db = s.db().await;
    let daemon = Running::start(&services).await;
    wait_for!(20, "the first mail", db.messages().await.len() == 1);
    // The source is now (or soon) in IDLE; the poll interval is 600 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let appended = Instant::now();
    let uid = s.append(&corpus("zip_windows_gbk_names"), None);
    wait_for!(10, "the second mail through IDLE", {
        stored_uids(&db.messages().await).contains(&uid)
    });
    eprintln!("stored {:?} after the APPEND", appended.elapsed());
    wait_for!(10, "its \\Seen flag", seen_uids(&s.dovecot).contains(&uid));
    assert_tls_login(&s.dovecot);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_mail_in_hand_and_exits() {
    let s = Setup::new(Opts {
        imap_tls: "starttls",
        ..Opts::default()
    })
    .await;
    let names = corpus_names();
    let total = 12;
    for i in 0..total {
        s.append(&unique(&names[(i * 3) % names.len()], i), None);
    }
    let db = s.db().await;
    let mut child = s.spawn(&["run"]);
    wait_for!(30, "the first message", {
        db.count("SELECT COUNT(*) FROM messages").await >= 1
    });
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("no exit within 10 s of SIGTERM; log:\n{}", s.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}; log:\n{}", s.log());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );

    // Whatever was stored is whole and flagged; whatever is flagged was stored.
    let msgs = db.messages().await;
    assert!(!msgs.is_empty());
    assert_archived(s.root(), &msgs);
    assert_eq!(seen_uids(&s.dovecot), stored_uids(&msgs));
    let outbox = db.outbox().await;
    for m in &msgs {
        let acks = outbox.iter().filter(|o| o.related == Some(m.id)).count();
        let want = usize::from(m.auto_generated.is_none() && m.ack_held == 0);
        assert_eq!(acks, want, "#{}", m.id);
    }
    let log = s.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert_tls_login(&s.dovecot);

    // The rest comes with the next run, nothing twice.
    s.run_bin(&["run", "--once"]);
    let msgs = db.messages().await;
    assert_eq!(msgs.len(), total);
    assert_eq!(seen_uids(&s.dovecot).len(), total);
    let outbox = db.outbox().await;
    let acks = outbox.iter().filter(|o| o.kind == "ack").count();
    let answerable = msgs
        .iter()
        .filter(|m| m.auto_generated.is_none() && m.ack_held == 0)
        .count();
    assert_eq!(acks, answerable);
    assert!(outbox.iter().all(|o| o.status == "sent"));
    let got = s.sink.wait_for(acks);
    let answered: BTreeSet<String> = got.iter().map(in_reply_to).collect();
    assert_eq!(answered.len(), acks, "no mail answered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_up_delivers_every_ack_exactly_once() {
    let mut s = Setup::new(Opts {
        retry_base_secs: 1,
        ..Opts::default()
    })
    .await;
    s.sink.stop();
    let names = [
        "foxmail_gbk_recommend_xlsx",
        "zip_windows_gbk_names",
        "forwarded_rfc822_with_attachments",
        "netease163_html_only_docx",
        "applemail_octet_stream_docx",
    ];
    for name in names {
        s.append(&corpus(name), Some("01-May-2025 10:00:00 +0800"));
    }
    let services = s.services().await;
    let db = s.db().await;
    let daemon = Running::start(&services).await;
    wait_for!(30, "5 acks queued and tried", {
        let out = db.outbox().await;
        out.len() == 5
            && out
                .iter()
                .all(|o| o.attempts >= 1 && o.last_error.is_some())
    });
    let out = db.outbox().await;
    assert!(
        out.iter()
            .all(|o| o.status != "sent" && o.status != "failed")
    );
    assert!(
        out.iter()
            .all(|o| o.last_error.as_deref().unwrap().contains("cannot reach")),
        "{out:?}"
    );

    s.sink.restart();
    wait_for!(60, "every ack delivered", sink_count(&s.sink).await >= 5);
    wait_for!(10, "every row sent", {
        db.outbox().await.iter().all(|o| o.status == "sent")
    });
    // A late duplicate would come within a worker round.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = s.sink.received();
    assert_eq!(got.len(), 5, "each ack exactly once");
    let answered: BTreeSet<String> = got.iter().map(in_reply_to).collect();
    let originals: BTreeSet<String> = names
        .iter()
        .map(|n| parse(&corpus(n)).message_id().unwrap().to_owned())
        .collect();
    assert_eq!(answered, originals);
    let ids: BTreeSet<String> = got.iter().map(message_id).collect();
    let rows: BTreeSet<String> = db
        .outbox()
        .await
        .iter()
        .map(|o| o.message_id.trim_matches(['<', '>']).to_owned())
        .collect();
    assert_eq!(ids, rows, "the Message-ID fixed at enqueue is the one sent");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_connection_reset_mid_data_is_retried_and_each_ack_sent_once() {
    let s = Setup::new(Opts {
        retry_base_secs: 1,
        ..Opts::default()
    })
    .await;
    s.sink.drop_mid_data();
    let names = [
        "foxmail_gbk_recommend_xlsx",
        "zip_windows_gbk_names",
        "netease163_html_only_docx",
    ];
    for name in names {
        s.append(&corpus(name), Some("01-May-2025 10:00:00 +0800"));
    }
    let services = s.services().await;
    let db = s.db().await;
    let daemon = Running::start(&services).await;
    wait_for!(30, "3 acks tried and cut mid-DATA", {
        let out = db.outbox().await;
        out.len() == 3
            && out
                .iter()
                .all(|o| o.attempts >= 1 && o.last_error.is_some())
    });
    assert!(
        db.outbox()
            .await
            .iter()
            .all(|o| o.status != "sent" && o.status != "failed"),
        "a cut connection is a passing failure"
    );
    s.sink.accept();
    wait_for!(60, "every ack delivered", sink_count(&s.sink).await >= 3);
    wait_for!(10, "every row sent", {
        db.outbox().await.iter().all(|o| o.status == "sent")
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.sink.received().len(), 3, "each ack exactly once");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_gone_silent_times_out_and_each_ack_is_sent_once_it_answers() {
    let s = Setup::new(Opts {
        retry_base_secs: 1,
        smtp_timeout_secs: 2,
        ..Opts::default()
    })
    .await;
    s.sink.hang();
    let names = ["foxmail_gbk_recommend_xlsx", "netease163_html_only_docx"];
    for name in names {
        s.append(&corpus(name), Some("01-May-2025 10:00:00 +0800"));
    }
    let services = s.services().await;
    let db = s.db().await;
    let daemon = Running::start(&services).await;
    wait_for!(40, "2 acks tried and timed out", {
        let out = db.outbox().await;
        out.len() == 2
            && out
                .iter()
                .all(|o| o.attempts >= 1 && o.last_error.is_some())
    });
    let out = db.outbox().await;
    assert!(
        out.iter()
            .all(|o| o.status != "sent" && o.status != "failed"),
        "a silent server is a passing failure: {out:?}"
    );
    assert!(s.sink.received().is_empty());
    s.sink.accept();
    wait_for!(60, "every ack delivered", sink_count(&s.sink).await >= 2);
    wait_for!(10, "every row sent", {
        db.outbox().await.iter().all(|o| o.status == "sent")
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.sink.received().len(), 2, "each ack exactly once");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_go_once_per_offset_and_say_what_to_redo() {
    let s = Setup::new(Opts::default()).await;
    // 扬州市科技局 sends the 推荐表 electronic and scanned (forwarded mail);
    // the electronic one names a place only to the city, so it must be redone.
    s.append(
        &corpus("forwarded_rfc822_with_attachments"),
        Some("29-Apr-2025 08:45:30 +0800"),
    );
    let services = s.services().await;
    run_once(&services).await;
    let acks = s.sink.wait_for(1);
    let db = s.db().await;
    assert_eq!(db.messages().await[0].org.as_deref(), Some("yz-kjj"));
    let redo = OrgId::from("yz-kjj");
    let paused = OrgId::from("nj-kx");
    services
        .store
        .pause_reminders(&paused, Utc::now())
        .await
        .unwrap();

    let three_days = cst("2025-05-04T09:00:00+08:00");
    let one_day = cst("2025-05-06T09:00:00+08:00");
    let n3 = services.enqueue_reminders(three_days).await.unwrap();
    assert_eq!(services.enqueue_reminders(three_days).await.unwrap(), 0);
    let n1 = services.enqueue_reminders(one_day).await.unwrap();
    assert_eq!(services.enqueue_reminders(one_day).await.unwrap(), 0);
    // And once more within the same window, later that day.
    let later = cst("2025-05-06T15:00:00+08:00");
    assert_eq!(services.enqueue_reminders(later).await.unwrap(), 0);
    run_once(&services).await;

    let directory = &services.directory;
    let expected: Vec<_> = directory
        .all()
        .iter()
        .filter(|o| !o.emails.is_empty() && o.id != paused)
        .collect();
    assert_eq!(n3, expected.len());
    assert_eq!(n1, expected.len());
    let got = s.sink.wait_for(acks.len() + 2 * expected.len());
    let reminders: Vec<&Received> = got
        .iter()
        .filter(|r| header(&parse(&r.bytes), "Auto-Submitted") == "auto-generated")
        .collect();
    assert_eq!(reminders.len(), 2 * expected.len());
    let mut per_recipients: BTreeMap<Vec<String>, Vec<&Received>> = BTreeMap::new();
    for r in &reminders {
        let mut to = r.rcpt_tos.clone();
        to.sort();
        per_recipients.entry(to).or_default().push(r);
    }
    for org in &expected {
        let mut to = org.emails.clone();
        to.sort();
        let mails = per_recipients.get(&to).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(mails.len(), 2, "{}: one reminder per offset", org.id);
        let ids: BTreeSet<String> = mails.iter().map(|r| message_id(r)).collect();
        assert_eq!(ids.len(), 2, "{}", org.id);
        for r in mails {
            let m = parse(&r.bytes);
            assert_eq!(header(&m, "X-Auto-Response-Suppress"), "All");
            assert!(m.message_id().unwrap().ends_with(MSGID_DOMAIN));
        }
    }
    let org = directory.get(&paused).unwrap();
    assert!(
        reminders
            .iter()
            .all(|r| r.rcpt_tos.iter().all(|t| !org.emails.contains(t))),
        "no reminder to {paused}"
    );
    // The unit that sent both forms is told what to redo, not that something is missing.
    let yz = directory.get(&redo).unwrap();
    let mut to = yz.emails.clone();
    to.sort();
    let text = body_text(per_recipients[&to][0]);
    assert!(text.contains("推荐表电子版（需修改后重新发送）"), "{text}");
    assert!(text.contains("已收到：推荐表盖章扫描件"), "{text}");
    let outbox = db.outbox().await;
    assert_eq!(
        outbox.iter().filter(|o| o.kind == "reminder").count(),
        2 * expected.len()
    );
    assert!(outbox.iter().all(|o| o.status == "sent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_goes_to_the_coordinators_with_the_xlsx() {
    let s = Setup::new(Opts::default()).await;
    s.append(
        &corpus("foxmail_gbk_recommend_xlsx"),
        Some("28-Apr-2025 10:13:00 +0800"),
    );
    s.append(
        &corpus("netease163_utf8_statistics_xlsx_jpg"),
        Some("10-Jun-2025 10:00:00 +0800"),
    );
    let services = s.services().await;
    run_once(&services).await;
    let acks = s.sink.wait_for(2).len();

    assert!(services.enqueue_digest(Utc::now()).await.unwrap());
    run_once(&services).await;
    let got = s.sink.wait_for(acks + 1);
    let digest = &got[acks];
    let mut to = digest.rcpt_tos.clone();
    to.sort();
    let mut coordinators = services.config.schedule.coordinators.clone();
    coordinators.sort();
    assert_eq!(to, coordinators);
    let m = parse(&digest.bytes);
    assert_eq!(header(&m, "Auto-Submitted"), "auto-generated");
    let xlsx: Vec<_> = m
        .attachments()
        .filter(|a| a.attachment_name().is_some_and(|n| n.ends_with(".xlsx")))
        .collect();
    assert_eq!(xlsx.len(), 1, "one .xlsx attached");
    let bytes = xlsx[0].contents().to_vec();
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("a workbook");
    use calamine::Reader;
    let names = wb.sheet_names();
    let sheet = names
        .iter()
        .find(|n| n.starts_with("推荐表"))
        .unwrap_or_else(|| panic!("a 推荐表 sheet in {names:?}"))
        .clone();
    let range = wb.worksheet_range(&sheet).unwrap();
    let cells: Vec<String> = range.rows().flatten().map(|c| c.to_string()).collect();
    for want in [
        "南京市科学技术局",
        "南京“科技工作者日”院士专家进社区",
        "青少年科学嘉年华",
    ] {
        assert!(
            cells.iter().any(|c| c == want),
            "{want} in {sheet}: {cells:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.starts_with("统计表")),
        "the statistics sheet too: {names:?}"
    );
    // Once per fire time.
    let at = cst("2025-05-05T08:30:00+08:00");
    assert!(services.enqueue_digest(at).await.unwrap());
    assert!(!services.enqueue_digest(at).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_store_works_on_postgresql() {
    let Some(schema) = pg::PgSchema::create().await else {
        eprintln!("BAOSONG_SKIP_PG=1: skipped");
        return;
    };
    let s = Setup::new(Opts {
        database: Some(schema.url.clone()),
        ..Opts::default()
    })
    .await;
    let uids = [
        s.append(
            &corpus("foxmail_gbk_recommend_xlsx"),
            Some("28-Apr-2025 10:13:00 +0800"),
        ),
        s.append(&corpus("qq_autoreply"), Some("30-Apr-2025 08:01:10 +0800")),
        s.append(
            &corpus("applemail_octet_stream_docx"),
            Some("07-May-2025 00:30:00 +0800"),
        ),
    ];
    let services = s.services().await;
    assert_eq!(services.store.backend(), baosong::store::Backend::Postgres);
    let db = s.db().await;
    let daemon = Running::start(&services).await;
    wait_for!(30, "3 stored, 2 acks", {
        db.messages().await.len() == 3 && sink_count(&s.sink).await >= 2
    });
    daemon.stop().await;
    let msgs = db.messages().await;
    assert_archived(s.root(), &msgs);
    let late: Vec<Option<i16>> = msgs.iter().map(|m| m.late).collect();
    assert_eq!(late[2], Some(1), "INTERNALDATE after the deadline: late");
    assert_eq!(late[0], Some(0));
    assert_eq!(seen_uids(&s.dovecot), BTreeSet::from(uids));
    // A second pass changes nothing.
    run_once(&services).await;
    assert_eq!(db.messages().await.len(), 3);
    let outbox = db.outbox().await;
    assert_eq!(outbox.len(), 2);
    assert!(outbox.iter().all(|o| o.status == "sent"));
    assert_eq!(s.sink.received().len(), 2);
    services.store.close().await;
    db.0.close().await;
}

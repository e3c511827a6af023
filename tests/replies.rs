//! Coordinators act by replying to the digest. End to end: a real digest
//! goes out through a real SMTP server (aiosmtpd), replies written the way
//! Outlook, 163 web mail and QQ Mail write them arrive in a real Dovecot,
//! their commands take effect and are answered; forged ones are stored and
//! never obeyed. Then, in-process on SQLite and PostgreSQL: a reply offered
//! again is not obeyed twice, and the digest says what changed since the
//! last one.
//!
//! The fixtures number the unknown sender's mail #42: the store is started
//! at #42 (a placeholder row #41) so the real mail gets that number.

#[allow(dead_code)]
#[path = "common/dovecot.rs"]
mod dovecot;
#[allow(dead_code)]
#[path = "common/pg.rs"]
mod pg;
#[allow(dead_code)]
#[path = "common/smtp.rs"]
mod smtp;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baosong::actions::Services;
use baosong::clock::{Clock, FixedClock};
use baosong::commands;
use baosong::daemon::{self, RunOptions};
use baosong::model::{Origin, RawMessage};
use baosong::outbound::AttentionKind;
use baosong::store::MessageId;
use baosong::types::OrgId;
use chrono::{DateTime, Utc};
use dovecot::Dovecot;
use mail_parser::{MessageParser, MimeHeaders};
use smtp::{Received, SinkOptions, SmtpSink};
use tokio_util::sync::CancellationToken;

const OURS: &str = "kjtrcc83236071@163.com";
const KX: &str = "jskxdxb@163.com";
/// The coordinators who reply from Outlook and from QQ Mail.
const OUTLOOK: &str = "zhangli@kjt.js.gov.cn";
const QQ: &str = "wangmin_kjt@qq.com";
const UNKNOWN: &str = "wangwu1987@qq.com";
const AUTHSERV: &str = "mx.kjt.example.cn";
const MSGID_DOMAIN: &str = "baosong.kjt.example.cn";
/// The digest the fixtures answer.
const FIXTURE_DIGEST: &str = "<20250620.k3j9x2m4q8r7t6y5.digest@baosong.kjt.example.cn>";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/replies")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).expect("fixtures are ASCII on the wire");
    assert!(text.contains(from), "no `{from}` to replace");
    text.replace(from, to).into_bytes()
}

/// A fixture answering the digest `digest_id` instead of the one it was written for.
fn citing(name: &str, digest_id: &str) -> Vec<u8> {
    replace(&fixture(name), FIXTURE_DIGEST, digest_id)
}

/// The unknown sender's mail that becomes #42.
fn unknown_mail() -> Vec<u8> {
    format!(
        "From: =?UTF-8?B?546L5LqU?= <{UNKNOWN}>\r\nTo: {OURS}\r\nSubject: =?UTF-8?B?5p2Q5paZ?=\r\n\
         Message-ID: <material-1@qq.com>\r\nDate: Mon, 9 Jun 2025 16:12:00 +0800\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n附件见后。\r\n"
    )
    .into_bytes()
}

fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default().parse(bytes).expect("a mail")
}

fn header(r: &Received, name: &str) -> String {
    parse(&r.bytes)
        .header_raw(name)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn text(r: &Received) -> String {
    parse(&r.bytes)
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default()
}

fn subject(r: &Received) -> String {
    parse(&r.bytes).subject().unwrap_or_default().to_owned()
}

fn xlsx_attached(r: &Received) -> bool {
    parse(&r.bytes)
        .attachments()
        .any(|a| a.attachment_name().is_some_and(|n| n.ends_with(".xlsx")))
}

/// One test's Dovecot (mailbox `kjt`), SMTP sink, SQLite store and clock.
struct World {
    dovecot: Dovecot,
    sink: SmtpSink,
    _dir: tempfile::TempDir,
    clock: Arc<FixedClock>,
    services: Services,
}

impl World {
    async fn new() -> World {
        let dovecot = Dovecot::start(false);
        let sink = SmtpSink::start(SinkOptions::default());
        let dir = tempfile::Builder::new()
            .prefix("baosong-replies-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        std::fs::write(root.join("imap-password"), dovecot.password()).unwrap();
        let path = root.join("baosong.toml");
        std::fs::write(&path, config_text(&dovecot, sink.port, root)).unwrap();
        let (config, directory) = commands::load(Some(&path)).expect("config loads");
        // Outside every reminder window: only what a test sends goes out.
        let clock = Arc::new(FixedClock::new(at("2025-06-10T08:30:00+08:00")));
        let services = Services::open(config, directory, clock.clone())
            .await
            .expect("services");
        let pool = sqlx::AnyPool::connect(&services.config.store.database)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO messages (id, sha256, size, archive_path, origin_key, origin_kind, \
               parse_status, ack_reason, body_excerpt, stored_at) \
             VALUES (41, 'placeholder', 0, '-', 'placeholder', 'file', 'ok', 'placeholder', '', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        World {
            dovecot,
            sink,
            _dir: dir,
            clock,
            services,
        }
    }

    /// Delivers a mail into INBOX, arriving at the test's clock time.
    fn append(&self, bytes: &[u8]) {
        let arrived = self
            .clock
            .now()
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
            .format("%d-%b-%Y %H:%M:%S %z")
            .to_string();
        self.dovecot.probe().append("INBOX", bytes, Some(&arrived));
    }

    /// Reads the mailbox, sends what is queued, returns.
    async fn run_once(&self) {
        let services = &self.services;
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

    /// #42 from an unknown sender, then a real digest; its Message-ID.
    async fn digest_listing_42(&self) -> String {
        self.append(&unknown_mail());
        self.run_once().await;
        let stored = self
            .services
            .store
            .show_message(MessageId(42))
            .await
            .unwrap();
        assert_eq!(
            stored
                .expect("the unknown mail is #42")
                .message
                .from
                .as_deref(),
            Some(UNKNOWN)
        );
        assert!(
            self.services
                .enqueue_digest(self.clock.now())
                .await
                .unwrap()
        );
        self.run_once().await;
        let got = self.sink.wait_for(1);
        let digest = &got[0];
        let mut to = digest.rcpt_tos.clone();
        to.sort();
        let mut coordinators = [OURS, KX, OUTLOOK, QQ].map(str::to_owned);
        coordinators.sort();
        assert_eq!(to, coordinators);
        let body = text(digest);
        assert!(body.contains("【需处理】1项"), "{body}");
        assert!(body.contains("#42（新）"), "{body}");
        format!("<{}>", parse(&digest.bytes).message_id().unwrap())
    }

    async fn org_of(&self, message: i64) -> Option<String> {
        self.services
            .store
            .show_message(MessageId(message))
            .await
            .unwrap()
            .and_then(|d| d.submission)
            .and_then(|s| s.org)
            .map(|o| o.to_string())
    }

    async fn count(&self, sql: &str) -> i64 {
        let pool = sqlx::AnyPool::connect(&self.services.config.store.database)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

/// The example config with mailbox `kjt` on the test's Dovecot (the other
/// two as empty Maildirs), SMTP to the sink, the store in the test's folder,
/// the test's mail server's authserv-id trusted, coordinators also reading
/// in Outlook and QQ Mail, and cron lines that never fire.
fn config_text(d: &Dovecot, smtp_port: u16, root: &Path) -> String {
    let ex = baosong::config::EXAMPLE_TOML;
    let head = &ex[..ex.find("[[mailbox]]").unwrap()];
    let tail = &ex[ex.find("[organisations]").unwrap()..];
    let replace = |text: &str, from: &str, to: &str| {
        assert!(text.contains(from), "the example config has no `{from}`");
        text.replacen(from, to, 1)
    };
    let head = replace(
        head,
        "\"sqlite://var/baosong.db\"",
        &format!("\"sqlite://{}\"", root.join("b.db").display()),
    );
    let head = replace(
        &head,
        "archive = \"var/archive\"",
        &format!("archive = \"{}\"", root.join("archive").display()),
    );
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/organisations.csv");
    let tail = replace(
        tail,
        "file = \"examples/organisations.csv\"",
        &format!("file = \"{}\"", directory.display()),
    );
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
    let tail = replace(
        &tail,
        &format!("coordinators = [\"{OURS}\", \"{KX}\"]"),
        &format!("coordinators = [\"{OURS}\", \"{KX}\", \"{OUTLOOK}\", \"{QQ}\"]"),
    );
    let mut maildirs = String::new();
    for (name, address) in [("kx", KX), ("kpy", "kepuyue@cast.example.cn")] {
        let md = root.join("maildir").join(name);
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
        maildirs.push_str(&format!(
            "[[mailbox]]\nname = \"{name}\"\naddress = \"{address}\"\nmaildir = \"{}\"\nafter = \"seen\"\n\n",
            md.display()
        ));
    }
    format!(
        r#"{head}
[[mailbox]]
name = "kjt"
address = "{OURS}"
after = "seen"
poll_interval_secs = 600

[mailbox.imap]
host = "127.0.0.1"
port = {imap_port}
tls = "none"
username = "{user}"
password = {{ file = "{password}" }}

{maildirs}
[smtp]
transport = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "江苏省科技活动周报送 <{OURS}>"
message_id_domain = "{MSGID_DOMAIN}"

[trust]
authserv_ids = ["{AUTHSERV}"]

{tail}"#,
        imap_port = d.port(),
        user = d.user(),
        password = root.join("imap-password").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinators_reply_to_a_real_digest_assigns_pauses_and_gets_the_spreadsheet() {
    let w = World::new().await;
    let digest_id = w.digest_listing_42().await;
    assert_eq!(w.org_of(42).await, None);

    // 163 web mail: `指派：#42，南京市科技局` / `暂停提醒：南通市科协。` / `汇总表`.
    w.append(&citing("netease163.eml", &digest_id));
    w.run_once().await;
    let got = w.sink.wait_for(3);

    // #42 is 南京市科学技术局's now, its sender learned, its held ack sent.
    assert_eq!(w.org_of(42).await.as_deref(), Some("nj-kjj"));
    let learned = w.services.store.learned_addresses().await.unwrap();
    assert!(learned.contains(&(UNKNOWN.to_owned(), OrgId::from("nj-kjj"))));
    let ack = got
        .iter()
        .find(|r| r.rcpt_tos == [UNKNOWN])
        .expect("the held ack went out");
    assert_eq!(header(ack, "In-Reply-To"), "<material-1@qq.com>");
    assert!(text(ack).contains("南京市科学技术局"), "{}", text(ack));
    // Reminders to 南通市科协 are paused.
    assert_eq!(
        w.services.store.paused_orgs().await.unwrap(),
        [OrgId::from("nt-kx")]
    );
    // The answer: threaded under the coordinator's mail, each command said, the workbook attached.
    let answer = got
        .iter()
        .find(|r| r.rcpt_tos == [OURS])
        .expect("the coordinator is answered");
    assert_eq!(
        header(answer, "In-Reply-To"),
        "<6a5b2c1d.4e2f.19788a1b2c3.Coremail.kjtrcc83236071@163.com>"
    );
    assert!(header(answer, "References").contains(&digest_id));
    assert_eq!(header(answer, "Auto-Submitted"), "auto-replied");
    assert_eq!(subject(answer), "指令处理结果（已办3条）");
    let body = text(answer);
    for said in [
        "1. “指派：#42，南京市科技局”",
        "✔ 已办：#42 已指派给南京市科学技术局（nj-kjj），已记住发件地址 wangwu1987@qq.com，回执随即发出",
        "2. “暂停提醒：南通市科协。”",
        "✔ 已办：已暂停给南通市科学技术协会（nt-kx）的提醒",
        "3. “汇总表”",
        "汇总表见附件",
    ] {
        assert!(body.contains(said), "{said} in:\n{body}");
    }
    assert!(
        !body.contains("4. "),
        "only the commands above the quote:\n{body}"
    );
    assert!(xlsx_attached(answer));
    // The audit log: who, when, which mail, what changed; `baosong log` lists it.
    assert_eq!(
        w.count("SELECT COUNT(*) FROM command_log WHERE via = 'mail' AND ok = 1")
            .await,
        3
    );
    let log = commands::log(&w.services, 10).await.unwrap();
    assert!(log.contains(&format!("{OURS} via mail (mail #")), "{log}");
    assert!(log.contains("已暂停给南通市科学技术协会"), "{log}");
    // The reply is stored, neither acknowledged nor listed for a person.
    assert!(
        w.services
            .digest_data(w.clock.now())
            .await
            .unwrap()
            .attention
            .is_empty()
    );

    // Our answer, delivered back into the contact mailbox (the coordinator
    // address is that mailbox), is neither obeyed nor answered again.
    w.append(&answer.bytes);
    w.run_once().await;
    assert_eq!(w.sink.received().len(), 3);
    assert_eq!(w.count("SELECT COUNT(*) FROM command_log").await, 3);

    // The same commands as Outlook and QQ Mail write and quote them.
    w.append(&citing("outlook.eml", &digest_id));
    w.append(&citing("qq.eml", &digest_id));
    w.run_once().await;
    let got = w.sink.wait_for(5);
    for (coordinator, first) in [
        (OUTLOOK, "1. “指派 #42 南京市科技局”"),
        (QQ, "1. “指派 ＃４２ 南京市科技局”"),
    ] {
        let answer = got
            .iter()
            .find(|r| r.rcpt_tos == [coordinator])
            .unwrap_or_else(|| panic!("{coordinator} is answered"));
        let body = text(answer);
        assert_eq!(subject(answer), "指令处理结果（已办3条）", "{body}");
        assert!(body.contains(first), "{body}");
        assert!(
            body.contains("✔ 已办：#42 已指派给南京市科学技术局"),
            "{body}"
        );
        assert!(body.contains("“汇总表”"), "{body}");
        assert!(!body.contains("4. "), "{body}");
        assert!(xlsx_attached(answer));
    }
    assert_eq!(got.iter().filter(|r| r.rcpt_tos == [UNKNOWN]).count(), 1);
    assert_eq!(
        w.count("SELECT COUNT(*) FROM command_log").await,
        9,
        "three commands from each of three replies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_that_are_not_a_coordinators_answer_to_our_digest_are_never_obeyed() {
    let w = World::new().await;
    let digest_id = w.digest_listing_42().await;
    let reply = citing("netease163.eml", &digest_id);
    let from_line = String::from_utf8_lossy(&reply)
        .lines()
        .find(|l| l.starts_with("From: "))
        .expect("a From line")
        .to_owned();
    let own_id = "<6a5b2c1d.4e2f.19788a1b2c3.Coremail.kjtrcc83236071@163.com>";
    let variant =
        |n: usize, bytes: Vec<u8>| replace(&bytes, own_id, &format!("<forged-{n}@163.com>"));
    // A unit, not a coordinator, answering the real digest.
    let unit = variant(
        1,
        replace(&reply, &from_line, "From: <njkjjrcc@nanjing.gov.cn>"),
    );
    // A coordinator's address, citing a digest we never sent.
    let forged = variant(
        2,
        replace(
            &reply,
            &digest_id,
            "<20250620.aaaaaaaaaaaaaaaa.digest@baosong.kjt.example.cn>",
        ),
    );
    // A coordinator's address and the real digest, but the receiving server says DMARC failed.
    let mut dmarc = format!(
        "Authentication-Results: {AUTHSERV}; spf=softfail smtp.mailfrom=163.com; \
         dkim=none; dmarc=fail (p=none dis=none) header.from=163.com\r\n"
    )
    .into_bytes();
    dmarc.extend(variant(3, reply.clone()));
    // A coordinator's address citing nothing at all: a new mail, not a reply.
    let uncited = replace(
        &replace(
            &variant(5, reply.clone()),
            &format!("In-Reply-To: {digest_id}\r\n"),
            "",
        ),
        &format!("References: {digest_id}\r\n"),
        "",
    );
    for mail in [&unit, &forged, &dmarc, &uncited] {
        w.append(mail);
    }
    w.run_once().await;

    assert_eq!(w.org_of(42).await, None, "#42 is not assigned");
    assert!(w.services.store.paused_orgs().await.unwrap().is_empty());
    assert_eq!(w.count("SELECT COUNT(*) FROM command_log").await, 0);
    assert_eq!(
        w.count("SELECT COUNT(*) FROM outbox WHERE kind = 'reply'")
            .await,
        0
    );
    // Each is stored as ordinary mail: the unit's is acknowledged like any
    // mail of a known unit, the two forgeries are listed for the coordinators,
    // the uncited one (from our own contact address) gets no ack.
    assert_eq!(w.count("SELECT COUNT(*) FROM messages").await, 1 + 1 + 4);
    let got = w.sink.wait_for(2);
    assert_eq!(got[1].rcpt_tos, ["njkjjrcc@nanjing.gov.cn"]);
    assert!(subject(&got[1]).starts_with("回执"), "{}", subject(&got[1]));
    assert_eq!(
        w.count("SELECT COUNT(*) FROM outbox").await,
        2,
        "the digest and the unit's ack, nothing else"
    );
    let attention = w
        .services
        .digest_data(w.clock.now())
        .await
        .unwrap()
        .attention;
    let refused: Vec<&str> = attention
        .iter()
        .filter(|a| a.reason.contains("像是协调人的指令回复，但未执行"))
        .map(|a| a.reason.as_str())
        .collect();
    assert_eq!(refused.len(), 2, "{attention:?}");
    assert!(refused.iter().any(|r| r.contains("不是本系统发给该协调人")));
    assert!(refused.iter().any(|r| r.contains("DMARC")));

    // The real reply, but fifteen days after the digest: too late.
    w.clock.advance(chrono::Duration::days(15));
    w.append(&variant(4, reply));
    w.run_once().await;
    assert_eq!(w.org_of(42).await, None);
    assert_eq!(w.count("SELECT COUNT(*) FROM command_log").await, 0);
    let attention = w
        .services
        .digest_data(w.clock.now())
        .await
        .unwrap()
        .attention;
    assert!(
        attention.iter().any(|a| a.reason.contains("超过14天")),
        "{attention:?}"
    );
}

// ------------------------------------------------------------ in-process

/// One store the in-process tests run on; dropping it removes it.
struct Offline {
    label: &'static str,
    services: Services,
    _dir: tempfile::TempDir,
    _pg: Option<pg::PgSchema>,
}

/// Services with the example config, no servers, on SQLite and (when the
/// test PostgreSQL is there) on PostgreSQL.
async fn offline(clock: &Arc<FixedClock>) -> Vec<Offline> {
    let mut stores = vec![("sqlite", None)];
    if let Some(schema) = pg::PgSchema::create().await {
        stores.push(("postgres", Some(schema)));
    }
    let mut out = Vec::new();
    for (label, pg) in stores {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            baosong::config::Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        config.store.database = match &pg {
            Some(schema) => schema.url.clone(),
            None => format!("sqlite://{}", dir.path().join("b.db").display()),
        };
        config.store.archive = dir.path().join("archive");
        config.smtp.message_id_domain = MSGID_DOMAIN.into();
        config.schedule.coordinators = [OURS, KX, OUTLOOK, QQ].map(str::to_owned).to_vec();
        let services = Services::open(
            config,
            baosong::directory::Directory::example(),
            clock.clone(),
        )
        .await
        .unwrap();
        out.push(Offline {
            label,
            services,
            _dir: dir,
            _pg: pg,
        });
    }
    out
}

fn raw(bytes: Vec<u8>, name: &str) -> RawMessage {
    RawMessage::new(
        bytes,
        Origin::File {
            path: name.into(),
            index: None,
        },
        None,
    )
}

fn corpus(name: &str) -> RawMessage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(format!("{name}.eml"));
    raw(std::fs::read(&path).unwrap(), name)
}

/// Marks every due outbox row sent now; the rows.
async fn send_all(services: &Services) -> Vec<baosong::store::OutboxRow> {
    let now = services.now();
    let rows = services
        .store
        .claim_outbox("test", Duration::from_secs(60), now, 100)
        .await
        .unwrap();
    let sent: Vec<_> = rows.iter().map(|r| (r.id, now)).collect();
    services.store.mark_sent(&sent, "test").await.unwrap();
    rows
}

/// A digest enqueued and marked sent now (the outbox worker's part); its Message-ID.
async fn digest_sent(services: &Services) -> String {
    assert!(services.enqueue_digest(services.now()).await.unwrap());
    send_all(services)
        .await
        .into_iter()
        .find(|r| r.kind == baosong::store::OutboxKind::Digest)
        .expect("a digest row")
        .message_id
}

async fn count(services: &Services, sql: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(&services.config.store.database)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_offered_again_after_a_crash_does_each_command_once_and_answers_once() {
    let clock = Arc::new(FixedClock::new(at("2025-06-10T08:30:00+08:00")));
    for db in offline(&clock).await {
        let (services, label) = (&db.services, db.label);
        let digest = digest_sent(services).await;
        let reply = raw(citing("outlook.eml", &digest), "outlook.eml");
        services.process(&reply).await.unwrap();
        let log = services.store.command_log(10).await.unwrap();
        assert_eq!(log.len(), 3, "{label}");
        let assign = log.iter().find(|e| e.verb == "assign").unwrap();
        assert!(!assign.ok, "{label}: there is no #42 here");
        assert_eq!(assign.said, "没有编号为 #42 的邮件", "{label}");
        // A crash after the first command: the rest and the answer were lost.
        let pool = sqlx::AnyPool::connect(&services.config.store.database)
            .await
            .unwrap();
        for sql in [
            "DELETE FROM command_log WHERE seq > 0",
            "DELETE FROM outbox WHERE kind = 'reply'",
            "DELETE FROM reminder_pauses",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
        services.process(&reply).await.unwrap();
        services.process(&reply).await.unwrap();
        let log = services.store.command_log(10).await.unwrap();
        assert_eq!(log.len(), 3, "{label}: {log:?}");
        assert_eq!(
            services.store.paused_orgs().await.unwrap(),
            [OrgId::from("nt-kx")],
            "{label}"
        );
        assert_eq!(
            count(services, "SELECT COUNT(*) FROM outbox WHERE kind = 'reply'").await,
            1,
            "{label}"
        );
        // Read again after a config change, the reply stays a command mail:
        // not acknowledged, nobody to look at it, its commands not redone.
        services.reprocess().await.unwrap();
        assert!(
            services
                .digest_data(clock.now())
                .await
                .unwrap()
                .attention
                .is_empty(),
            "{label}"
        );
        assert_eq!(services.store.command_log(10).await.unwrap().len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_says_what_changed_since_the_last_one_and_numbers_what_needs_a_person() {
    // After the 推荐表 deadline (5月6日) by more than a week; before 6月22日.
    let clock = Arc::new(FixedClock::new(at("2025-06-10T08:30:00+08:00")));
    for db in offline(&clock).await {
        clock.set(at("2025-06-10T08:30:00+08:00"));
        let (services, label) = (&db.services, db.label);
        let first = services.digest_data(clock.now()).await.unwrap();
        assert!(
            first.changes.is_none(),
            "{label}: nothing to compare the first digest with"
        );
        let js = &first.campaigns[0];
        assert!(
            js.deadlines
                .iter()
                .all(|d| d.name != "特色群众性主题实践活动推荐表")
        );
        assert!(
            js.earlier
                .iter()
                .any(|d| d.name == "特色群众性主题实践活动推荐表")
        );
        digest_sent(services).await;

        // A unit's 统计表, a password-protected file and a stranger's mail
        // arrive; one ack cannot be delivered.
        clock.advance(chrono::Duration::hours(2));
        for mail in [
            corpus("netease163_utf8_statistics_xlsx_jpg"),
            corpus("encrypted_xlsx"),
            raw(unknown_mail(), "unknown.eml"),
        ] {
            services.process(&mail).await.unwrap();
        }
        let now = services.now();
        let rows = services
            .store
            .claim_outbox("test", Duration::from_secs(60), now, 100)
            .await
            .unwrap();
        let ack = &rows[0];
        services
            .store
            .mark_failed(ack.id, "test", "550 Mailbox not found")
            .await
            .unwrap();

        clock.advance(chrono::Duration::days(1));
        let second = services.digest_data(clock.now()).await.unwrap();
        let changes = second
            .changes
            .as_ref()
            .expect("changes since the first digest");
        assert_eq!(changes.since.to_rfc3339(), "2025-06-10T08:30:00+08:00");
        let mut units: Vec<&str> = changes
            .received
            .iter()
            .map(|r| r.org_name.as_str())
            .collect();
        units.sort_unstable();
        assert_eq!(
            units,
            ["宿迁市科学技术局", "徐州市科学技术协会"],
            "{label}: {changes:?}"
        );
        let statistics = changes
            .received
            .iter()
            .find(|r| r.org_name == "徐州市科学技术协会")
            .unwrap();
        assert!(
            statistics.files.iter().any(|f| f == "统计表电子版"),
            "{changes:?}"
        );
        let send = format!("#S{}", ack.id);
        let item = |number: &str| {
            second
                .attention
                .iter()
                .find(|a| a.number == number)
                .unwrap_or_else(|| panic!("{label}: {number} in {:?}", second.attention))
        };
        assert_eq!(item(&send).kind, AttentionKind::Send);
        assert!(item(&send).new);
        assert!(item(&send).reason.contains("550 Mailbox not found"));
        let by_reason = |what: &str| {
            second
                .attention
                .iter()
                .find(|a| a.kind == AttentionKind::Message && a.reason.contains(what))
                .unwrap_or_else(|| panic!("{label}: {what} in {:?}", second.attention))
                .number
                .clone()
        };
        let stranger = by_reason("未能确认单位");
        let encrypted = by_reason("附件无法读取");
        let text = services.templates.digest(&second).unwrap().text;
        assert!(text.contains(&format!("{send}（新）")), "{text}");
        assert!(text.contains("新收到2封"), "{text}");

        // What was listed is not new the next time; what a coordinator ignores
        // (here from the command line) is gone.
        digest_sent(services).await;
        clock.advance(chrono::Duration::days(1));
        for number in [&send, &stranger, &encrypted] {
            let out = commands::ignore(services, number).await.unwrap();
            assert!(out.contains("已忽略"), "{out}");
        }
        assert!(commands::ignore(services, "S999").await.is_err());
        let third = services.digest_data(clock.now()).await.unwrap();
        assert!(third.attention.is_empty(), "{label}: {:?}", third.attention);
        assert!(third.changes.unwrap().received.is_empty());
        assert_eq!(
            count(
                services,
                "SELECT COUNT(*) FROM command_log WHERE via = 'cli'"
            )
            .await,
            4,
            "{label}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinators_reply_to_an_ack_sent_to_them_is_obeyed_and_answered() {
    let clock = Arc::new(FixedClock::new(at("2025-06-10T08:30:00+08:00")));
    for db in offline(&clock).await {
        let (services, label) = (&db.services, db.label);
        // A coordinator sends a unit's material on from their own Outlook
        // address: not in the directory, so the ack waits for a person.
        let material = format!(
            "From: <{OUTLOOK}>\r\nTo: {OURS}\r\nSubject: =?UTF-8?B?5p2Q5paZ?=\r\n\
             Message-ID: <fwd-1@kjt.js.gov.cn>\r\nDate: Tue, 10 Jun 2025 08:00:00 +0800\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n南京的材料。\r\n"
        );
        let baosong::store::Recorded::New { message_id, .. } = services
            .process(&raw(material.into_bytes(), "material.eml"))
            .await
            .unwrap()
        else {
            panic!("{label}: a new mail");
        };
        assert!(send_all(services).await.is_empty(), "{label}: ack held");
        let out = commands::assign(services, message_id.0, "南京市科技局")
            .await
            .unwrap();
        assert!(out.contains("已指派给南京市科学技术局"), "{label}: {out}");
        let ack = send_all(services)
            .await
            .into_iter()
            .find(|r| r.kind == baosong::store::OutboxKind::Ack)
            .unwrap_or_else(|| panic!("{label}: the held ack"));
        assert_eq!(ack.to, [OUTLOOK], "{label}");

        // The coordinator answers the ack, as Outlook quotes it.
        clock.advance(chrono::Duration::hours(1));
        let reply = format!(
            "From: <{OUTLOOK}>\r\nTo: {OURS}\r\nSubject: =?UTF-8?B?5Zue5aSN77ya5Zue5omn?=\r\n\
             Message-ID: <re-ack-1@kjt.js.gov.cn>\r\nIn-Reply-To: {id}\r\nReferences: \
             <fwd-1@kjt.js.gov.cn> {id}\r\nDate: Tue, 10 Jun 2025 09:30:00 +0800\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             暂停提醒 南京市科技局\r\n\r\n发件人: 报送 <{OURS}>\r\n发送时间: 2025年6月10日 8:30\r\n\
             主题: 回执\r\n\r\n恢复提醒 南京市科技局\r\n",
            id = ack.message_id
        );
        services
            .process(&raw(reply.into_bytes(), "re-ack.eml"))
            .await
            .unwrap();
        assert_eq!(
            services.store.paused_orgs().await.unwrap(),
            [OrgId::from("nj-kjj")],
            "{label}: the quoted 恢复提醒 is not a command"
        );
        let answer = send_all(services).await;
        assert_eq!(answer.len(), 1, "{label}");
        assert_eq!(answer[0].kind, baosong::store::OutboxKind::Reply);
        assert_eq!(answer[0].to, [OUTLOOK], "{label}");
        let log = commands::log(services, 10).await.unwrap();
        assert!(
            log.contains(&format!("{OUTLOOK} via mail (mail #")),
            "{label}: {log}"
        );
    }
}

//! The daemon in-process with scripted seams: Maildirs (real files), SQLite,
//! a scripted mail sender, scripted sources and a fixed clock. No server is
//! needed; the Dovecot/aiosmtpd tests in `daemon.rs` are the end-to-end tier.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baosong::actions::Services;
use baosong::clock::{Clock, FixedClock};
use baosong::commands;
use baosong::config::{Config, Sender};
use baosong::daemon::{self, RunOptions};
use baosong::directory::Directory;
use baosong::extract::{Extraction, Extractor, InProcess};
use baosong::intake::FileEntry;
use baosong::model::{Origin, RawMessage};
use baosong::outbound::transport::{MailSender, SendError};
use baosong::source::{MailboxSource, SourceError};
use baosong::store::OutboxKind;
use baosong::types::MailboxName;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

const KJT: &str = "kjtrcc83236071@163.com";
const KX: &str = "jskxdxb@163.com";
/// In the example directory: 南京市科学技术局.
const KNOWN: &str = "njkjjrcc@nanjing.gov.cn";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A mail as the server took it: envelope from, recipients, bytes.
type Taken = (String, Vec<String>, Vec<u8>);

/// A mail server that answers from a script, then accepts.
#[derive(Default)]
struct ScriptedSmtp {
    answers: Mutex<VecDeque<SendError>>,
    sent: Mutex<Vec<Taken>>,
}

impl ScriptedSmtp {
    fn refusing(first: Vec<SendError>) -> Self {
        Self {
            answers: Mutex::new(first.into()),
            sent: Mutex::default(),
        }
    }

    fn sent(&self) -> Vec<Taken> {
        self.sent.lock().unwrap().clone()
    }

    /// The acks sent (reminders and the digest due at the test's time left out).
    fn acks(&self) -> Vec<Taken> {
        self.sent()
            .into_iter()
            .filter(|(_, _, b)| header_block(b).contains("Auto-Submitted: auto-replied"))
            .collect()
    }
}

#[async_trait::async_trait]
impl MailSender for ScriptedSmtp {
    async fn send(&self, from: &str, to: &[String], bytes: &[u8]) -> Result<(), SendError> {
        if let Some(e) = self.answers.lock().unwrap().pop_front() {
            return Err(e);
        }
        self.sent
            .lock()
            .unwrap()
            .push((from.to_owned(), to.to_vec(), bytes.to_vec()));
        Ok(())
    }
}

/// One test's folder: the example config on Maildirs, SQLite and the file
/// transport there, the clock fixed.
struct World {
    dir: tempfile::TempDir,
    config: Config,
    directory: Directory,
    clock: Arc<FixedClock>,
    seq: usize,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut config = Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        config.store.database = format!("sqlite://{}", root.join("b.db").display());
        config.store.archive = root.join("archive");
        config.smtp.directory = root.join("outbox");
        for mb in &mut config.mailboxes {
            let md = root.join("maildir").join(mb.name.as_str());
            for sub in ["new", "cur", "tmp"] {
                std::fs::create_dir_all(md.join(sub)).unwrap();
            }
            mb.maildir = Some(md);
        }
        config.mailboxes[1].from = Some(Sender::parse(&format!("江苏省科协 <{KX}>")).unwrap());
        World {
            dir,
            config,
            directory: Directory::example(),
            clock: Arc::new(FixedClock::new(at("2025-05-04T10:00:00+08:00"))),
            seq: 0,
        }
    }

    fn maildir(&self, mailbox: &str) -> PathBuf {
        self.dir.path().join("maildir").join(mailbox)
    }

    /// Delivers `bytes` into a mailbox's `new/`, oldest first by name.
    fn deliver(&mut self, mailbox: &str, bytes: &[u8]) {
        self.seq += 1;
        let name = format!("{}.M{}P1.test", 1_746_000_000 + self.seq, self.seq);
        // Through tmp/, as a delivery agent does: a running daemon never
        // sees a half-written file.
        let md = self.maildir(mailbox);
        std::fs::write(md.join("tmp").join(&name), bytes).unwrap();
        std::fs::rename(md.join("tmp").join(&name), md.join("new").join(&name)).unwrap();
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

    /// One `run --once` over the Maildirs with `sender`.
    async fn run_once(&self, services: &Services, sender: Arc<dyn MailSender>) {
        let sources = commands::mailbox_sources(services).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(60),
            daemon::run(
                services.clone(),
                sources,
                sender,
                RunOptions { once: true },
                CancellationToken::new(),
            ),
        )
        .await
        .expect("a one-shot run ends")
        .expect("a one-shot run succeeds");
    }

    /// The daemon on the Maildirs with `sender`, until the token fires.
    async fn start(
        &self,
        services: &Services,
        sender: Arc<dyn MailSender>,
    ) -> (
        tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
        CancellationToken,
    ) {
        let sources = commands::mailbox_sources(services).await.unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(daemon::run(
            services.clone(),
            sources,
            sender,
            RunOptions { once: false },
            cancel.clone(),
        ));
        (task, cancel)
    }

    /// Waits up to 30 s for `mailbox` to be all flagged and `acks` acks sent.
    async fn until_flagged_and_acked(&self, mailbox: &str, smtp: &ScriptedSmtp, acks: usize) {
        for _ in 0..300 {
            if self.unflagged(mailbox) == 0 && smtp.acks().len() == acks {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Files left unflagged in a mailbox (in `new/`, or `cur/` without S).
    fn unflagged(&self, mailbox: &str) -> usize {
        let md = self.maildir(mailbox);
        let new = std::fs::read_dir(md.join("new")).unwrap().count();
        let cur = std::fs::read_dir(md.join("cur"))
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name().into_string().unwrap();
                !name
                    .rsplit_once(":2,")
                    .is_some_and(|(_, f)| f.contains('S'))
            })
            .count();
        new + cur
    }
}

fn mail(from: &str, to: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@test.example>\r\n\
         Date: Sun, 4 May 2025 09:00:00 +0800\r\n{extra}\r\n附件见后。\r\n",
        baosong::types::Sha256::of(format!("{from}{subject}{extra}").as_bytes())
    )
    .into_bytes()
}

fn ordinary(n: usize) -> Vec<u8> {
    mail(
        &format!("南京市科技局 <{KNOWN}>"),
        KJT,
        &format!("推荐表 第{n}封"),
        "",
    )
}

async fn query_i64(services: &Services, sql: &str) -> i64 {
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

fn header_block(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

/// A mail server whose first send waits until `acks` acks are stored, so
/// the others queue up behind it. With `rival`, the clock then moves past
/// their leases and another instance claims every ack meanwhile.
struct HeldFirst {
    smtp: ScriptedSmtp,
    services: Services,
    clock: Arc<FixedClock>,
    acks: i64,
    rival: bool,
    first: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl MailSender for HeldFirst {
    async fn send(&self, from: &str, to: &[String], bytes: &[u8]) -> Result<(), SendError> {
        if !self.first.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let sql = "SELECT COUNT(*) FROM outbox WHERE kind = 'ack'";
            let give_up = std::time::Instant::now() + Duration::from_secs(30);
            while query_i64(&self.services, sql).await < self.acks {
                assert!(std::time::Instant::now() < give_up, "the acks are stored");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.rival {
                self.clock.advance(chrono::Duration::seconds(60));
                let taken = self
                    .services
                    .store
                    .claim_outbox("rival", Duration::from_secs(3600), self.clock.now(), 100)
                    .await
                    .unwrap();
                let acks = taken.iter().filter(|r| r.kind == OutboxKind::Ack).count();
                assert_eq!(acks as i64, self.acks, "the rival takes every ack");
            }
        }
        self.smtp.send(from, to, bytes).await
    }
}

impl HeldFirst {
    fn new(w: &World, services: &Services, acks: i64, rival: bool) -> Arc<HeldFirst> {
        Arc::new(HeldFirst {
            smtp: ScriptedSmtp::default(),
            services: services.clone(),
            clock: w.clock.clone(),
            acks,
            rival,
            first: Default::default(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_acks_behind_a_slow_send_each_go_once_handed_over_or_claimed() {
    let mut w = World::new();
    w.config.smtp.ack_per_recipient_per_hour = 100;
    for n in 1..=30 {
        w.deliver("kjt", &ordinary(n));
    }
    let services = w.services().await;
    let smtp = HeldFirst::new(&w, &services, 30, false);
    w.run_once(&services, smtp.clone()).await;
    // More than the hand-over queue holds: some acks were stored pending.
    let acks = smtp.smtp.acks();
    assert_eq!(acks.len(), 30);
    let ids: HashSet<String> = acks.iter().map(|(_, _, b)| header_block(b)).collect();
    assert_eq!(ids.len(), 30, "no ack twice");
    assert_eq!(
        query_i64(
            &services,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'ack' AND status = 'sent'"
        )
        .await,
        30
    );
    assert_eq!(
        query_i64(
            &services,
            "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'"
        )
        .await,
        0,
        "the reminders and the digest due went too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlogs_acks_do_not_hold_up_the_ack_of_a_fresh_mail_in_another_mailbox() {
    let mut w = World::new();
    w.config.smtp.ack_per_recipient_per_hour = 1000;
    w.config.smtp.ack_per_hour = 1000;
    for mb in &mut w.config.mailboxes {
        mb.poll_interval_secs = 1;
    }
    const BACKLOG: i64 = 60;
    for n in 1..=BACKLOG {
        w.deliver("kjt", &ordinary(n as usize));
    }
    let services = w.services().await;
    // The first send waits for the fresh mail's ack, so the backlog's acks
    // fill their queue and overflow into the store before it comes.
    let smtp = HeldFirst::new(&w, &services, BACKLOG + 1, false);
    let (task, cancel) = w.start(&services, smtp.clone()).await;
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    let stored = "SELECT COUNT(*) FROM outbox WHERE kind = 'ack'";
    while query_i64(&services, stored).await < BACKLOG {
        assert!(std::time::Instant::now() < give_up, "the backlog is stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.deliver(
        "kx",
        &mail(&format!("南京市科技局 <{KNOWN}>"), KX, "推荐表 fresh", ""),
    );
    while (smtp.smtp.acks().len() as i64) < BACKLOG + 1 {
        assert!(
            std::time::Instant::now() < give_up,
            "every mail is answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();

    let acks = smtp.smtp.acks();
    let fresh = acks
        .iter()
        .position(|(from, _, _)| from == KX)
        .expect("the fresh mail is answered");
    // After the held send, one from each busy queue (the backlog's handed
    // acks, its overflow claimed from the store) at most.
    assert!(
        fresh <= 3,
        "the fresh mail's ack went out after {fresh} of the backlog's {BACKLOG}"
    );
    let ids: HashSet<String> = acks.iter().map(|(_, _, b)| header_block(b)).collect();
    assert_eq!(ids.len() as i64, BACKLOG + 1, "no ack twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handed_ack_whose_lease_ran_out_and_was_taken_is_not_sent_again() {
    let mut w = World::new();
    for n in 1..=3 {
        w.deliver("kjt", &ordinary(n));
    }
    let services = w.services().await;
    let smtp = HeldFirst::new(&w, &services, 3, true);
    w.run_once(&services, smtp.clone()).await;
    // The first was on the wire when the rival took it; the two waiting in
    // hand were left to the rival.
    assert_eq!(smtp.smtp.acks().len(), 1);
    assert_eq!(
        query_i64(
            &services,
            "SELECT COUNT(*) FROM outbox \
             WHERE kind = 'ack' AND status = 'sending' AND lease_owner = 'rival'"
        )
        .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_stop_at_the_hourly_limit_for_everyone() {
    let mut w = World::new();
    w.config.smtp.ack_per_recipient_per_hour = 100;
    w.config.smtp.ack_per_hour = 2;
    for n in 1..=4 {
        w.deliver("kjt", &ordinary(n));
    }
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;

    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        4
    );
    assert_eq!(w.unflagged("kjt"), 0, "every mail flagged");
    assert_eq!(smtp.acks().len(), 2);
    assert_eq!(
        query_i64(
            &services,
            "SELECT COUNT(*) FROM messages WHERE ack_reason LIKE 'rate limit: 2 acks in the last hour%'"
        )
        .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sender_headers_never_stop_the_mailbox_or_reach_an_ack_header() {
    let mut w = World::new();
    // Every mail here is from one unit: lift the per-recipient limit.
    w.config.smtp.ack_per_recipient_per_hour = 100;
    let long_name = "长".repeat(2000);
    let hostile = [
        mail("\"王五\" <wang wu@example.com>", KJT, "材料", ""),
        mail("nobody", KJT, "材料", ""),
        mail("", KJT, "材料", ""),
        mail(
            &format!("南京市科技局 <{KNOWN}>"),
            KJT,
            "材料",
            "Reply-To: undisclosed-recipients:;\r\n",
        ),
        mail(
            &format!("南京市科技局 <{KNOWN}>"),
            KJT,
            "材料",
            "Reply-To: <<>>@@\r\n",
        ),
        mail(&format!("{long_name} <{KNOWN}>"), KJT, "材料", ""),
        mail(
            &format!("南京市科技局 <{KNOWN}>"),
            KJT,
            // RFC 2047 for "x\r\nBcc: victim@example.com"
            "=?UTF-8?B?eA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5jb20=?=",
            "",
        ),
    ];
    w.deliver("kjt", &ordinary(1));
    for h in &hostile {
        w.deliver("kjt", h);
        w.deliver("kjt", &ordinary(w.seq));
    }
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;

    let total = 1 + 2 * hostile.len();
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        total as i64
    );
    assert_eq!(w.unflagged("kjt"), 0, "every mail flagged");
    // Each mail from the known unit is answered; none of the others is.
    let acks = smtp.acks();
    let known = 1 + hostile.len() + 4;
    assert_eq!(acks.len(), known, "{acks:#?}");
    assert!(acks.iter().all(|(_, to, _)| to == &[KNOWN.to_owned()]));
    for (_, _, bytes) in smtp.acks() {
        let head = header_block(&bytes);
        assert!(
            !head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
            "{head}"
        );
        assert!(!head.contains("victim"), "{head}");
    }
    let unaddressable = query_i64(
        &services,
        "SELECT COUNT(*) FROM problems WHERE code = 'ack_unaddressable'",
    )
    .await;
    assert_eq!(unaddressable, 3, "space, no @, empty From");
    let attention = services.store.attention().await.unwrap();
    assert!(attention.len() >= 3, "{attention:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idn_sender_is_answered_in_punycode() {
    let mut w = World::new();
    let csv = w.dir.path().join("orgs.csv");
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/organisations.csv"),
    )
    .unwrap();
    text.push_str("idn-unit,测试科协,,zhang@测试.中国,,设区市科协,\n");
    std::fs::write(&csv, text).unwrap();
    w.directory = Directory::load(&csv).unwrap();
    w.deliver("kjt", &mail("张三 <zhang@测试.中国>", KJT, "材料", ""));
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;
    let sent = smtp.acks();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, ["zhang@xn--0zwm56d.xn--fiqs8s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_to_one_mailbox_and_cc_the_other_is_one_submission_answered_from_the_to_mailbox() {
    let mut w = World::new();
    let body = mail(
        &format!("南京市科技局 <{KNOWN}>"),
        KX,
        "推荐表",
        &format!("Cc: {KJT}\r\n"),
    );
    for (mailbox, addr) in [("kjt", KJT), ("kx", KX)] {
        let mut copy = format!("Delivered-To: {addr}\r\nReceived: by mx for <{addr}>; Sun, 4 May 2025 09:00:01 +0800\r\n").into_bytes();
        copy.extend_from_slice(&body);
        w.deliver(mailbox, &copy);
    }
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;

    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        2
    );
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM submissions").await,
        1
    );
    assert_eq!(w.unflagged("kjt") + w.unflagged("kx"), 0);
    let sent = smtp.acks();
    assert_eq!(sent.len(), 1, "one ack");
    assert_eq!(sent[0].0, KX, "envelope from the mailbox it was sent To");
    let head = header_block(&sent[0].2);
    assert!(head.contains(&format!("<{KX}>")), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_451_then_250_delivers_the_ack_exactly_once() {
    let mut w = World::new();
    w.config.smtp.retry_base_secs = 60;
    w.deliver("kjt", &ordinary(1));
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::refusing(vec![SendError::Rejected {
        code: 451,
        transient: true,
        message: "4.3.0 try again later".into(),
    }]));
    w.run_once(&services, smtp.clone()).await;
    assert!(smtp.acks().is_empty(), "refused the first time");
    // Not due yet at the same instant; due an hour later.
    w.run_once(&services, smtp.clone()).await;
    assert!(smtp.acks().is_empty());
    w.clock.advance(chrono::Duration::hours(1));
    w.run_once(&services, smtp.clone()).await;
    w.clock.advance(chrono::Duration::hours(3));
    w.run_once(&services, smtp.clone()).await;
    assert_eq!(smtp.acks().len(), 1, "sent once");
    let pool = sqlx::AnyPool::connect(&services.config.store.database)
        .await
        .unwrap();
    let row = sqlx::query("SELECT status, attempts FROM outbox WHERE kind = 'ack'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("status"), "sent");
    assert_eq!(row.get::<i64, _>("attempts"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_fails_for_good_is_recorded_for_a_person_and_the_mailbox_goes_on() {
    let mut w = World::new();
    // A template an operator edited that fails on one message's data.
    let templates = w.dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for name in baosong::outbound::Templates::file_names() {
        std::fs::copy(builtin.join(name), templates.join(name)).unwrap();
    }
    let ack = templates.join("ack.txt.j2");
    let text = std::fs::read_to_string(&ack).unwrap();
    std::fs::write(
        &ack,
        format!(
            "{{% if original_subject == \"炸弹\" %}}{{{{ no_such_variable }}}}{{% endif %}}{text}"
        ),
    )
    .unwrap();
    w.config.smtp.templates = Some(templates);
    w.deliver("kjt", &ordinary(1));
    w.deliver(
        "kjt",
        &mail(&format!("南京市科技局 <{KNOWN}>"), KJT, "炸弹", ""),
    );
    w.deliver("kjt", &ordinary(3));
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;

    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        3
    );
    assert_eq!(w.unflagged("kjt"), 0);
    assert_eq!(smtp.acks().len(), 2, "the two others are answered");
    let failed = query_i64(
        &services,
        "SELECT COUNT(*) FROM problems WHERE code = 'processing_failed'",
    )
    .await;
    assert_eq!(failed, 1);
    let attention = services.store.attention().await.unwrap();
    assert!(
        attention
            .iter()
            .any(|a| a.subject.as_deref() == Some("炸弹") && a.reason.contains("处理出错")),
        "{attention:?}"
    );
    let digest = services.digest_data(w.clock.now()).await.unwrap();
    assert!(digest.attention.iter().any(|a| a.subject == "炸弹"));
}

/// Reads attachments as usual but panics on one file name.
struct Panicky;

impl Extractor for Panicky {
    fn extract(
        &self,
        file: &FileEntry,
        forms: &[baosong::config::FormDef],
        limits: &baosong::config::Limits,
    ) -> Extraction {
        assert!(file.filename != "panic.xlsx", "a parser bug");
        InProcess.extract(file, forms, limits)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parser_panic_is_recorded_as_a_problem_and_the_next_mail_goes_through() {
    let mut w = World::new();
    let with_file = format!(
        "From: 南京市科技局 <{KNOWN}>\r\nTo: {KJT}\r\nSubject: 推荐表\r\n\
         Message-ID: <panic@test.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\n见附件\r\n--b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=panic.xlsx\r\n\r\nPK\r\n--b--\r\n"
    );
    w.deliver("kjt", with_file.as_bytes());
    w.deliver("kjt", &ordinary(2));
    let services = w.services().await.with_extractor(Arc::new(Panicky));
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        2
    );
    assert_eq!(w.unflagged("kjt"), 0);
    let unreadable = query_i64(
        &services,
        "SELECT COUNT(*) FROM problems WHERE code = 'message_unreadable'",
    )
    .await;
    assert_eq!(unreadable, 1);
    assert_eq!(smtp.acks().len(), 2, "both senders are told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_sends_the_reminders_and_the_digest_that_are_due() {
    // Sunday 4 May 2025, 10:00: the 3-day window of the 6 May deadline is
    // open; the last digest fire was Friday 2 May, 08:30.
    let w = World::new();
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;
    let sent = smtp.sent();
    let kinds = |kind: &str| {
        sent.iter()
            .filter(|(_, _, b)| header_block(b).contains(&format!("Auto-Submitted: {kind}")))
            .count()
    };
    let units = services
        .directory
        .all()
        .iter()
        .filter(|o| !o.emails.is_empty())
        .count();
    let digests = sent
        .iter()
        .filter(|(_, to, _)| to.contains(&KJT.to_owned()) && to.contains(&KX.to_owned()))
        .count();
    assert_eq!(digests, 1, "the digest of Friday's fire time");
    assert_eq!(
        kinds("auto-generated"),
        units + 1,
        "a reminder per unit, and the digest"
    );
    // Nothing again at the same time.
    w.run_once(&services, smtp.clone()).await;
    assert_eq!(smtp.sent().len(), sent.len());
}

/// A mailbox scripted in memory: fails at chosen steps, counts what it finished.
struct ScriptedSource {
    name: MailboxName,
    messages: Vec<RawMessage>,
    done: Arc<Mutex<Vec<String>>>,
    fetch_failures: usize,
    finish_failures: usize,
}

#[async_trait::async_trait]
impl MailboxSource for ScriptedSource {
    fn name(&self) -> &MailboxName {
        &self.name
    }

    async fn fetch(&mut self, max: usize) -> Result<Vec<RawMessage>, SourceError> {
        if self.fetch_failures > 0 {
            self.fetch_failures -= 1;
            return Err(SourceError::Timeout {
                what: "UID FETCH",
                secs: 0,
            });
        }
        let done = self.done.lock().unwrap().clone();
        Ok(self
            .messages
            .iter()
            .filter(|m| !done.contains(&m.origin.display()))
            .take(max)
            .cloned()
            .collect())
    }

    async fn finish(&mut self, committed: &[Origin]) -> Result<(), SourceError> {
        if self.finish_failures > 0 {
            self.finish_failures -= 1;
            return Err(SourceError::Timeout {
                what: "UID STORE",
                secs: 0,
            });
        }
        self.done
            .lock()
            .unwrap()
            .extend(committed.iter().map(Origin::display));
        Ok(())
    }

    fn skip(&mut self, _origin: &Origin) {}

    async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), SourceError> {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = cancel.cancelled() => {}
        }
        Ok(())
    }

    async fn reset(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_failing_to_fetch_and_to_flag_is_retried_and_nothing_is_doubled() {
    let w = World::new();
    let services = w.services().await;
    let done = Arc::new(Mutex::new(Vec::new()));
    let messages: Vec<RawMessage> = (1..=3)
        .map(|n| {
            RawMessage::new(
                ordinary(n),
                Origin::Maildir {
                    mailbox: "kjt".into(),
                    key: format!("m{n}"),
                },
                Some(at("2025-05-04T09:00:00+08:00")),
            )
        })
        .collect();
    let source = ScriptedSource {
        name: "kjt".into(),
        messages,
        done: done.clone(),
        fetch_failures: 2,
        finish_failures: 1,
    };
    let smtp = Arc::new(ScriptedSmtp::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(daemon::run(
        services.clone(),
        vec![Box::new(source)],
        smtp.clone(),
        RunOptions { once: false },
        cancel.clone(),
    ));
    // Two fetch failures (1 s, 2 s backoff), then a flag failure (4 s).
    for _ in 0..200 {
        if done.lock().unwrap().len() == 3 && smtp.acks().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!task.is_finished(), "the daemon never gives a mailbox up");
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(done.lock().unwrap().len(), 3);
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        3
    );
    assert_eq!(smtp.acks().len(), 3, "one ack each, none twice");
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mail")
            .join(format!("{name}.eml")),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_senders_get_no_ack_and_wait_for_a_coordinator() {
    let mut w = World::new();
    // A flood from strangers: spam subjects, no campaign document, Reply-To elsewhere.
    for i in 0..30 {
        w.deliver(
            "kjt",
            &mail(
                &format!("Promo {i} <promo{i}@spam{i}.example>"),
                KJT,
                &format!("Buy cheap stuff at http://spam.example/{i}"),
                &format!("Reply-To: victim{i}@other.example\r\n"),
            ),
        );
    }
    // A unit in the directory, and a stranger whose 推荐表 names its unit.
    w.deliver("kjt", &corpus("foxmail_gbk_recommend_xlsx"));
    w.deliver("kjt", &corpus("qq_web_gb18030_recommend_docx"));
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;

    let acks = smtp.acks();
    let to: Vec<String> = acks.iter().flat_map(|(_, to, _)| to.clone()).collect();
    assert_eq!(acks.len(), 2, "{to:?}");
    assert!(
        to.iter()
            .all(|t| !t.contains("spam") && !t.contains("victim")),
        "{to:?}"
    );
    for (_, _, bytes) in &acks {
        assert!(!String::from_utf8_lossy(bytes).contains("spam.example"));
    }
    let waiting = services.store.attention().await.unwrap();
    let strangers = waiting
        .iter()
        .filter(|a| a.from.as_deref().is_some_and(|f| f.contains("spam")))
        .count();
    assert_eq!(strangers, 30, "{waiting:?}");
    assert_eq!(w.unflagged("kjt"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_cannot_be_written_keeps_the_mail_unflagged_until_it_can() {
    let mut w = World::new();
    // The archive's folder is a file: every write fails (ENOTDIR), as a
    // full or broken disk would, a cause that passes.
    let archive = w.dir.path().join("archive");
    std::fs::write(&archive, b"not a folder").unwrap();
    w.deliver("kjt", &ordinary(1));
    w.deliver("kjt", &ordinary(2));
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    let (task, cancel) = w.start(&services, smtp.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.unflagged("kjt"), 2, "nothing flagged while unarchived");
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        0
    );
    assert!(!task.is_finished(), "the daemon never gives a mailbox up");

    std::fs::remove_file(&archive).unwrap();
    w.until_flagged_and_acked("kjt", &smtp, 2).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(w.unflagged("kjt"), 0);
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        2
    );
    assert_eq!(smtp.acks().len(), 2, "one ack each, none twice");
}

/// A power cut after a group's rows reached the disk but before its
/// archive files did leaves a row whose file is empty, and the mail not
/// flagged: when it is offered again it is a duplicate, and its file is
/// written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_file_a_power_cut_emptied_is_written_again_when_the_mail_comes_back() {
    let mut w = World::new();
    let bytes = ordinary(1);
    w.deliver("kjt", &bytes);
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;
    assert_eq!(w.unflagged("kjt"), 0);
    let sha = baosong::types::Sha256::of(&bytes);
    let file = services.archive.path_of(&sha);

    // What the power cut leaves: the file empty, the mail unflagged.
    std::fs::write(&file, b"").unwrap();
    let md = w.maildir("kjt");
    for e in std::fs::read_dir(md.join("cur")).unwrap() {
        let e = e.unwrap().path();
        let name = e.file_name().unwrap().to_str().unwrap();
        let key = name.split_once(":2,").map_or(name, |(k, _)| k);
        std::fs::rename(&e, md.join("new").join(key)).unwrap();
    }
    assert_eq!(w.unflagged("kjt"), 1);

    w.run_once(&services, smtp.clone()).await;
    assert_eq!(w.unflagged("kjt"), 0);
    assert_eq!(services.archive.read(&sha).await.unwrap(), bytes);
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        1,
        "a duplicate, stored once"
    );
    assert_eq!(smtp.acks().len(), 1, "answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_stored_but_not_yet_on_disk_is_neither_flagged_nor_answered() {
    let mut w = World::new();
    w.deliver("kjt", &ordinary(1));
    w.deliver("kjt", &ordinary(2));
    let services = w.services().await;
    // The synced commit that puts a group on disk fails while its table is
    // away; the deferred commits before it are stored but not on disk.
    let db = sqlx::AnyPool::connect(&services.config.store.database)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE sync_point RENAME TO sync_point_away")
        .execute(&db)
        .await
        .unwrap();
    let smtp = Arc::new(ScriptedSmtp::default());
    let (task, cancel) = w.start(&services, smtp.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        2,
        "stored"
    );
    assert_eq!(
        w.unflagged("kjt"),
        2,
        "nothing flagged before it is on disk"
    );
    assert!(
        smtp.sent().is_empty(),
        "nothing answered before it is on disk"
    );
    assert!(!task.is_finished(), "the daemon never gives a mailbox up");

    sqlx::query("ALTER TABLE sync_point_away RENAME TO sync_point")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    // The acks were leased to the outbox worker and not handed over: they
    // go when their lease runs out.
    w.clock.advance(chrono::Duration::seconds(60));
    w.until_flagged_and_acked("kjt", &smtp, 2).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(w.unflagged("kjt"), 0);
    assert_eq!(
        query_i64(&services, "SELECT COUNT(*) FROM messages").await,
        2,
        "offered again, stored once"
    );
    assert_eq!(smtp.acks().len(), 2, "one ack each, none twice");
}

/// The daemon reads the learned addresses once per group of messages, not
/// once per message: an assignment made between two runs still reaches the
/// sender's next mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_assigned_between_runs_matches_the_senders_next_mail() {
    let mut w = World::new();
    let stranger = "王五 <wangwu1987@qq.com>";
    w.deliver("kjt", &mail(stranger, KJT, "材料", ""));
    let services = w.services().await;
    let smtp = Arc::new(ScriptedSmtp::default());
    w.run_once(&services, smtp.clone()).await;
    let unmatched = "SELECT COUNT(*) FROM submissions WHERE org_id IS NULL";
    assert_eq!(query_i64(&services, unmatched).await, 1);

    let said = services
        .assign(baosong::store::MessageId(1), "南京市科技局", "ops")
        .await
        .unwrap();
    assert!(said.ok, "{}", said.said);
    w.deliver("kjt", &mail(stranger, KJT, "补充材料", ""));
    w.run_once(&services, smtp.clone()).await;
    assert_eq!(
        query_i64(
            &services,
            "SELECT COUNT(*) FROM submissions WHERE org_id = 'nj-kjj' AND matched_by = 'manual'"
        )
        .await,
        2,
        "the assigned mail and the next one"
    );
    assert_eq!(query_i64(&services, unmatched).await, 0);
}

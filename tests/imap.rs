//! The mail sources against a real Dovecot (IMAP) and a temp Maildir.
//! Each IMAP test starts its own Dovecot; they need root and `dovecot-imapd`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baosong::clock::Heartbeat;
use baosong::config::{AfterProcessing, ImapAuth, ImapConfig, MailboxConfig, Secret, TlsMode};
use baosong::model::Origin;
use baosong::source::imap::ImapSource;
use baosong::source::maildir::MaildirSource;
use baosong::source::{self, Delivery, Disposition, MailboxSource, SourceError};
use common::dovecot::{Dovecot, PASSWORD, USER};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: 南京市科学技术局 <kjj@nanjing.gov.cn>\r\nTo: kjt@example.cn\r\n\
         Subject: =?UTF-8?B?5o6o6I2Q6KGo?= {n}\r\nMessage-ID: <m{n}@nanjing.gov.cn>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn mailbox(d: &Dovecot, after: AfterProcessing) -> MailboxConfig {
    MailboxConfig {
        name: "kjt".into(),
        address: "kjt@example.cn".into(),
        imap: Some(ImapConfig {
            host: "127.0.0.1".into(),
            port: Some(d.port()),
            tls: TlsMode::None,
            ca_file: None,
            username: USER.into(),
            password: Secret {
                env: None,
                file: None,
            },
            auth: ImapAuth::Login,
            send_id: true,
        }),
        maildir: None,
        folder: "INBOX".into(),
        after,
        move_to: None,
        // Long: tests that see mail quickly see it through IDLE.
        poll_interval_secs: 600,
        from: None,
    }
}

/// A source task and the consumer's end of its channel.
struct Running {
    rx: mpsc::Receiver<Delivery>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), SourceError>>,
}

impl Running {
    fn imap(cfg: MailboxConfig, password: &str, resume: Option<(u32, u32)>) -> Running {
        let src = ImapSource::new(cfg, password.to_owned(), resume).expect("a valid mailbox");
        Self::start(Box::new(src))
    }

    fn maildir(cfg: MailboxConfig) -> Running {
        Self::start(Box::new(MaildirSource::new(cfg).expect("a maildir path")))
    }

    fn start(src: Box<dyn MailboxSource>) -> Running {
        let (tx, rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(source::run(
            src,
            tx,
            cancel.clone(),
            false,
            Heartbeat::default(),
        ));
        Running { rx, cancel, task }
    }

    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a delivery within 10 s")
            .expect("source still running")
    }

    /// Nothing is delivered within `secs`.
    async fn quiet(&mut self, secs: u64) {
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(secs), self.rx.recv()).await {
            panic!("unexpected delivery {:?}", d.raw.origin);
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("source stops within 10 s after cancel")
            .expect("source task did not panic");
        assert!(r.is_ok(), "{r:?}");
    }
}

fn uid_of(d: &Delivery) -> (u32, u32) {
    match &d.raw.origin {
        Origin::Imap {
            uidvalidity, uid, ..
        } => (*uidvalidity, uid.0),
        o => panic!("not an IMAP origin: {o:?}"),
    }
}

fn commit(d: Delivery) {
    d.done.send(Disposition::Committed).unwrap();
}

fn seen(d: &Dovecot, uid: u32) -> bool {
    d.probe()
        .flags("INBOX", uid)
        .expect("message still in INBOX")
        .iter()
        .any(|f| f == "\\Seen")
}

/// Polls `cond` for up to 5 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 5 s: {what}");
}

#[tokio::test]
async fn messages_appended_over_imap_are_delivered_with_internaldate() {
    let d = Dovecot::start(false);
    let mut p = d.probe();
    let dates = ["01-May-2025 10:00:00 +0800", "06-May-2025 23:59:30 +0800"];
    let (uv, u1) = p.append("INBOX", &message(1), Some(dates[0]));
    let (_, u2) = p.append("INBOX", &message(2), Some(dates[1]));

    let mut src = Running::imap(mailbox(&d, AfterProcessing::Keep), PASSWORD, None);
    let first = src.next().await;
    assert_eq!(uid_of(&first), (uv, u1));
    assert_eq!(first.raw.bytes, message(1));
    assert_eq!(
        first.raw.received_at.unwrap().to_rfc3339(),
        "2025-05-01T02:00:00+00:00"
    );
    assert!(matches!(&first.raw.origin, Origin::Imap { mailbox, .. } if mailbox.as_str() == "kjt"));
    commit(first);
    let second = src.next().await;
    assert_eq!(uid_of(&second), (uv, u2));
    assert_eq!(second.raw.bytes, message(2));
    assert_eq!(
        second.raw.received_at.unwrap().to_rfc3339(),
        "2025-05-06T15:59:30+00:00"
    );
    commit(second);
    src.quiet(1).await;
    src.stop().await;
    // `keep` leaves the flags alone.
    assert!(!seen(&d, u1) && !seen(&d, u2));
}

#[tokio::test]
async fn seen_flag_is_set_only_after_commit() {
    let d = Dovecot::start(false);
    let (_, uid) = d.append(USER, "INBOX", &message(1));
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Seen), PASSWORD, None);
    let delivery = src.next().await;
    // The consumer takes its time; fetching (BODY.PEEK) must not have marked it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!seen(&d, uid), "\\Seen before the commit");
    commit(delivery);
    eventually("\\Seen after the commit", || seen(&d, uid)).await;
    src.stop().await;
}

#[tokio::test]
async fn failed_disposition_leaves_message_unflagged_and_retries() {
    let d = Dovecot::start(false);
    let (_, u1) = d.append(USER, "INBOX", &message(1));
    let (_, u2) = d.append(USER, "INBOX", &message(2));
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Seen), PASSWORD, None);

    let first = src.next().await;
    assert_eq!(uid_of(&first).1, u1);
    first
        .done
        .send(Disposition::Failed {
            transient: true,
            reason: "database is locked".into(),
        })
        .unwrap();
    // The rest of the batch goes on; the failed message comes again after
    // the backoff, and stays unflagged until then.
    let second = src.next().await;
    assert_eq!(uid_of(&second).1, u2);
    commit(second);
    let again = src.next().await;
    assert_eq!(uid_of(&again).1, u1);
    assert!(!seen(&d, u1), "a failed message must stay unflagged");
    assert!(seen(&d, u2));
    commit(again);
    eventually("both \\Seen", || seen(&d, u1) && seen(&d, u2)).await;
    src.stop().await;
}

#[tokio::test]
async fn move_after_processing_moves_to_folder() {
    let d = Dovecot::start(false);
    d.append(USER, "INBOX", &message(1));
    d.append(USER, "INBOX", &message(2));
    let mut cfg = mailbox(&d, AfterProcessing::Move);
    // A Chinese folder name also checks the modified UTF-7 encoding.
    cfg.move_to = Some("已处理".into());
    let mut src = Running::imap(cfg, PASSWORD, None);
    let first = src.next().await;
    // Nothing moves before the commit.
    assert_eq!(d.probe().uids("INBOX").len(), 2);
    commit(first);
    commit(src.next().await);
    eventually("INBOX emptied", || d.probe().uids("INBOX").is_empty()).await;
    assert_eq!(d.probe().uids("&XfJZBHQG-").len(), 2);
    src.stop().await;
}

#[tokio::test]
async fn resume_skips_finished_uids_and_offers_unflagged_ones_again() {
    let d = Dovecot::start(false);
    let (uv, u1) = d.append(USER, "INBOX", &message(1));
    let (_, u2) = d.append(USER, "INBOX", &message(2));
    let (_, u3) = d.append(USER, "INBOX", &message(3));
    // A first run flags the first message only.
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Seen), PASSWORD, None);
    let first = src.next().await;
    commit(first);
    let rest = [src.next().await, src.next().await];
    for m in rest {
        m.done
            .send(Disposition::Failed {
                transient: true,
                reason: "stopping".into(),
            })
            .unwrap();
    }
    eventually("first \\Seen", || seen(&d, u1)).await;
    src.stop().await;
    // The store says u2 was committed, but a stop came before its flag: it is
    // offered again (the store knows it already), then u3; u1 is done.
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Seen), PASSWORD, Some((uv, u2)));
    let again = src.next().await;
    assert_eq!(uid_of(&again), (uv, u2));
    assert!(!seen(&d, u2), "flagged only after the commit");
    let next = src.next().await;
    assert_eq!(uid_of(&next), (uv, u3));
    assert_eq!(next.raw.bytes, message(3));
    commit(again);
    commit(next);
    eventually("all \\Seen", || seen(&d, u2) && seen(&d, u3)).await;
    src.quiet(1).await;
    src.stop().await;
}

#[tokio::test]
async fn uidvalidity_reset_restarts_from_uid_one() {
    let d = Dovecot::start(false);
    let (uv, _) = d.append(USER, "INBOX", &message(1));
    let (_, u2) = d.append(USER, "INBOX", &message(2));
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Keep), PASSWORD, Some((uv, u2)));
    src.quiet(1).await;
    src.stop().await;

    let new_uv = d.reset_uidvalidity("INBOX");
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Keep), PASSWORD, Some((uv, u2)));
    let a = src.next().await;
    assert_eq!(uid_of(&a).0, new_uv);
    assert_eq!(a.raw.bytes, message(1));
    commit(a);
    let b = src.next().await;
    assert_eq!(uid_of(&b).0, new_uv);
    assert_eq!(b.raw.bytes, message(2));
    commit(b);
    src.stop().await;
}

#[tokio::test]
async fn id_command_is_sent() {
    let d = Dovecot::start(false);
    d.append(USER, "INBOX", &message(1));
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Keep), PASSWORD, None);
    commit(src.next().await);
    src.stop().await;
    let log = d.log_when(|l| l.contains("ID sent: name=baosong"));
    assert!(
        log.contains("ID sent: name=baosong"),
        "no ID in dovecot.log:\n{log}"
    );
}

#[tokio::test]
async fn idle_delivers_new_mail_before_poll_interval() {
    let d = Dovecot::start(false);
    d.append(USER, "INBOX", &message(1));
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Seen), PASSWORD, None);
    commit(src.next().await);
    // Let the source settle into IDLE (poll interval is 600 s).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, u2) = d.append(USER, "INBOX", &message(2));
    let started = std::time::Instant::now();
    let next = tokio::time::timeout(Duration::from_secs(5), src.rx.recv())
        .await
        .expect("IDLE delivers within 5 s")
        .unwrap();
    assert_eq!(uid_of(&next).1, u2);
    assert!(started.elapsed() < Duration::from_secs(5));
    commit(next);
    src.stop().await;
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_ca_file_work() {
    let d = Dovecot::start(true);
    let (uv, uid) = d.append(USER, "INBOX", &message(1));
    let tls_port = d.tls_port().unwrap();
    for (tls, port) in [(TlsMode::Starttls, d.port()), (TlsMode::Implicit, tls_port)] {
        let mut cfg = mailbox(&d, AfterProcessing::Keep);
        let imap_cfg = cfg.imap.as_mut().unwrap();
        imap_cfg.host = "localhost".into();
        imap_cfg.port = Some(port);
        imap_cfg.tls = tls;
        imap_cfg.ca_file = Some(d.ca_pem());

        let report = source::imap::check(&cfg, PASSWORD)
            .await
            .expect("check over TLS");
        assert!(report.idle, "{report:?}");
        assert_eq!((report.exists, report.uidvalidity), (1, uv));
        assert!(report.capabilities.iter().any(|c| c == "IDLE"));

        let mut src = Running::imap(cfg, PASSWORD, None);
        let m = src.next().await;
        assert_eq!(uid_of(&m), (uv, uid), "{tls:?}");
        commit(m);
        src.stop().await;
    }

    // Without the test CA the certificate is refused, and nothing falls back
    // to plain text.
    let mut cfg = mailbox(&d, AfterProcessing::Keep);
    let imap_cfg = cfg.imap.as_mut().unwrap();
    imap_cfg.host = "localhost".into();
    imap_cfg.port = Some(tls_port);
    imap_cfg.tls = TlsMode::Implicit;
    let err = source::imap::check(&cfg, PASSWORD).await.unwrap_err();
    assert!(matches!(err, SourceError::Tls { .. }), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn authenticate_plain_works() {
    let d = Dovecot::start(false);
    let (uv, uid) = d.append(USER, "INBOX", &message(1));
    let mut cfg = mailbox(&d, AfterProcessing::Seen);
    cfg.imap.as_mut().unwrap().auth = ImapAuth::Plain;
    let mut src = Running::imap(cfg, PASSWORD, None);
    let m = src.next().await;
    assert_eq!(uid_of(&m), (uv, uid));
    commit(m);
    eventually("\\Seen", || seen(&d, uid)).await;
    src.stop().await;
}

/// Collects what tracing writes, for tests that check the logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn wrong_password_is_reported_and_retried() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // The test runtime is single-threaded, so the spawned source logs here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let d = Dovecot::start(false);
    d.append(USER, "INBOX", &message(1));
    let wrong = "not-the-Pa55word";
    let src = Running::imap(mailbox(&d, AfterProcessing::Seen), wrong, None);
    eventually("login refusal logged", || {
        logs.text().contains("IMAP login refused")
    })
    .await;
    let text = logs.text();
    assert!(text.contains("mailbox=kjt"), "{text}");
    assert!(text.contains("user=alice"), "{text}");
    assert!(
        !text.contains(wrong),
        "the password leaked into the log:\n{text}"
    );
    // Still running: it waits to try again, as operators fix accounts without restarts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!src.task.is_finished());
    src.stop().await;
    let failed = |l: &str| l.contains("auth failed") || l.contains("Authentication failed");
    assert!(d.log_when(failed).lines().any(failed));
}

#[tokio::test]
async fn cancel_finishes_the_messages_in_hand() {
    let d = Dovecot::start(false);
    let (_, u1) = d.append(USER, "INBOX", &message(1));
    let (_, u2) = d.append(USER, "INBOX", &message(2));
    let (_, u3) = d.append(USER, "INBOX", &message(3));
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Seen), PASSWORD, None);
    let first = src.next().await;
    assert_eq!(uid_of(&first).1, u1);
    // The channel holds one more: u2 is handed over, u3 waits to be.
    tokio::time::sleep(Duration::from_millis(300)).await;
    src.cancel.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!src.task.is_finished(), "stopped with messages in hand");
    commit(first);
    let second = src.next().await;
    assert_eq!(uid_of(&second).1, u2);
    commit(second);
    let r = tokio::time::timeout(Duration::from_secs(10), src.task)
        .await
        .expect("stops after the messages in hand")
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    // What was in hand was finished, flags included; the next one was not touched.
    assert!(src.rx.recv().await.is_none());
    assert!(seen(&d, u1) && seen(&d, u2));
    assert!(!seen(&d, u3));
}

fn maildir_config(root: &std::path::Path, after: AfterProcessing) -> MailboxConfig {
    MailboxConfig {
        name: "local".into(),
        address: "kjt@example.cn".into(),
        imap: None,
        maildir: Some(root.to_owned()),
        folder: "INBOX".into(),
        after,
        move_to: None,
        poll_interval_secs: 1,
        from: None,
    }
}

fn make_maildir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    dir
}

fn key_of(d: &Delivery) -> String {
    match &d.raw.origin {
        Origin::Maildir { key, .. } => key.clone(),
        o => panic!("not a Maildir origin: {o:?}"),
    }
}

#[tokio::test]
async fn maildir_new_messages_are_delivered_and_marked_seen() {
    let dir = make_maildir();
    let root = dir.path();
    std::fs::write(root.join("cur/1700000001.a.host:2,S"), message(1)).unwrap();
    std::fs::write(root.join("cur/1700000002.b.host:2,F"), message(2)).unwrap();
    std::fs::write(root.join("new/1700000003.c.host"), message(3)).unwrap();
    // The delivery time is the one the Maildir name starts with.
    let delivered = chrono::DateTime::from_timestamp(1_700_000_003, 0);

    let mut src = Running::maildir(maildir_config(root, AfterProcessing::Seen));
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = src.next().await;
        let key = key_of(&m);
        if key == "1700000003.c.host" {
            assert_eq!(m.raw.bytes, message(3));
            assert_eq!(m.raw.received_at, delivered);
            // Not marked before the commit.
            assert!(root.join("new/1700000003.c.host").exists());
        }
        got.push(key);
        commit(m);
    }
    got.sort();
    assert_eq!(got, ["1700000002.b.host", "1700000003.c.host"]);
    eventually("flags set", || {
        root.join("cur/1700000002.b.host:2,FS").exists()
            && root.join("cur/1700000003.c.host:2,S").exists()
    })
    .await;
    assert!(root.join("cur/1700000001.a.host:2,S").exists());
    assert_eq!(std::fs::read_dir(root.join("new")).unwrap().count(), 0);

    // Mail delivered later is found by the next poll.
    std::fs::write(root.join("new/1700000004.d.host"), message(4)).unwrap();
    let m = src.next().await;
    assert_eq!(key_of(&m), "1700000004.d.host");
    m.done
        .send(Disposition::Failed {
            transient: true,
            reason: "disk full".into(),
        })
        .unwrap();
    // Failed: left in place and offered again.
    let again = src.next().await;
    assert_eq!(key_of(&again), "1700000004.d.host");
    assert!(root.join("new/1700000004.d.host").exists());
    commit(again);
    eventually("flag set", || {
        root.join("cur/1700000004.d.host:2,S").exists()
    })
    .await;
    src.stop().await;
}

#[tokio::test]
async fn maildir_move_after_processing() {
    let dir = make_maildir();
    let root = dir.path();
    std::fs::write(root.join("new/1700000001.a.host"), message(1)).unwrap();
    std::fs::write(root.join("cur/1700000002.b.host:2,F"), message(2)).unwrap();
    let mut cfg = maildir_config(root, AfterProcessing::Move);
    cfg.move_to = Some("Processed".into());
    let mut src = Running::maildir(cfg);
    commit(src.next().await);
    commit(src.next().await);
    eventually("moved", || {
        root.join(".Processed/cur/1700000001.a.host:2,").exists()
            && root.join(".Processed/cur/1700000002.b.host:2,F").exists()
    })
    .await;
    assert!(root.join(".Processed/maildirfolder").exists());
    assert_eq!(std::fs::read_dir(root.join("new")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(root.join("cur")).unwrap().count(), 0);
    src.quiet(2).await;
    src.stop().await;
}

#[tokio::test]
async fn lost_connection_and_server_restart_are_survived() {
    let d = Dovecot::start(false);
    d.append(USER, "INBOX", &message(1));
    let mut src = Running::imap(mailbox(&d, AfterProcessing::Seen), PASSWORD, None);
    commit(src.next().await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // BYE in the middle of IDLE.
    d.kick(USER);
    let (_, u2) = d.append(USER, "INBOX", &message(2));
    let m = src.next().await;
    assert_eq!(uid_of(&m).1, u2);
    commit(m);

    // The server is away for a while: connection refused, then back.
    d.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.restart();
    let (_, u3) = d.append(USER, "INBOX", &message(3));
    let m = tokio::time::timeout(Duration::from_secs(20), src.rx.recv())
        .await
        .expect("delivered after the server came back")
        .unwrap();
    assert_eq!(uid_of(&m).1, u3);
    commit(m);
    eventually("all \\Seen", || seen(&d, u2) && seen(&d, u3)).await;
    src.stop().await;
}

#[tokio::test]
async fn without_idle_and_move_it_polls_and_copies() {
    // No IDLE, no MOVE: poll, and move by COPY + \Deleted + UID EXPUNGE.
    let d = Dovecot::start_with_capability(false, "IMAP4rev1 LITERAL+ SASL-IR ID UIDPLUS");
    d.append(USER, "INBOX", &message(1));
    let mut cfg = mailbox(&d, AfterProcessing::Move);
    cfg.move_to = Some("Processed".into());
    cfg.poll_interval_secs = 1;
    let report = source::imap::check(&cfg, PASSWORD).await.unwrap();
    assert!(!report.idle, "{report:?}");

    let mut src = Running::imap(cfg, PASSWORD, None);
    commit(src.next().await);
    d.append(USER, "INBOX", &message(2));
    let m = src.next().await;
    assert_eq!(m.raw.bytes, message(2));
    commit(m);
    eventually("both moved", || {
        d.probe().uids("INBOX").is_empty() && d.probe().uids("Processed").len() == 2
    })
    .await;
    src.stop().await;
}

#[tokio::test]
async fn plain_text_is_refused_off_loopback() {
    let d = Dovecot::start(false);
    let mut cfg = mailbox(&d, AfterProcessing::Seen);
    cfg.imap.as_mut().unwrap().host = "imap.example.cn".into();
    let err = ImapSource::new(cfg, PASSWORD.into(), None).unwrap_err();
    assert!(matches!(err, SourceError::Config { .. }), "{err:?}");
}

#[tokio::test]
async fn a_fixed_password_file_is_picked_up_without_restart() {
    let d = Dovecot::start(false);
    let (_, uid) = d.append(USER, "INBOX", &message(1));
    let file = d.dir().join("imap-password");
    std::fs::write(&file, "wrong\n").unwrap();
    let mut cfg = mailbox(&d, AfterProcessing::Seen);
    cfg.imap.as_mut().unwrap().password = Secret {
        env: None,
        file: Some(file.clone()),
    };
    let mut src = Running::imap(cfg, "wrong", None);
    // Dovecot answers a failed login after its 2 s auth_failure_delay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    // Dovecot's auth penalty slows the retry down a little more.
    let m = tokio::time::timeout(Duration::from_secs(30), src.rx.recv())
        .await
        .expect("delivered once the password file is fixed")
        .unwrap();
    assert_eq!(uid_of(&m).1, uid);
    commit(m);
    src.stop().await;
}

/// A Maildir backlog of large files is read about [`source::BATCH_BYTES`] at
/// a time, not a whole batch of them at once; a larger file still comes,
/// alone.
#[tokio::test]
async fn maildir_fetch_holds_about_batch_bytes_at_once() {
    let dir = make_maildir();
    let root = dir.path();
    let half = usize::try_from(source::BATCH_BYTES / 2).unwrap();
    let sizes = [2 * half + 1, half + 1, half + 1, 10];
    for (i, size) in sizes.iter().enumerate() {
        std::fs::write(
            root.join(format!("new/170000000{i}.m.host")),
            vec![b'x'; *size],
        )
        .unwrap();
    }
    let mut src = MaildirSource::new(maildir_config(root, AfterProcessing::Keep)).unwrap();
    let mut lens = Vec::new();
    loop {
        let batch = src.fetch(source::BATCH).await.unwrap();
        if batch.is_empty() {
            break;
        }
        lens.push(batch.iter().map(|m| m.bytes.len()).collect::<Vec<_>>());
        let origins: Vec<Origin> = batch.into_iter().map(|m| m.origin).collect();
        src.finish(&origins).await.unwrap();
    }
    assert_eq!(
        lens,
        [vec![2 * half + 1], vec![half + 1], vec![half + 1, 10]]
    );
}

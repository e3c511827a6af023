//! Faults at the database boundary, against a real PostgreSQL: the link to
//! the server is cut (connections reset, new ones refused) while mail keeps
//! coming; nothing is lost, nothing doubled, the daemon keeps going.

#[path = "common/pg.rs"]
mod pg;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baosong::actions::Services;
use baosong::clock::{FixedClock, SystemClock};
use baosong::commands;
use baosong::config::{AfterProcessing, Config};
use baosong::daemon::{self, RunOptions};
use baosong::directory::Directory;
use baosong::model::Origin;
use baosong::store::Durability;
use baosong::types::{MailboxName, Uid};
use chrono::{DateTime, Utc};
use pg::PgSchema;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A TCP relay to the database that can be cut: while cut, every relayed
/// connection is reset and new ones are closed at once.
struct Link {
    addr: String,
    cut: watch::Sender<bool>,
    up: Arc<AtomicBool>,
}

impl Link {
    async fn to(upstream: String) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (cut, watch) = watch::channel(false);
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Link { addr, cut, up }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.cut.send(true);
    }

    fn mend(&self) {
        let _ = self.cut.send(false);
        self.up.store(true, Ordering::SeqCst);
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn deliver(md: &Path, n: usize) {
    let mail = format!(
        "From: 南京市科技局 <njkjjrcc@nanjing.gov.cn>\r\nTo: kjtrcc83236071@163.com\r\n\
         Subject: 推荐表 第{n}封\r\nMessage-ID: <fault-{n}@test>\r\n\
         Date: Sun, 4 May 2025 09:00:00 +0800\r\n\r\n附件见后。\r\n"
    );
    // As a delivery agent does: written in tmp/, then renamed into new/, so
    // the daemon never reads a half-written file.
    let name = format!("{n}.M{n}P1.fault");
    std::fs::write(md.join("tmp").join(&name), mail).unwrap();
    std::fs::rename(md.join("tmp").join(&name), md.join("new").join(&name)).unwrap();
}

fn unflagged(md: &Path) -> usize {
    std::fs::read_dir(md.join("new")).unwrap().count()
}

async fn count(url: &str, sql: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_out_of_reach_for_a_while_loses_and_doubles_nothing() {
    sqlx::any::install_default_drivers();
    let Some(pg) = PgSchema::create().await else {
        return;
    };
    // postgres://user:pw@HOST:PORT/db?… → the same through the relay.
    let at_sign = pg.url.find('@').unwrap();
    let slash = at_sign + pg.url[at_sign..].find('/').unwrap();
    let link = Link::to(pg.url[at_sign + 1..slash].to_owned()).await;
    let relayed = format!("{}{}{}", &pg.url[..=at_sign], link.addr, &pg.url[slash..]);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut config = Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    config.store.database = relayed;
    config.store.archive = root.join("archive");
    config.smtp.directory = root.join("outbox");
    config.mailboxes.truncate(1);
    let md = root.join("maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    config.mailboxes[0].maildir = Some(md.clone());
    config.mailboxes[0].poll_interval_secs = 1;
    let services = Services::open(
        config,
        Directory::example(),
        Arc::new(FixedClock::new(at("2025-05-04T10:00:00+08:00"))),
    )
    .await
    .unwrap();
    let sources = commands::mailbox_sources(&services).await.unwrap();
    let sender = commands::mail_sender(&services.config).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(daemon::run(
        services.clone(),
        sources,
        sender,
        RunOptions { once: false },
        cancel.clone(),
    ));
    deliver(&md, 1);
    let wait = async |n: usize| {
        for _ in 0..400 {
            if unflagged(&md) == 0
                && count(&pg.url, "SELECT COUNT(*) FROM messages").await == n as i64
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{n} mails not recorded; {} unflagged", unflagged(&md));
    };
    wait(1).await;

    link.cut();
    for n in 2..=4 {
        deliver(&md, n);
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        unflagged(&md),
        3,
        "nothing flagged while the database is away"
    );
    assert!(!task.is_finished(), "the daemon keeps going");

    link.mend();
    wait(4).await;
    let outbox = root.join("outbox");
    for _ in 0..100 {
        if std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        count(
            &pg.url,
            "SELECT COUNT(DISTINCT header_message_id) FROM messages"
        )
        .await,
        4
    );
    let acks = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(acks, 4, "one ack each, none twice");
}

/// Deferring a message's archive file to the group's `syncfs` is safe only
/// where a power cut that loses the file also brings the message back:
/// every source but an IMAP folder read with `after = "keep"`, whose stored
/// cursor may reach the disk before the file.
#[tokio::test]
async fn only_a_kept_imap_folder_archives_each_message_before_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    config.store.database = format!("sqlite://{}/baosong.db", dir.path().display());
    config.store.archive = dir.path().join("archive");
    config.mailboxes[0].after = AfterProcessing::Keep;
    config.mailboxes[1].after = AfterProcessing::Seen;
    let (kept, seen) = (
        config.mailboxes[0].name.clone(),
        config.mailboxes[1].name.clone(),
    );
    let services = Services::open(config, Directory::example(), Arc::new(SystemClock))
        .await
        .unwrap();
    let imap = |mailbox: &MailboxName| Origin::Imap {
        mailbox: mailbox.clone(),
        uidvalidity: 1,
        uid: Uid(7),
    };
    assert_eq!(
        services.archive_durability(&imap(&kept)),
        Durability::Synced
    );
    assert_eq!(
        services.archive_durability(&imap(&seen)),
        Durability::Deferred
    );
    let maildir = Origin::Maildir {
        mailbox: kept,
        key: "1746000001.M1P1.host".into(),
    };
    assert_eq!(services.archive_durability(&maildir), Durability::Deferred);
}

//! Several instances on one PostgreSQL database: the mailboxes are leased,
//! spread over the instances, and a dead instance's are taken over.

#[path = "common/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baosong::actions::Services;
use baosong::clock::SystemClock;
use baosong::commands;
use baosong::config::{Config, MailboxConfig};
use baosong::daemon::{self, RunOptions};
use baosong::directory::Directory;
use baosong::leases::{LeaseTimes, Leases};
use baosong::types::MailboxName;
use pg::PgSchema;
use tokio_util::sync::CancellationToken;

const TIMES: LeaseTimes = LeaseTimes {
    lease: Duration::from_secs(3),
    tick: Duration::from_millis(500),
    settle: Duration::from_millis(100),
};

/// The example config with four Maildir mailboxes, on `database`.
fn config(root: &Path, database: &str, instance: &str) -> Config {
    let mut config = Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    config.store.database = database.to_owned();
    config.store.instance = Some(instance.to_owned());
    config.store.archive = root.join("archive");
    config.smtp.directory = root.join(format!("outbox-{instance}"));
    let first = config.mailboxes[0].clone();
    config.mailboxes.truncate(1);
    for n in 2..=4 {
        let mut mb: MailboxConfig = first.clone();
        mb.name = MailboxName::from(format!("m{n}").as_str());
        config.campaigns[0].mailboxes.push(mb.name.clone());
        config.mailboxes.push(mb);
    }
    for mb in &mut config.mailboxes {
        mb.maildir = Some(maildir(root, mb.name.as_str()));
        mb.poll_interval_secs = 1;
    }
    config
}

fn maildir(root: &Path, name: &str) -> PathBuf {
    root.join("maildir").join(name)
}

fn deliver(root: &Path, mailboxes: &[&str], from: usize, to: usize) {
    for name in mailboxes {
        let md = maildir(root, name);
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
        for n in from..to {
            let mail = format!(
                "From: 南京市科技局 <njkjjrcc@nanjing.gov.cn>\r\nTo: kjtrcc83236071@163.com\r\n\
                 Subject: 推荐表 {name} 第{n}封\r\nMessage-ID: <{name}-{n}@lease.test>\r\n\
                 Date: Sun, 4 May 2025 09:00:00 +0800\r\n\r\n附件见后。\r\n"
            );
            // Through tmp/, as a delivery agent does.
            let file = format!("{n}.M{n}P1.{name}");
            std::fs::write(md.join("tmp").join(&file), mail).unwrap();
            std::fs::rename(md.join("tmp").join(&file), md.join("new").join(&file)).unwrap();
        }
    }
}

fn unread(root: &Path, mailboxes: &[&str]) -> usize {
    mailboxes
        .iter()
        .map(|n| {
            std::fs::read_dir(maildir(root, n).join("new"))
                .unwrap()
                .count()
        })
        .sum()
}

/// One instance: its lease keeper and its daemon, each a task to abort.
struct Instance {
    leases: Arc<Leases>,
    keeper: tokio::task::JoinHandle<()>,
    daemon: tokio::task::JoinHandle<()>,
    services: Services,
}

async fn start(config: Config) -> Instance {
    let services = Services::open(config, Directory::example(), Arc::new(SystemClock))
        .await
        .unwrap();
    let (leases, sources) = commands::leased_sources(&services, TIMES).await.unwrap();
    let leases = Arc::new(leases);
    let keeper = {
        let l = leases.clone();
        tokio::spawn(async move { l.run(CancellationToken::new()).await })
    };
    let sender = commands::mail_sender(&services.config).unwrap();
    let daemon = {
        let s = services.clone();
        tokio::spawn(async move {
            let _ = daemon::run(
                s,
                sources,
                sender,
                RunOptions { once: false },
                CancellationToken::new(),
            )
            .await;
        })
    };
    Instance {
        leases,
        keeper,
        daemon,
        services,
    }
}

async fn count(services: &Services, sql: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(&services.config.store.database)
        .await
        .unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap()
}

async fn until(what: &str, limit: Duration, mut ok: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_four_mailboxes_and_one_takes_over_a_dead_ones() {
    sqlx::any::install_default_drivers();
    let Some(pg) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let names = ["kjt", "m2", "m3", "m4"];
    deliver(root, &names, 0, 0);
    let a = start(config(root, &pg.url, "a")).await;
    let b = start(config(root, &pg.url, "b")).await;

    until("two mailboxes each", Duration::from_secs(10), async || {
        a.leases.held().len() == 2 && b.leases.held().len() == 2
    })
    .await;
    let (ha, hb) = (a.leases.held(), b.leases.held());
    assert!(ha.iter().all(|m| !hb.contains(m)), "{ha:?} {hb:?}");

    deliver(root, &names, 0, 15);
    until("60 mails recorded", Duration::from_secs(60), async || {
        unread(root, &names) == 0 && count(&b.services, "SELECT COUNT(*) FROM messages").await == 60
    })
    .await;

    // a dies without a word: its leases run out and b takes every mailbox.
    a.keeper.abort();
    a.daemon.abort();
    let took = until("b holds all four", Duration::from_secs(30), async || {
        b.leases.held().len() == 4
    })
    .await;
    assert!(
        took <= TIMES.lease + TIMES.tick * 3,
        "took {took:?} over a lease of {:?}",
        TIMES.lease
    );

    deliver(root, &names, 15, 30);
    until("120 mails recorded", Duration::from_secs(60), async || {
        unread(root, &names) == 0
            && count(&b.services, "SELECT COUNT(*) FROM messages").await == 120
    })
    .await;
    let distinct = count(
        &b.services,
        "SELECT COUNT(DISTINCT header_message_id) FROM messages",
    )
    .await;
    assert_eq!(distinct, 120, "0 duplicates and 0 lost");
    b.keeper.abort();
    b.daemon.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_started_together_split_the_mailboxes_at_once() {
    sqlx::any::install_default_drivers();
    let Some(pg) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    deliver(root, &["kjt", "m2", "m3", "m4"], 0, 0);
    let open = |instance: &'static str| {
        let config = config(root, &pg.url, instance);
        async move {
            let services = Services::open(config, Directory::example(), Arc::new(SystemClock))
                .await
                .unwrap();
            // Long enough for the other to open its store (migrations
            // are taken in turn) and say it is alive.
            let times = LeaseTimes {
                settle: Duration::from_secs(1),
                ..TIMES
            };
            commands::leased_sources(&services, times).await.unwrap().0
        }
    };
    // No keeper runs: what each holds is what its first round took.
    let (a, b) = tokio::join!(open("a"), open("b"));
    let (ha, hb) = (a.held(), b.held());
    assert_eq!((ha.len(), hb.len()), (2, 2), "{ha:?} {hb:?}");
    assert!(ha.iter().all(|m| !hb.contains(m)), "{ha:?} {hb:?}");
}

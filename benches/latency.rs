//! Ack latency under load: one mailbox (a Maildir) holds a backlog of N
//! mails from the corpus, each with its own Message-ID, while fresh mails
//! arrive one by one in a second mailbox that signals new mail at once (as
//! IMAP IDLE does, without Dovecot's own ~0.5 s delay). Measures, for each
//! fresh mail, the time from its arrival to its ack reaching the mail
//! sender; and how long the backlog took.
//!
//! `cargo bench --bench latency` (N=1000, 40 fresh mails; `N=…` and `FRESH=…`
//! change them). A plain main: no timing assertions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baosong::actions::Services;
use baosong::clock::SystemClock;
use baosong::config::Config;
use baosong::daemon::{self, RunOptions};
use baosong::directory::Directory;
use baosong::model::{Origin, RawMessage};
use baosong::outbound::transport::{MailSender, SendError};
use baosong::source::maildir::MaildirSource;
use baosong::source::{MailboxSource, SourceError};
use baosong::types::MailboxName;
use baosong::worker::{Pool, PoolOptions};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Records when each ack reaches it, by the subject's bench tag.
#[derive(Default)]
struct Clocked {
    acked: Mutex<HashMap<String, Instant>>,
}

#[async_trait::async_trait]
impl MailSender for Clocked {
    async fn send(&self, _from: &str, _to: &[String], bytes: &[u8]) -> Result<(), SendError> {
        let text = String::from_utf8_lossy(bytes);
        if let Some(i) = text.find("fresh-") {
            let tag: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            self.acked
                .lock()
                .unwrap()
                .entry(tag)
                .or_insert_with(Instant::now);
        }
        Ok(())
    }
}

/// A mailbox that says at once when mail has come, as IDLE does.
struct Pushed {
    name: MailboxName,
    rx: mpsc::UnboundedReceiver<RawMessage>,
    ready: Vec<RawMessage>,
    came: Arc<Notify>,
}

#[async_trait::async_trait]
impl MailboxSource for Pushed {
    fn name(&self) -> &MailboxName {
        &self.name
    }
    async fn fetch(&mut self, max: usize) -> Result<Vec<RawMessage>, SourceError> {
        while let Ok(m) = self.rx.try_recv() {
            self.ready.push(m);
        }
        let n = self.ready.len().min(max);
        Ok(self.ready.drain(..n).collect())
    }
    async fn finish(&mut self, _committed: &[Origin]) -> Result<(), SourceError> {
        Ok(())
    }
    fn skip(&mut self, _origin: &Origin) {}
    async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), SourceError> {
        tokio::select! {
            () = self.came.notified() => {}
            () = cancel.cancelled() => {}
        }
        Ok(())
    }
    async fn reset(&mut self) {}
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let n = env_usize("N", 1000);
    let fresh = env_usize("FRESH", 40);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::example(root).expect("example config");
    config.store.database = format!("sqlite://{}", dir.path().join("b.db").display());
    config.store.archive = dir.path().join("archive");
    config.smtp.ack_per_recipient_per_hour = u32::MAX;
    config.smtp.ack_per_hour = u32::MAX;
    let backlog = dir.path().join("maildir/kjt");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(backlog.join(sub)).expect("maildir");
    }
    config.mailboxes[0].maildir = Some(backlog.clone());
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(root.join("tests/fixtures/mail"))
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    corpus.sort();
    for i in 0..n {
        let mut mail =
            format!("Message-ID: <backlog{i}@bench>\r\nX-Bench-Seq: {i}\r\n").into_bytes();
        mail.extend_from_slice(&corpus[i % corpus.len()]);
        std::fs::write(
            backlog
                .join("new")
                .join(format!("{}.B{i}.bench", 1_700_000_000 + i)),
            mail,
        )
        .expect("write");
    }

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pool =
            Pool::with_options(PoolOptions::new(env!("CARGO_BIN_EXE_baosong"))).expect("pool");
        let services = Services::open(config, Directory::example(), Arc::new(SystemClock))
            .await
            .expect("services")
            .with_extractor(Arc::new(pool));
        let (push, rx) = mpsc::unbounded_channel();
        let came = Arc::new(Notify::new());
        let kx = services.config.mailboxes[1].name.clone();
        let sources: Vec<Box<dyn MailboxSource>> = vec![
            Box::new(MaildirSource::new(services.config.mailboxes[0].clone()).expect("maildir")),
            Box::new(Pushed {
                name: kx.clone(),
                rx,
                ready: Vec::new(),
                came: came.clone(),
            }),
        ];
        let sender = Arc::new(Clocked::default());
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let daemon = tokio::spawn(daemon::run(
            services.clone(),
            sources,
            sender.clone(),
            RunOptions { once: false },
            cancel.clone(),
        ));
        let mut sent_at = HashMap::new();
        for i in 0..fresh {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let tag = format!("fresh-{i}");
            let bytes = format!(
                "From: 南京市科技局 <njkjjrcc@nanjing.gov.cn>\r\nTo: jskxdxb@163.com\r\n\
                 Subject: 推荐表 {tag}\r\nMessage-ID: <{tag}@bench>\r\n\
                 Date: Sun, 4 May 2025 09:00:00 +0800\r\n\r\n附件见后。\r\n"
            );
            let raw = RawMessage::new(
                bytes.into_bytes(),
                Origin::Maildir {
                    mailbox: kx.clone(),
                    key: tag.clone(),
                },
                None,
            );
            sent_at.insert(tag, Instant::now());
            push.send(raw).expect("push");
            came.notify_one();
        }
        // The backlog is done when its new/ and unseen cur/ are empty.
        loop {
            let left = std::fs::read_dir(backlog.join("new"))
                .map(|d| d.count())
                .unwrap_or(0);
            let acked = sender.acked.lock().unwrap().len();
            if left == 0 && acked >= fresh {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let backlog_s = started.elapsed().as_secs_f64();
        cancel.cancel();
        let _ = daemon.await;
        let acked = sender.acked.lock().unwrap().clone();
        let mut lat: Vec<Duration> = sent_at
            .iter()
            .filter_map(|(t, s)| acked.get(t).map(|a| a.duration_since(*s)))
            .collect();
        lat.sort();
        println!(
            "backlog {n} mails in one mailbox, {fresh} fresh mails in the other (one every 150 ms)"
        );
        println!(
            "backlog done in {backlog_s:.2} s ({:.0} mails/s)",
            n as f64 / backlog_s
        );
        println!(
            "fresh mail to ack: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} acked)",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            lat.len()
        );
    });
}

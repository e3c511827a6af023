//! The IMAP password stays out of the logs even when an operator asks for
//! `trace`. Its own test binary: it installs the process-wide `log` bridge.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baosong::clock::Heartbeat;
use baosong::config::{AfterProcessing, ImapAuth, ImapConfig, MailboxConfig, Secret, TlsMode};
use baosong::source::imap::ImapSource;
use baosong::source::{self, Disposition, LOG_FILTER_DIRECTIVE};
use common::dovecot::{Dovecot, PASSWORD, USER};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

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

/// Runs the source over one message with `filter` as this thread's subscriber
/// and returns what was logged.
async fn logged_with(d: &Dovecot, filter: EnvFilter) -> String {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter(filter)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cfg = MailboxConfig {
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
        after: AfterProcessing::Keep,
        move_to: None,
        poll_interval_secs: 600,
        from: None,
    };
    let (tx, mut rx) = mpsc::channel(1);
    let cancel = CancellationToken::new();
    let src = ImapSource::new(cfg, PASSWORD.into(), None).unwrap();
    let task = tokio::spawn(source::run(
        Box::new(src),
        tx,
        cancel.clone(),
        false,
        Heartbeat::default(),
    ));
    let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    m.done.send(Disposition::Committed).unwrap();
    cancel.cancel();
    task.await.unwrap().unwrap();
    String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn password_stays_out_of_trace_logs_with_the_directive() {
    // Installs the `log` → tracing bridge at trace level (as a daemon run with
    // RUST_LOG=trace would); it writes nowhere, the thread's default subscriber
    // below receives the events.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("trace"))
        .with_writer(std::io::sink)
        .finish()
        .try_init()
        .unwrap();
    let d = Dovecot::start(false);
    d.append(USER, "INBOX", b"Subject: x\r\n\r\nbody\r\n");

    // Without the directive, async-imap's trace shows the LOGIN line: the
    // check below can see a leak.
    let leaky = logged_with(&d, EnvFilter::new("trace")).await;
    assert!(leaky.contains(PASSWORD), "expected the leak to be visible");

    // With it, even an explicit `async_imap=trace` from RUST_LOG is overridden.
    for env in ["trace", "async_imap=trace,trace"] {
        let filter = EnvFilter::new(env).add_directive(LOG_FILTER_DIRECTIVE.parse().unwrap());
        let text = logged_with(&d, filter).await;
        assert!(text.contains("IMAP folder selected"), "{text}");
        assert!(!text.contains(PASSWORD), "password in the log:\n{text}");
    }
}

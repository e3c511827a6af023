//! The IMAP source: one task per mailbox that logs in, reads every message
//! above the last committed UID, hands each to the pipeline, flags or moves it
//! only once the pipeline says it is committed, and then waits for new mail
//! (IDLE where offered, polling otherwise). Every failure ends the connection
//! and is retried with backoff, forever, until cancelled.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::types::{Capability, Fetch, Name, UnsolicitedResponse};
use async_imap::{Authenticator, Client, Session};
use chrono::Utc;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{Backoff, Delivery, Disposition, Origin, RawMessage, SourceError, deliver, tls};
use crate::config::{AfterProcessing, ImapAuth, ImapConfig, MailboxConfig, TlsMode};
use crate::types::Uid;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous: one command may carry a batch of large messages.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Servers may drop an IDLE after 30 minutes (RFC 2177); renew well before.
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
/// Most messages fetched in one command, and most bytes (a larger message
/// still comes, alone).
const BATCH_MESSAGES: usize = 20;
const BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// Anything async-imap can run over: plain TCP (loopback tests) or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}
type ImapSession = Session<Box<dyn Io>>;

/// What `check-config` shows about a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Capabilities after login, sorted.
    pub capabilities: Vec<String>,
    /// Whether the server offers IDLE (otherwise the mailbox is polled).
    pub idle: bool,
    /// Messages in the configured folder.
    pub exists: u32,
    pub uidvalidity: u32,
}

/// Logs in (with ID), reads the capabilities and selects the folder, then logs out.
pub async fn check(cfg: &MailboxConfig, password: &str) -> Result<CheckReport, SourceError> {
    let imap = imap_config(cfg)?;
    let tls = connector(cfg, imap)?;
    let (mut s, caps) = open(cfg, imap, tls.as_ref(), password).await?;
    let (uidvalidity, exists) = select(&mut s, cfg).await?;
    close(s).await;
    Ok(CheckReport {
        capabilities: caps.names,
        idle: caps.idle,
        exists,
        uidvalidity,
    })
}

/// Reads `cfg`'s IMAP folder until `cancel` fires.
///
/// `resume` is the folder's UIDVALIDITY and the highest UID already committed;
/// reading starts after it, or from UID 1 when the UIDVALIDITY differs (the
/// store recognises messages it already has by their bytes). Each message is
/// sent as a [`Delivery`]; the next one comes only after its disposition. On
/// cancellation a message in hand is finished (including its flag or move).
///
/// Returns `Ok` when cancelled; `Err` only for a configuration error or when
/// the receiver of `tx` is gone. Everything else is logged and retried.
pub async fn run(
    cfg: MailboxConfig,
    password: String,
    resume: Option<(u32, u32)>,
    tx: mpsc::Sender<Delivery>,
    cancel: CancellationToken,
    once: bool,
) -> Result<(), SourceError> {
    let imap = imap_config(&cfg)?;
    let tls = connector(&cfg, imap)?;
    let mut password = password;
    let mut cursor = resume;
    let mut backoff = Backoff::new();
    let ctx = Ctx {
        cfg: &cfg,
        imap,
        tls: tls.as_ref(),
        tx: &tx,
        cancel: &cancel,
        once,
    };
    loop {
        let err = match connection(&ctx, &password, &mut cursor, &mut backoff).await {
            Ok(()) => return Ok(()),
            Err(e @ (SourceError::Config { .. } | SourceError::ConsumerGone)) => return Err(e),
            // A one-shot run reports the failure instead of waiting it out.
            Err(e) if once => return Err(e),
            Err(e) => e,
        };
        let mut delay = backoff.delay(&err);
        let (uidvalidity, last_uid) = cursor.unwrap_or_default();
        if let SourceError::Auth { .. } = err {
            // The operator may have fixed the secret's file or variable meanwhile.
            if let Ok(fresh) = imap.password.resolve("imap.password")
                && fresh != password
            {
                info!(mailbox = %cfg.name, "the IMAP password changed; using the new one");
                password = fresh;
                delay = Duration::from_secs(1);
            }
            error!(
                mailbox = %cfg.name, host = %imap.host, user = %imap.username, error = %err,
                retry_in_secs = delay.as_secs(),
                "IMAP login refused; check the username and password (授权码 for 163/QQ mail) and that IMAP is enabled for the account"
            );
        } else if let SourceError::Consumer(_) = err {
            warn!(
                mailbox = %cfg.name, uidvalidity, next_uid = last_uid + 1,
                retry_in_secs = delay.as_secs(), "offering the message again after a store failure"
            );
        } else if err.is_retryable() {
            warn!(
                mailbox = %cfg.name, host = %imap.host, error = %err, uidvalidity, last_uid,
                retry_in_secs = delay.as_secs(), "IMAP connection failed; reconnecting"
            );
        } else {
            error!(
                mailbox = %cfg.name, host = %imap.host, error = %err, uidvalidity, last_uid,
                retry_in_secs = delay.as_secs(), "IMAP mailbox unusable; retrying later"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Ok(()),
        }
    }
}

struct Ctx<'a> {
    cfg: &'a MailboxConfig,
    imap: &'a ImapConfig,
    tls: Option<&'a tokio_rustls::TlsConnector>,
    tx: &'a mpsc::Sender<Delivery>,
    cancel: &'a CancellationToken,
    /// Read what is there now, then return.
    once: bool,
}

/// What the server offers that changes what we do.
#[derive(Debug, Clone)]
struct Caps {
    names: Vec<String>,
    idle: bool,
    moves: bool,
    uidplus: bool,
}

fn imap_config(cfg: &MailboxConfig) -> Result<&ImapConfig, SourceError> {
    cfg.imap.as_ref().ok_or_else(|| SourceError::Config {
        mailbox: cfg.name.to_string(),
        message: "no [mailbox.imap] section".into(),
    })
}

fn connector(
    cfg: &MailboxConfig,
    imap: &ImapConfig,
) -> Result<Option<tokio_rustls::TlsConnector>, SourceError> {
    if imap.tls == TlsMode::None {
        // The password would cross the network in clear text.
        let loopback = imap.host == "localhost"
            || imap
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(SourceError::Config {
                mailbox: cfg.name.to_string(),
                message: format!(
                    "`tls = \"none\"` is only allowed for localhost, not {}",
                    imap.host
                ),
            });
        }
        return Ok(None);
    }
    tls::connector(imap.ca_file.as_deref())
        .map(Some)
        .map_err(|message| SourceError::Config {
            mailbox: cfg.name.to_string(),
            message,
        })
}

/// Runs `fut` with a time limit.
async fn timed<T, E: Into<SourceError>>(
    what: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(SourceError::Timeout {
            what,
            secs: limit.as_secs(),
        }),
    }
}

/// One connection: log in, select, then read and wait until cancelled or an error.
async fn connection(
    ctx: &Ctx<'_>,
    password: &str,
    cursor: &mut Option<(u32, u32)>,
    backoff: &mut Backoff,
) -> Result<(), SourceError> {
    let (mut s, caps) = open(ctx.cfg, ctx.imap, ctx.tls, password).await?;
    let (uidvalidity, exists) = select(&mut s, ctx.cfg).await?;
    let last_uid = match *cursor {
        Some((v, last)) if v == uidvalidity => last,
        Some((old, _)) => {
            warn!(
                mailbox = %ctx.cfg.name, old_uidvalidity = old, uidvalidity,
                "UIDVALIDITY changed; reading the folder again from UID 1"
            );
            0
        }
        None => 0,
    };
    *cursor = Some((uidvalidity, last_uid));
    if ctx.cfg.after == AfterProcessing::Move {
        ensure_folder(&mut s, ctx).await?;
    }
    info!(
        mailbox = %ctx.cfg.name, folder = %ctx.cfg.folder, uidvalidity, exists, last_uid,
        idle = caps.idle, "IMAP folder selected"
    );
    if last_uid > 0 {
        // A stop between the last commit and its flag or move would leave that
        // message unfinished; finishing it again is harmless.
        finish_committed(&mut s, ctx, &caps, last_uid).await?;
    }
    loop {
        read_new(&mut s, ctx, &caps, uidvalidity, cursor).await?;
        if ctx.cancel.is_cancelled() || ctx.once {
            close(s).await;
            return Ok(());
        }
        backoff.reset();
        match wait(s, ctx, &caps).await? {
            Some(next) => s = next,
            None => return Ok(()),
        }
    }
}

/// Connects, upgrades to TLS as configured, logs in and identifies itself.
async fn open(
    cfg: &MailboxConfig,
    imap: &ImapConfig,
    tls: Option<&tokio_rustls::TlsConnector>,
    password: &str,
) -> Result<(ImapSession, Caps), SourceError> {
    let host = imap.host.as_str();
    let port = imap.port();
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| SourceError::Timeout {
            what: "connect",
            secs: CONNECT_TIMEOUT.as_secs(),
        })?
        .map_err(|source| SourceError::Connect {
            host: host.to_owned(),
            port,
            source,
        })?;
    let tls_err = |message: String| SourceError::Tls {
        host: host.to_owned(),
        message,
    };
    let client: Client<Box<dyn Io>> = match (imap.tls, tls) {
        (TlsMode::Implicit, Some(connector)) => {
            let stream = timed("TLS handshake", CONNECT_TIMEOUT, async {
                tls::handshake(connector, host, tcp).await.map_err(tls_err)
            })
            .await?;
            let mut client = Client::new(Box::new(stream) as Box<dyn Io>);
            greeting(&mut client).await?;
            client
        }
        (TlsMode::Starttls, Some(connector)) => {
            let mut plain = Client::new(tcp);
            greeting(&mut plain).await?;
            // Never fall back to plain text when the server refuses.
            timed(
                "STARTTLS",
                CONNECT_TIMEOUT,
                plain.run_command_and_check_ok("STARTTLS", None),
            )
            .await
            .map_err(|e| tls_err(format!("STARTTLS refused: {e}")))?;
            let stream = timed("TLS handshake", CONNECT_TIMEOUT, async {
                tls::handshake(connector, host, plain.into_inner())
                    .await
                    .map_err(tls_err)
            })
            .await?;
            // No greeting follows STARTTLS.
            Client::new(Box::new(stream) as Box<dyn Io>)
        }
        _ => {
            let mut client = Client::new(Box::new(tcp) as Box<dyn Io>);
            greeting(&mut client).await?;
            client
        }
    };

    let login = match imap.auth {
        ImapAuth::Login => {
            timed("LOGIN", CONNECT_TIMEOUT, async {
                Ok::<_, SourceError>(client.login(&imap.username, password).await)
            })
            .await?
        }
        ImapAuth::Plain => {
            let plain = Plain {
                user: &imap.username,
                password,
            };
            timed("AUTHENTICATE", CONNECT_TIMEOUT, async {
                Ok::<_, SourceError>(client.authenticate("PLAIN", plain).await)
            })
            .await?
        }
    };
    let mut s = login.map_err(|(e, _)| match e {
        async_imap::error::Error::No(message) | async_imap::error::Error::Bad(message) => {
            SourceError::Auth {
                user: imap.username.clone(),
                message,
            }
        }
        e => SourceError::Imap(e),
    })?;

    let caps = timed("CAPABILITY", COMMAND_TIMEOUT, s.capabilities()).await?;
    let mut names: Vec<String> = caps
        .iter()
        .map(|c| match c {
            Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
            Capability::Auth(m) => format!("AUTH={m}"),
            Capability::Atom(a) => a.clone(),
        })
        .collect();
    names.sort();
    let caps = Caps {
        idle: caps.has_str("IDLE"),
        moves: caps.has_str("MOVE"),
        uidplus: caps.has_str("UIDPLUS"),
        names,
    };

    if imap.send_id {
        // Coremail (163.com, 126.com) refuses SELECT without it; others may say BAD.
        let id = [
            ("name", Some("baosong")),
            ("version", Some(env!("CARGO_PKG_VERSION"))),
        ];
        match timed("ID", COMMAND_TIMEOUT, s.id(id)).await {
            Ok(server) => debug!(mailbox = %cfg.name, server = ?server, "IMAP ID exchanged"),
            Err(SourceError::Imap(
                async_imap::error::Error::Bad(e) | async_imap::error::Error::No(e),
            )) => debug!(mailbox = %cfg.name, error = %e, "server refused IMAP ID; going on"),
            Err(e) => return Err(e),
        }
    }
    Ok((s, caps))
}

async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + Debug>(
    client: &mut Client<T>,
) -> Result<(), SourceError> {
    match timed("greeting", CONNECT_TIMEOUT, client.read_response()).await? {
        Some(_) => Ok(()),
        None => Err(SourceError::Imap(async_imap::error::Error::ConnectionLost)),
    }
}

/// SASL PLAIN: no authorisation identity, then user and password.
struct Plain<'a> {
    user: &'a str,
    password: &'a str,
}

impl Authenticator for Plain<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

/// Selects (read-write: we set flags) the folder; returns (UIDVALIDITY, EXISTS).
async fn select(s: &mut ImapSession, cfg: &MailboxConfig) -> Result<(u32, u32), SourceError> {
    let folder_err = |message: String| SourceError::Folder {
        folder: cfg.folder.clone(),
        message,
    };
    let mbox = timed(
        "SELECT",
        COMMAND_TIMEOUT,
        s.select(encode_mailbox_name(&cfg.folder)),
    )
    .await
    .map_err(|e| match e {
        SourceError::Imap(async_imap::error::Error::No(m)) => folder_err(m),
        e => e,
    })?;
    let uidvalidity = mbox
        .uid_validity
        .ok_or_else(|| folder_err("the server gave no UIDVALIDITY".into()))?;
    Ok((uidvalidity, mbox.exists))
}

/// Creates the `move_to` folder when it is missing.
async fn ensure_folder(s: &mut ImapSession, ctx: &Ctx<'_>) -> Result<(), SourceError> {
    let Some(target) = ctx.cfg.move_to.as_deref() else {
        return Err(SourceError::Config {
            mailbox: ctx.cfg.name.to_string(),
            message: "`after = \"move\"` needs `move_to`".into(),
        });
    };
    let encoded = encode_mailbox_name(target);
    let pattern = format!("\"{}\"", encoded.replace('\\', "\\\\").replace('"', "\\\""));
    let names: Vec<Name> = timed("LIST", COMMAND_TIMEOUT, async {
        s.list(Some(""), Some(&pattern)).await?.try_collect().await
    })
    .await?;
    if names.is_empty() {
        timed("CREATE", COMMAND_TIMEOUT, s.create(&encoded))
            .await
            .map_err(|e| SourceError::Folder {
                folder: target.to_owned(),
                message: format!("cannot create it: {e}"),
            })?;
        info!(mailbox = %ctx.cfg.name, folder = %target, "created the folder processed mail is moved to");
    }
    Ok(())
}

/// Applies `after` again to a committed message if it is still in the folder.
async fn finish_committed(
    s: &mut ImapSession,
    ctx: &Ctx<'_>,
    caps: &Caps,
    uid: u32,
) -> Result<(), SourceError> {
    if ctx.cfg.after == AfterProcessing::Keep {
        return Ok(());
    }
    let found = timed(
        "UID SEARCH",
        COMMAND_TIMEOUT,
        s.uid_search(format!("UID {uid}")),
    )
    .await?;
    if found.contains(&uid) {
        apply_after(s, ctx, caps, uid).await?;
    }
    Ok(())
}

/// Reads every message above the cursor, one disposition at a time.
async fn read_new(
    s: &mut ImapSession,
    ctx: &Ctx<'_>,
    caps: &Caps,
    uidvalidity: u32,
    cursor: &mut Option<(u32, u32)>,
) -> Result<(), SourceError> {
    let mailbox = &ctx.cfg.name;
    loop {
        while s.unsolicited_responses.try_recv().is_ok() {}
        let from = cursor.map_or(0, |(_, last)| last) + 1;
        let listed: Vec<Fetch> = tokio::select! {
            r = timed("UID FETCH sizes", COMMAND_TIMEOUT, async {
                s.uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE)").await?.try_collect().await
            }) => r?,
            () = ctx.cancel.cancelled() => return Ok(()),
        };
        // `n:*` also returns the highest message when every UID is below n.
        let mut pending: Vec<(u32, u64)> = listed
            .iter()
            .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
            .filter(|&(uid, _)| uid >= from)
            .collect();
        pending.sort_unstable();
        if pending.is_empty() {
            return Ok(());
        }
        debug!(%mailbox, uidvalidity, from_uid = from, count = pending.len(), "new messages");

        let mut delivered = false;
        for batch in batches(&pending) {
            let set = batch
                .iter()
                .map(|(uid, _)| uid.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let mut fetched: Vec<Fetch> = tokio::select! {
                r = timed("UID FETCH", COMMAND_TIMEOUT, async {
                    s.uid_fetch(&set, "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])")
                        .await?
                        .try_collect()
                        .await
                }) => r?,
                () = ctx.cancel.cancelled() => return Ok(()),
            };
            fetched.retain(|f| f.uid.is_some_and(|u| batch.iter().any(|(b, _)| *b == u)));
            fetched.sort_by_key(|f| f.uid);
            for f in fetched {
                let Some(uid) = f.uid else { continue };
                let Some(body) = f.body() else {
                    return Err(SourceError::Imap(async_imap::error::Error::Parse(
                        async_imap::error::ParseError::ExpectedResponseNotFound(format!(
                            "BODY[] of UID {uid}"
                        )),
                    )));
                };
                let raw = RawMessage {
                    bytes: body.to_vec(),
                    origin: Origin::Imap {
                        mailbox: mailbox.clone(),
                        uidvalidity,
                        uid: Uid(uid),
                    },
                    received_at: f.internal_date().map(|d| d.with_timezone(&Utc)),
                };
                drop(f);
                debug!(%mailbox, uidvalidity, uid, size = raw.bytes.len(), "delivering message");
                match deliver(ctx.tx, raw, ctx.cancel).await? {
                    None => return Ok(()),
                    Some(Disposition::Committed) => {
                        *cursor = Some((uidvalidity, uid));
                        apply_after(s, ctx, caps, uid).await?;
                        info!(%mailbox, uidvalidity, uid, after = ?ctx.cfg.after, "message committed");
                        delivered = true;
                    }
                    // The store could not keep it: leave it untouched and offer
                    // it again after a backoff, before anything newer.
                    Some(Disposition::Failed(reason)) => {
                        warn!(%mailbox, uidvalidity, uid, reason = %reason, "message not stored; will retry");
                        return Err(SourceError::Consumer(reason));
                    }
                }
                if ctx.cancel.is_cancelled() {
                    return Ok(());
                }
            }
        }
        // Messages listed but gone by the time they were fetched (expunged
        // elsewhere) must not make this loop spin.
        if !delivered {
            return Ok(());
        }
    }
}

/// Splits (uid, size) pairs into fetches of at most BATCH_MESSAGES messages and
/// about BATCH_BYTES bytes.
fn batches(pending: &[(u32, u64)]) -> Vec<&[(u32, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &(_, size)) in pending.iter().enumerate() {
        if i > start && (i - start == BATCH_MESSAGES || bytes + size > BATCH_BYTES) {
            out.push(&pending[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < pending.len() {
        out.push(&pending[start..]);
    }
    out
}

/// Flags or moves a committed message as configured.
async fn apply_after(
    s: &mut ImapSession,
    ctx: &Ctx<'_>,
    caps: &Caps,
    uid: u32,
) -> Result<(), SourceError> {
    let set = uid.to_string();
    match ctx.cfg.after {
        AfterProcessing::Keep => {}
        AfterProcessing::Seen => store(s, &set, "+FLAGS.SILENT (\\Seen)").await?,
        AfterProcessing::Move => {
            let target = encode_mailbox_name(ctx.cfg.move_to.as_deref().unwrap_or_default());
            if caps.moves {
                timed("UID MOVE", COMMAND_TIMEOUT, s.uid_mv(&set, &target)).await?;
            } else {
                timed("UID COPY", COMMAND_TIMEOUT, s.uid_copy(&set, &target)).await?;
                store(s, &set, "+FLAGS.SILENT (\\Deleted)").await?;
                if caps.uidplus {
                    timed("UID EXPUNGE", COMMAND_TIMEOUT, async {
                        s.uid_expunge(&set).await?.try_collect::<Vec<_>>().await
                    })
                    .await?;
                } else {
                    // A plain EXPUNGE would also remove what others marked \Deleted.
                    warn!(
                        mailbox = %ctx.cfg.name, uid,
                        "server has neither MOVE nor UIDPLUS: copied and marked \\Deleted, not expunged"
                    );
                }
            }
        }
    }
    Ok(())
}

async fn store(s: &mut ImapSession, set: &str, query: &str) -> Result<(), SourceError> {
    timed("UID STORE", COMMAND_TIMEOUT, async {
        s.uid_store(set, query).await?.try_collect::<Vec<_>>().await
    })
    .await?;
    Ok(())
}

/// Waits for new mail; returns the session to read again, or None when cancelled.
async fn wait(
    mut s: ImapSession,
    ctx: &Ctx<'_>,
    caps: &Caps,
) -> Result<Option<ImapSession>, SourceError> {
    let mailbox = &ctx.cfg.name;
    if !caps.idle {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(ctx.cfg.poll_interval_secs)) => {}
            () = ctx.cancel.cancelled() => {
                close(s).await;
                return Ok(None);
            }
        }
        timed("NOOP", COMMAND_TIMEOUT, s.noop()).await?;
        return Ok(Some(s));
    }

    let unsolicited = s.unsolicited_responses.clone();
    let mut idle = s.idle();
    timed("IDLE", COMMAND_TIMEOUT, idle.init()).await?;
    // Mail that came after the last search is announced as IDLE starts.
    let mut new_mail = false;
    while let Ok(r) = unsolicited.try_recv() {
        new_mail |= matches!(r, UnsolicitedResponse::Exists(_));
    }
    let mut cancelled = false;
    if !new_mail {
        let (event, _interrupt) = idle.wait_with_timeout(IDLE_RENEW);
        tokio::select! {
            r = event => match r? {
                IdleResponse::NewData(d) => debug!(%mailbox, response = ?d.parsed(), "IDLE woke"),
                IdleResponse::Timeout => debug!(%mailbox, "renewing IDLE"),
                IdleResponse::ManualInterrupt => {}
            },
            () = ctx.cancel.cancelled() => cancelled = true,
        }
    }
    if cancelled {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(5), idle.done()).await {
            close(s).await;
        }
        return Ok(None);
    }
    let s = timed("DONE", COMMAND_TIMEOUT, idle.done()).await?;
    Ok(Some(s))
}

/// Logs out politely, but never waits long for it.
async fn close(mut s: ImapSession) {
    let _ = tokio::time::timeout(Duration::from_secs(5), s.logout()).await;
}

/// Encodes a folder name in IMAP's modified UTF-7 (RFC 3501 §5.1.3), so that
/// folders such as `已处理` work.
pub(crate) fn encode_mailbox_name(name: &str) -> String {
    fn flush(out: &mut String, units: &mut Vec<u16>) {
        if units.is_empty() {
            return;
        }
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
        let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        units.clear();
    }
    let mut out = String::with_capacity(name.len());
    let mut units = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut units);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            units.extend_from_slice(c.encode_utf16(&mut [0; 2]));
        }
    }
    flush(&mut out, &mut units);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_use_modified_utf7() {
        assert_eq!(encode_mailbox_name("INBOX"), "INBOX");
        assert_eq!(
            encode_mailbox_name("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(encode_mailbox_name("A&B"), "A&-B");
        assert_eq!(encode_mailbox_name("已处理"), "&XfJZBHQG-");
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let many: Vec<(u32, u64)> = (1..=45).map(|u| (u, 10)).collect();
        let lens: Vec<usize> = batches(&many).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [20, 20, 5]);
        let big = [(1, BATCH_BYTES), (2, 1), (3, BATCH_BYTES * 2), (4, 1)];
        let lens: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [1, 1, 1, 1]);
    }
}

//! The IMAP source: logs in, reads every message above the last committed
//! UID, hands them to the pipeline (through [`super::run`]), flags or moves
//! them only once the pipeline says they are committed, and then waits for
//! new mail (IDLE where offered, polling otherwise).

use std::collections::BTreeSet;
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
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{BATCH, BATCH_BYTES, MailboxSource, SourceError, tls};
use crate::config::{AfterProcessing, ImapAuth, ImapConfig, MailboxConfig, TlsMode};
use crate::model::{Origin, RawMessage};
use crate::types::{MailboxName, Uid};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous: one command may carry a batch of large messages.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Servers may drop an IDLE after 30 minutes (RFC 2177); renew well before.
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);

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

/// An IMAP folder read as a [`MailboxSource`].
///
/// It reads every message above the last committed UID (the store's cursor,
/// or from UID 1 when the UIDVALIDITY differs: the store recognises
/// messages it already has by their bytes), in batches bounded by count and
/// bytes, and flags or moves committed ones as configured. It waits with
/// IDLE where the server offers it, polling otherwise. A login refused
/// makes it read the password again (the operator may have fixed the file).
pub struct ImapSource {
    cfg: MailboxConfig,
    tls: Option<tokio_rustls::TlsConnector>,
    password: String,
    session: Option<(ImapSession, Caps)>,
    uidvalidity: Option<u32>,
    /// Every UID up to this one is finished.
    cursor: u32,
    /// UIDs above the cursor that are finished (committed or skipped).
    finished: BTreeSet<u32>,
    /// UIDs at or below the cursor still waiting for `after` when the folder
    /// was opened (a stop came between a commit and its flag): offered
    /// again, so they are flagged only once the store confirms it has them.
    unfinished: BTreeSet<u32>,
}

impl std::fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSource")
            .field("mailbox", &self.cfg.name)
            .field("uidvalidity", &self.uidvalidity)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl ImapSource {
    /// `resume` is the folder's UIDVALIDITY and the highest UID committed.
    pub fn new(
        cfg: MailboxConfig,
        password: String,
        resume: Option<(u32, u32)>,
    ) -> Result<Self, SourceError> {
        let imap = imap_config(&cfg)?;
        let tls = connector(&cfg, imap)?;
        Ok(Self {
            cfg,
            tls,
            password,
            session: None,
            uidvalidity: resume.map(|(v, _)| v),
            cursor: resume.map_or(0, |(_, uid)| uid),
            finished: BTreeSet::new(),
            unfinished: BTreeSet::new(),
        })
    }

    fn imap(&self) -> &ImapConfig {
        self.cfg.imap.as_ref().expect("checked in ImapSource::new")
    }

    /// Logs in and selects the folder unless that is done.
    async fn open_session(&mut self) -> Result<&mut (ImapSession, Caps), SourceError> {
        if self.session.is_none() {
            let opened = open(&self.cfg, self.imap(), self.tls.as_ref(), &self.password).await;
            let (mut s, caps) = match opened {
                Err(e @ SourceError::Auth { .. }) => {
                    error!(
                        mailbox = %self.cfg.name, host = %self.imap().host, user = %self.imap().username, error = %e,
                        "IMAP login refused; check the username and password (授权码 for 163/QQ mail) and that IMAP is enabled for the account"
                    );
                    // The operator may have fixed the secret's file or variable meanwhile.
                    match self.imap().password.resolve("imap.password") {
                        Ok(fresh) if fresh != self.password => {
                            info!(mailbox = %self.cfg.name, "the IMAP password changed; using the new one");
                            self.password = fresh;
                            open(&self.cfg, self.imap(), self.tls.as_ref(), &self.password).await?
                        }
                        _ => return Err(e),
                    }
                }
                r => r?,
            };
            let (uidvalidity, exists) = select(&mut s, &self.cfg).await?;
            if self.uidvalidity.is_some_and(|v| v != uidvalidity) {
                warn!(
                    mailbox = %self.cfg.name, old_uidvalidity = ?self.uidvalidity, uidvalidity,
                    "UIDVALIDITY changed; reading the folder again from UID 1"
                );
                self.cursor = 0;
                self.finished.clear();
                self.unfinished.clear();
            }
            self.uidvalidity = Some(uidvalidity);
            if self.cfg.after == AfterProcessing::Move {
                ensure_folder(&mut s, &self.cfg).await?;
            }
            info!(
                mailbox = %self.cfg.name, folder = %self.cfg.folder, uidvalidity, exists,
                last_uid = self.cursor, idle = caps.idle, "IMAP folder selected"
            );
            if self.cursor > 0 {
                self.unfinished = unfinished(&mut s, &self.cfg, self.cursor).await?;
            }
            self.session = Some((s, caps));
        }
        Ok(self.session.as_mut().expect("opened above"))
    }

    /// Marks UIDs finished: not offered again; the next listing moves the
    /// cursor over them.
    fn mark_finished(&mut self, uids: impl IntoIterator<Item = u32>) {
        let cursor = self.cursor;
        for u in uids {
            self.unfinished.remove(&u);
            if u > cursor {
                self.finished.insert(u);
            }
        }
    }
}

#[async_trait::async_trait]
impl MailboxSource for ImapSource {
    fn name(&self) -> &MailboxName {
        &self.cfg.name
    }

    async fn fetch(&mut self, max: usize) -> Result<Vec<RawMessage>, SourceError> {
        let mailbox = self.cfg.name.clone();
        self.open_session().await?;
        let from = self.cursor + 1;
        let (s, _) = self.open_session().await?;
        while s.unsolicited_responses.try_recv().is_ok() {}
        let listed: Vec<Fetch> = timed("UID FETCH sizes", COMMAND_TIMEOUT, async {
            s.uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE)")
                .await?
                .try_collect()
                .await
        })
        .await?;
        // `n:*` also returns the highest message when every UID is below n.
        let mut listed: Vec<(u32, u64)> = listed
            .iter()
            .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
            .filter(|&(uid, _)| uid >= from)
            .collect();
        listed.sort_unstable();
        listed.dedup();
        // The cursor moves over finished UIDs; gaps (expunged mail) are not
        // listed, so they do not hold it back.
        for &(uid, _) in &listed {
            if !self.finished.remove(&uid) {
                break;
            }
            self.cursor = uid;
        }
        let mut pending: Vec<(u32, u64)> = self
            .unfinished
            .iter()
            .map(|&uid| (uid, 0))
            .chain(
                listed
                    .into_iter()
                    .filter(|(uid, _)| *uid > self.cursor && !self.finished.contains(uid)),
            )
            .collect();
        pending.truncate(max);
        let Some(batch) = batches(&pending).into_iter().next() else {
            return Ok(Vec::new());
        };
        let uidvalidity = self.uidvalidity.unwrap_or_default();
        debug!(%mailbox, uidvalidity, from_uid = from, count = batch.len(), "fetching new messages");
        let set = uid_set(batch.iter().map(|(uid, _)| *uid));
        let (s, _) = self.open_session().await?;
        let mut fetched: Vec<Fetch> = timed("UID FETCH", COMMAND_TIMEOUT, async {
            s.uid_fetch(&set, "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])")
                .await?
                .try_collect()
                .await
        })
        .await?;
        fetched.retain(|f| f.uid.is_some_and(|u| batch.iter().any(|(b, _)| *b == u)));
        fetched.sort_by_key(|f| f.uid);
        let mut out = Vec::with_capacity(fetched.len());
        for f in fetched {
            let Some(uid) = f.uid else { continue };
            let Some(body) = f.body() else {
                return Err(SourceError::Imap(async_imap::error::Error::Parse(
                    async_imap::error::ParseError::ExpectedResponseNotFound(format!(
                        "BODY[] of UID {uid}"
                    )),
                )));
            };
            out.push(RawMessage::new(
                body.to_vec(),
                Origin::Imap {
                    mailbox: mailbox.clone(),
                    uidvalidity,
                    uid: Uid(uid),
                },
                f.internal_date().map(|d| d.with_timezone(&Utc)),
            ));
        }
        let gone: Vec<u32> = batch
            .iter()
            .map(|(uid, _)| *uid)
            .filter(|uid| {
                !out.iter()
                    .any(|r| matches!(r.origin, Origin::Imap { uid: Uid(u), .. } if u == *uid))
            })
            .collect();
        // Listed but expunged elsewhere before the fetch: do not ask again.
        self.mark_finished(gone);
        Ok(out)
    }

    async fn finish(&mut self, committed: &[Origin]) -> Result<(), SourceError> {
        let uids: Vec<u32> = committed
            .iter()
            .filter_map(|o| match o {
                Origin::Imap { uid, .. } => Some(uid.0),
                _ => None,
            })
            .collect();
        if uids.is_empty() {
            return Ok(());
        }
        let cfg = self.cfg.clone();
        let (s, caps) = self.open_session().await?;
        apply_after(s, &cfg, caps, &uid_set(uids.iter().copied())).await?;
        debug!(mailbox = %cfg.name, count = uids.len(), after = ?cfg.after, "committed messages finished");
        self.mark_finished(uids);
        Ok(())
    }

    fn skip(&mut self, origin: &Origin) {
        if let Origin::Imap { uid, .. } = origin {
            self.mark_finished([uid.0]);
        }
    }

    async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), SourceError> {
        let Some((s, caps)) = self.session.take() else {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(self.cfg.poll_interval_secs)) => {}
                () = cancel.cancelled() => {}
            }
            return Ok(());
        };
        if let Some(s) = wait(s, &self.cfg, &caps, cancel).await? {
            self.session = Some((s, caps));
        }
        Ok(())
    }

    async fn reset(&mut self) {
        if let Some((s, _)) = self.session.take() {
            close(s).await;
        }
    }
}

/// A UID set for one command: `3,5,7`.
fn uid_set(uids: impl Iterator<Item = u32>) -> String {
    uids.map(|u| u.to_string()).collect::<Vec<_>>().join(",")
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
    let greeting = async {
        client
            .read_response()
            .await
            .map_err(async_imap::error::Error::Io)
    };
    match timed("greeting", CONNECT_TIMEOUT, greeting).await? {
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
async fn ensure_folder(s: &mut ImapSession, cfg: &MailboxConfig) -> Result<(), SourceError> {
    let Some(target) = cfg.move_to.as_deref() else {
        return Err(SourceError::Config {
            mailbox: cfg.name.to_string(),
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
        info!(mailbox = %cfg.name, folder = %target, "created the folder processed mail is moved to");
    }
    Ok(())
}

/// Messages up to `last` still waiting for `after`: unseen ones with
/// `seen`, any left in the folder with `move`.
async fn unfinished(
    s: &mut ImapSession,
    cfg: &MailboxConfig,
    last: u32,
) -> Result<BTreeSet<u32>, SourceError> {
    let query = match cfg.after {
        AfterProcessing::Keep => return Ok(BTreeSet::new()),
        AfterProcessing::Seen => format!("UID 1:{last} UNSEEN"),
        AfterProcessing::Move => format!("UID 1:{last}"),
    };
    let found = timed("UID SEARCH", COMMAND_TIMEOUT, s.uid_search(query)).await?;
    Ok(found.into_iter().filter(|&u| u <= last).collect())
}

/// Splits (uid, size) pairs into fetches of at most [`BATCH`] messages and
/// about [`BATCH_BYTES`] bytes.
fn batches(pending: &[(u32, u64)]) -> Vec<&[(u32, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &(_, size)) in pending.iter().enumerate() {
        if i > start && (i - start == BATCH || bytes + size > BATCH_BYTES) {
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

/// Flags or moves committed messages (a UID set) as configured.
async fn apply_after(
    s: &mut ImapSession,
    cfg: &MailboxConfig,
    caps: &Caps,
    set: &str,
) -> Result<(), SourceError> {
    match cfg.after {
        AfterProcessing::Keep => {}
        AfterProcessing::Seen => store(s, set, "+FLAGS.SILENT (\\Seen)").await?,
        AfterProcessing::Move => {
            let target = encode_mailbox_name(cfg.move_to.as_deref().unwrap_or_default());
            if caps.moves {
                timed("UID MOVE", COMMAND_TIMEOUT, s.uid_mv(set, &target)).await?;
            } else {
                timed("UID COPY", COMMAND_TIMEOUT, s.uid_copy(set, &target)).await?;
                store(s, set, "+FLAGS.SILENT (\\Deleted)").await?;
                if caps.uidplus {
                    timed("UID EXPUNGE", COMMAND_TIMEOUT, async {
                        s.uid_expunge(set).await?.try_collect::<Vec<_>>().await
                    })
                    .await?;
                } else {
                    // A plain EXPUNGE would also remove what others marked \Deleted.
                    warn!(
                        mailbox = %cfg.name, uids = set,
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
    cfg: &MailboxConfig,
    caps: &Caps,
    cancel: &CancellationToken,
) -> Result<Option<ImapSession>, SourceError> {
    let mailbox = &cfg.name;
    if !caps.idle {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(cfg.poll_interval_secs)) => {}
            () = cancel.cancelled() => {
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
            () = cancel.cancelled() => cancelled = true,
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
        let many: Vec<(u32, u64)> = (1..=2 * BATCH as u32 + 5).map(|u| (u, 10)).collect();
        let lens: Vec<usize> = batches(&many).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [BATCH, BATCH, 5]);
        let big = [(1, BATCH_BYTES), (2, 1), (3, BATCH_BYTES * 2), (4, 1)];
        let lens: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(lens, [1, 1, 1, 1]);
    }
}

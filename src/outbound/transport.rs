//! Sending stored bytes: SMTP (implicit TLS, STARTTLS, or plain on loopback)
//! or `.eml` files in a directory for dry runs.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTransport, TlsMode};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("smtp.host is not set")]
    NoHost,
    #[error("smtp.ca_file {}: {message}", path.display())]
    CaFile { path: PathBuf, message: String },
    #[error("smtp TLS setup: {0}")]
    Tls(String),
    #[error("smtp check failed: {0}")]
    Check(String),
}

/// Why a send failed, and what that means for this mail and the next.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused this mail (a recipient, the content): lettre says
    /// whether the reply code is transient (4xx) or permanent (5xx).
    #[error("server answered {code}: {message}")]
    Rejected {
        code: u16,
        transient: bool,
        message: String,
    },
    /// A sender or recipient address is malformed: retrying cannot help.
    #[error("bad address `{address}`: {message}")]
    Address { address: String, message: String },
    /// No answer: connection refused or dropped, timeout.
    #[error("cannot reach the mail server: {0}")]
    Connection(String),
    /// TLS, certificate or login failure: no mail can go until an operator
    /// fixes `[smtp]`; every mail waits meanwhile.
    #[error("the mail server refuses us until the [smtp] config is fixed: {0}")]
    Setup(String),
    /// Writing the .eml file failed.
    #[error("cannot write {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SendError {
    /// Whether this mail may go through later as it is.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rejected { transient, .. } => *transient,
            Self::Address { .. } => false,
            Self::Connection(_) | Self::Setup(_) | Self::File { .. } => true,
        }
    }

    /// Whether the cause is the setup, not this mail: then the mail keeps its
    /// attempts and waits for a fixed config.
    pub fn is_setup(&self) -> bool {
        matches!(self, Self::Setup(_))
    }

    /// The SMTP reply code, when the server gave one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn from_smtp(e: lettre::transport::smtp::Error) -> Self {
        let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
        // 530/534/535/538: authentication; not about this mail.
        if e.is_tls() || is_tls_failure(&e) || matches!(code, Some(530 | 534 | 535 | 538)) {
            return Self::Setup(e.to_string());
        }
        match code {
            Some(code) if e.is_transient() || e.is_permanent() => Self::Rejected {
                code,
                transient: e.is_transient(),
                message: e.to_string(),
            },
            _ if e.is_client() => Self::Address {
                address: String::new(),
                message: e.to_string(),
            },
            _ => Self::Connection(e.to_string()),
        }
    }
}

/// A certificate or handshake failure anywhere in the chain: lettre reports
/// it as a connection error, with the rustls error inside an `io::Error`.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_tls_failure(inner)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// Where outgoing mail goes. The daemon takes one as a parameter, so tests
/// can script a server's answers in-process.
#[async_trait::async_trait]
pub trait MailSender: Send + Sync {
    /// Sends stored bytes as they are.
    async fn send(&self, envelope_from: &str, to: &[String], bytes: &[u8])
    -> Result<(), SendError>;
}

/// Where outgoing mail goes.
pub enum Transport {
    Smtp(Box<Smtp>),
    /// Each mail becomes `<message-id>.eml` in this directory.
    File(PathBuf),
}

/// lettre's pooled SMTP transport, with a limit on each whole send.
///
/// lettre's own timeout covers only the connect: a server that accepts and
/// then goes silent would hold the send (and the outbox) forever. A send
/// past `timeout` is abandoned, and with it the whole pool: the abandoned
/// connection is mid-command, and lettre would park it for reuse, where the
/// next mail would read the late replies as its own.
pub struct Smtp {
    builder: AsyncSmtpTransportBuilder,
    current: std::sync::Mutex<AsyncSmtpTransport<Tokio1Executor>>,
    timeout: Duration,
}

impl Smtp {
    async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), SendError> {
        let transport = self.lock().clone();
        match tokio::time::timeout(self.timeout, transport.send_raw(envelope, bytes)).await {
            Ok(sent) => sent.map(drop).map_err(SendError::from_smtp),
            Err(_) => {
                *self.lock() = self.builder.clone().build();
                // A shut-down pool closes what is returned to it instead of
                // parking it, the abandoned connection included. Closing says
                // QUIT and waits for the silent server's answer, so it runs
                // aside, bounded, and never holds up the next mail.
                let limit = self.timeout;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(limit, transport.shutdown()).await;
                });
                Err(SendError::Connection(format!(
                    "the mail server did not answer within {} s",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AsyncSmtpTransport<Tokio1Executor>> {
        // The guarded value is replaced whole, so a poisoned lock still holds
        // a usable transport.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::File(dir) => write!(f, "Transport::File({})", dir.display()),
        }
    }
}

/// Installs rustls' ring provider as the process default. lettre picks its
/// own, but any other rustls user in the process would panic if both ring
/// and aws-lc-rs got linked and nobody chose (CRATES.md); losing the race to
/// another installer is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Transport {
    /// Builds the transport; `password` is the resolved secret when a
    /// username is set.
    pub fn from_config(smtp: &SmtpConfig, password: Option<&str>) -> Result<Self, TransportError> {
        match smtp.transport {
            SmtpTransport::File => Ok(Self::File(smtp.directory.clone())),
            SmtpTransport::Smtp => {
                install_crypto_provider();
                let host = smtp.host.as_deref().ok_or(TransportError::NoHost)?;
                let mut builder = match smtp.tls {
                    TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                    mode => {
                        let params = tls_parameters(smtp, host)?;
                        let tls = if mode == TlsMode::Implicit {
                            Tls::Wrapper(params)
                        } else {
                            Tls::Required(params)
                        };
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(tls)
                    }
                };
                builder = builder
                    .port(port(smtp))
                    .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
                if let Some(user) = &smtp.username {
                    builder = builder
                        .credentials(Credentials::new(
                            user.clone(),
                            password.unwrap_or_default().to_owned(),
                        ))
                        .authentication(vec![Mechanism::Plain, Mechanism::Login]);
                }
                Ok(Self::Smtp(Box::new(Smtp {
                    current: std::sync::Mutex::new(builder.clone().build()),
                    builder,
                    timeout: Duration::from_secs(smtp.timeout_secs),
                })))
            }
        }
    }
}

#[async_trait::async_trait]
impl MailSender for Transport {
    async fn send(
        &self,
        envelope_from: &str,
        to: &[String],
        bytes: &[u8],
    ) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => smtp.send(&envelope(envelope_from, to)?, bytes).await,
            Self::File(dir) => {
                let dir = dir.clone();
                let bytes = bytes.to_vec();
                tokio::task::spawn_blocking(move || write_eml(&dir, &bytes))
                    .await
                    .map_err(|e| SendError::Connection(format!("file writer stopped: {e}")))?
            }
        }
    }
}

fn port(smtp: &SmtpConfig) -> u16 {
    smtp.port.unwrap_or(match smtp.tls {
        TlsMode::Implicit => 465,
        TlsMode::Starttls => 587,
        TlsMode::None => 25,
    })
}

fn tls_parameters(smtp: &SmtpConfig, host: &str) -> Result<TlsParameters, TransportError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(ca) = &smtp.ca_file {
        let path = ca.clone();
        let pem = std::fs::read(&path).map_err(|e| TransportError::CaFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| TransportError::CaFile {
            path,
            message: e.to_string(),
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| TransportError::Tls(e.to_string()))
}

fn envelope(from: &str, to: &[String]) -> Result<Envelope, SendError> {
    let parse = |a: &str| {
        a.trim().parse::<Address>().map_err(|e| SendError::Address {
            address: a.to_owned(),
            message: e.to_string(),
        })
    };
    let rcpts = to.iter().map(|a| parse(a)).collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(parse(from)?), rcpts).map_err(|e| SendError::Address {
        address: to.join(", "),
        message: e.to_string(),
    })
}

/// Writes `<message-id>.eml` via a temporary file and a rename, so a reader
/// never sees half a message and a resend of the same mail replaces it.
fn write_eml(dir: &Path, bytes: &[u8]) -> Result<(), SendError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SendError::File { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::types::DIR_MODE)
        .create(dir)
        .map_err(io(dir))?;
    let id = mail_parser::MessageParser::new()
        .parse_headers(bytes)
        .and_then(|m| m.message_id().map(str::to_owned))
        .unwrap_or_else(|| crate::types::Sha256::of(bytes).0);
    let name: String = id
        .chars()
        .map(|c| match c {
            '/' | '\\' | '<' | '>' | ':' | '\0' => '_',
            c => c,
        })
        .collect();
    let path = dir.join(format!("{name}.eml"));
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::types::FILE_MODE)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(())
}

/// For `baosong check-config`: connects, says EHLO (upgrading with STARTTLS
/// where configured), logs in when a username is set, and reports what the
/// server offers. The password never appears in the result.
pub async fn check(smtp: &SmtpConfig, password: Option<&str>) -> Result<String, TransportError> {
    if smtp.transport == SmtpTransport::File {
        let dir = smtp.directory.clone();
        return Ok(format!(
            "file transport: mail is written to {}",
            dir.display()
        ));
    }
    install_crypto_provider();
    let host = smtp.host.as_deref().ok_or(TransportError::NoHost)?;
    let port = port(smtp);
    let hello = ClientId::default();
    let fail = |stage: &str, e: lettre::transport::smtp::Error| {
        TransportError::Check(format!("{host}:{port}: {stage}: {e}"))
    };
    let implicit = match smtp.tls {
        TlsMode::Implicit => Some(tls_parameters(smtp, host)?),
        _ => None,
    };
    let timeout = Some(Duration::from_secs(smtp.timeout_secs));
    let mut conn =
        AsyncSmtpConnection::connect_tokio1((host, port), timeout, &hello, implicit, None)
            .await
            .map_err(|e| fail("connect", e))?;
    if smtp.tls == TlsMode::Starttls {
        conn.starttls(tls_parameters(smtp, host)?, &hello)
            .await
            .map_err(|e| fail("STARTTLS", e))?;
    }
    let info = conn.server_info().to_string();
    let mut report = format!(
        "{host}:{port} ({}): {info}",
        if conn.is_encrypted() {
            "encrypted"
        } else {
            "not encrypted"
        }
    );
    if let Some(user) = &smtp.username {
        let creds = Credentials::new(user.clone(), password.unwrap_or_default().to_owned());
        conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
            .await
            .map_err(|e| fail("login", e))?;
        report.push_str(&format!("; logged in as {user}"));
    }
    let _ = conn.quit().await;
    Ok(report)
}

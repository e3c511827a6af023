//! A real SMTP server for tests: `tests/smtp_sink.py` (aiosmtpd) in a child
//! process, optionally with STARTTLS (a throw-away CA made with openssl) and
//! AUTH, able to refuse on demand and to go down and come back.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Offer (and require) STARTTLS with a certificate for 127.0.0.1.
    pub starttls: bool,
    /// Require AUTH with this user and password.
    pub auth: Option<(String, String)>,
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub tls: bool,
    pub login: Option<String>,
    pub bytes: Vec<u8>,
}

pub struct SmtpSink {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// The CA that signed the server certificate (STARTTLS only).
    pub ca_file: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it (rustls rejects a
/// self-signed CA certificate used as the server's own).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=baosong test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-nodes"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

impl SmtpSink {
    pub fn start(opts: SinkOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mbox = dir.path().join("mbox");
        std::fs::create_dir_all(&mbox).unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut args = vec![
            script.display().to_string(),
            mbox.display().to_string(),
            port.to_string(),
        ];
        let mut ca_file = None;
        if opts.starttls {
            let (ca, cert, key) = make_certificates(dir.path());
            args.extend([
                "--tls".into(),
                cert.display().to_string(),
                key.display().to_string(),
            ]);
            ca_file = Some(ca);
        }
        if let Some((user, password)) = &opts.auth {
            args.extend(["--auth".into(), format!("{user}:{password}")]);
        }
        let mut sink = Self {
            child: None,
            port,
            dir,
            args,
            ca_file,
        };
        sink.spawn();
        sink
    }

    fn spawn(&mut self) {
        let mut child = Command::new("python3")
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the sink's first line");
        assert_eq!(
            line.trim(),
            "READY",
            "smtp_sink.py did not start (is aiosmtpd installed? pip install aiosmtpd)"
        );
        self.child = Some(child);
    }

    /// SMTP down: connections are refused until [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SMTP up again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Answer RCPT TO with this reply (e.g. `451 4.3.0 Try again later`) until [`Self::accept`].
    pub fn refuse(&self, reply: &str) {
        std::fs::write(self.mbox().join("refuse"), reply).unwrap();
    }

    pub fn accept(&self) {
        let _ = std::fs::remove_file(self.mbox().join("refuse"));
        let _ = std::fs::remove_file(self.mbox().join("drop"));
        let _ = std::fs::remove_file(self.mbox().join("hang"));
    }

    /// Give no answer to RCPT TO until [`Self::accept`]: a server gone silent.
    pub fn hang(&self) {
        std::fs::write(self.mbox().join("hang"), b"").unwrap();
    }

    /// Cut the connection after the message data, before the reply, until
    /// [`Self::accept`].
    pub fn drop_mid_data(&self) {
        std::fs::write(self.mbox().join("drop"), b"").unwrap();
    }

    fn mbox(&self) -> PathBuf {
        self.dir.path().join("mbox")
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut metas: Vec<PathBuf> = std::fs::read_dir(self.mbox())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        metas.sort();
        metas
            .iter()
            .map(|meta| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
                Received {
                    mail_from: v["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect(),
                    tls: v["tls"].as_bool().unwrap_or(false),
                    login: v["login"].as_str().map(str::to_owned),
                    bytes: strip_data_terminator(
                        std::fs::read(meta.with_extension("eml")).unwrap(),
                    ),
                }
            })
            .collect()
    }

    /// Waits until `n` messages have arrived (the server writes after it answers).
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n || start.elapsed() > Duration::from_secs(10) {
                assert_eq!(got.len(), n, "messages received");
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// lettre always ends DATA with CRLF "." CRLF, so a message that already ends
/// in CRLF arrives with one blank line more than was stored.
fn strip_data_terminator(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\r\n\r\n") {
        bytes.truncate(bytes.len() - 2);
    }
    bytes
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

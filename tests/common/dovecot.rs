//! A private Dovecot for one test: own config, users, certificate and ports on
//! loopback, stopped on drop. Needs root (CI is root) and `dovecot-imapd`.
//!
//! Also a tiny blocking IMAP client ([`Probe`]) so tests can append mail and look
//! at flags without going through the code under test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The mail user every instance has.
pub const USER: &str = "alice";
/// Its password.
pub const PASSWORD: &str = "s3cret-Pa55";

pub struct Dovecot {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
}

impl Dovecot {
    /// Starts a Dovecot on 127.0.0.1. With `tls`, the plain port also offers
    /// STARTTLS and [`Dovecot::tls_port`] answers with implicit TLS, under a
    /// certificate for `localhost` and `127.0.0.1` signed by [`Dovecot::ca_pem`].
    pub fn start(tls: bool) -> Dovecot {
        Self::start_with(tls, None)
    }

    /// Like [`Dovecot::start`], but announcing exactly `capability` after login
    /// (e.g. without IDLE and MOVE, to test the fallbacks).
    pub fn start_with_capability(tls: bool, capability: &str) -> Dovecot {
        Self::start_with(tls, Some(capability))
    }

    fn start_with(tls: bool, capability: Option<&str>) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("baosong-dovecot-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        // Dovecot's unprivileged processes must reach the runtime and mail folders.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(root.join(sub)).unwrap();
            std::fs::set_permissions(root.join(sub), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        run(Command::new("chown")
            .args(["-R", "mail:mail"])
            .arg(root.join("mail")));
        std::fs::write(root.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();

        let port = free_port();
        let tls_port = tls.then(free_port);
        let ssl = if tls {
            make_certificates(root);
            format!(
                "ssl = yes\nssl_cert = <{0}/cert.pem\nssl_key = <{0}/key.pem\n",
                root.display()
            )
        } else {
            "ssl = no\n".to_owned()
        };
        let conf = format!(
            r#"base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
auth_mechanisms = plain login
disable_plaintext_auth = no
mail_location = maildir:{r}/mail/%u
imap_id_log = *
{capability}{ssl}service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={r}/mail/%u
}}
"#,
            r = root.display(),
            tls_port = tls_port.unwrap_or(0),
            capability = capability
                .map(|c| format!("imap_capability = {c}\n"))
                .unwrap_or_default(),
        );
        std::fs::write(root.join("dovecot.conf"), conf).unwrap();
        let d = Dovecot {
            dir,
            port,
            tls_port,
        };
        d.launch();
        d
    }

    fn launch(&self) {
        // The daemon keeps inherited pipes open, so `output()` would never return.
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(self.conf())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run dovecot (is dovecot-imapd installed?)");
        assert!(
            status.success(),
            "dovecot failed to start; log:\n{}",
            self.log()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ports = [Some(self.port), self.tls_port];
            if ports
                .iter()
                .flatten()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Port for plain IMAP, and STARTTLS when started with TLS.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Port for implicit TLS, when started with TLS.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    pub fn user(&self) -> &'static str {
        USER
    }

    pub fn password(&self) -> &'static str {
        PASSWORD
    }

    /// PEM of the CA that signed the server certificate (TLS instances only).
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The instance's temp dir, for tests that want scratch space beside it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// Everything Dovecot logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Dovecot's log once a line of it satisfies `line`, or after 10 s
    /// without: its log process writes a session's lines a moment after the
    /// session, so a test that reads the log at once may miss them.
    pub fn log_when(&self, line: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.lines().any(&line) || Instant::now() > until {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A logged-in blocking IMAP session as [`USER`].
    pub fn probe(&self) -> Probe {
        Probe::login(self.port, USER, PASSWORD)
    }

    /// Appends a message to `folder` (created if missing); returns (UIDVALIDITY, UID).
    pub fn append(&self, user: &str, folder: &str, bytes: &[u8]) -> (u32, u32) {
        assert_eq!(user, USER, "the harness has one user");
        self.probe().append(folder, bytes, None)
    }

    /// Gives `folder` a new UIDVALIDITY (old one + 1000); returns it.
    pub fn reset_uidvalidity(&self, folder: &str) -> u32 {
        let old = self.probe().select(folder).uidvalidity;
        let new = old + 1000;
        run(Command::new("doveadm")
            .arg("-c")
            .arg(self.conf())
            .args(["mailbox", "update", "--uid-validity"])
            .arg(new.to_string())
            .args(["-u", USER, folder]));
        assert_eq!(self.probe().select(folder).uidvalidity, new);
        new
    }

    /// Drops every IMAP connection of `user` (the server says BYE).
    pub fn kick(&self, user: &str) {
        run(Command::new("doveadm")
            .arg("-c")
            .arg(self.conf())
            .args(["kick", user]));
    }

    /// Stops the server and waits until every process is gone.
    pub fn stop(&self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The master removes its pid file once every child is gone.
        let pid = self.dir.path().join("run/master.pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a stopped server again, on the same ports and with the same mail.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate it signs (webpki refuses a self-signed CA
/// certificate used directly as the server's).
fn make_certificates(root: &Path) {
    let ssl = |args: &[&str]| run(Command::new("openssl").current_dir(root).args(args));
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=baosong test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        root.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    ssl(&[
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
        "cert.pem",
    ]);
    // Dovecot reads the key as root before dropping privileges; keep it private.
    std::fs::set_permissions(root.join("key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What SELECT said.
pub struct Selected {
    pub uidvalidity: u32,
    pub exists: u32,
}

/// A minimal blocking IMAP client over plain TCP, for test set-up and checks.
pub struct Probe {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Probe {
    pub fn login(port: u16, user: &str, password: &str) -> Probe {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to dovecot");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut p = Probe {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            tag: 0,
        };
        let greeting = p.line();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        p.ok(&format!("LOGIN \"{user}\" \"{password}\""));
        p
    }

    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf).unwrap();
        assert!(!buf.is_empty(), "dovecot closed the connection");
        // A literal `{n}` continues with n bytes and then the rest of the line.
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        while let Some(n) = literal_len(&text) {
            let mut lit = vec![0; n];
            self.reader.read_exact(&mut lit).unwrap();
            let mut rest = Vec::new();
            self.reader.read_until(b'\n', &mut rest).unwrap();
            text.push_str(&String::from_utf8_lossy(&lit));
            text.push_str(&String::from_utf8_lossy(&rest));
        }
        text
    }

    /// Runs a command; returns its untagged lines and the tagged status line.
    pub fn command(&mut self, cmd: &str) -> (Vec<String>, String) {
        self.tag += 1;
        let tag = format!("p{}", self.tag);
        write!(self.writer, "{tag} {cmd}\r\n").unwrap();
        self.read_until_tagged(&tag)
    }

    fn read_until_tagged(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if let Some(rest) = l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                return (lines, rest.trim_end().to_owned());
            }
            lines.push(l);
        }
    }

    /// Runs a command that must succeed; returns its untagged lines.
    pub fn ok(&mut self, cmd: &str) -> Vec<String> {
        let (lines, status) = self.command(cmd);
        assert!(status.starts_with("OK"), "{cmd}: {status}");
        lines
    }

    /// Appends, creating the folder first if needed; `date` is an IMAP date-time
    /// such as `01-May-2025 10:00:00 +0800`. Returns (UIDVALIDITY, UID).
    pub fn append(&mut self, folder: &str, bytes: &[u8], date: Option<&str>) -> (u32, u32) {
        let _ = self.command(&format!("CREATE \"{folder}\""));
        self.tag += 1;
        let tag = format!("p{}", self.tag);
        let date = date.map(|d| format!(" \"{d}\"")).unwrap_or_default();
        write!(
            self.writer,
            "{tag} APPEND \"{folder}\" (){date} {{{}+}}\r\n",
            bytes.len()
        )
        .unwrap();
        self.writer.write_all(bytes).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
        let (_, status) = self.read_until_tagged(&tag);
        assert!(status.starts_with("OK"), "APPEND: {status}");
        let code = status
            .split("[APPENDUID ")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .expect("APPENDUID");
        let mut it = code.split(' ').map(|n| n.parse::<u32>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    pub fn select(&mut self, folder: &str) -> Selected {
        let lines = self.ok(&format!("SELECT \"{folder}\""));
        let mut s = Selected {
            uidvalidity: 0,
            exists: 0,
        };
        for l in &lines {
            if let Some(v) = l.split("[UIDVALIDITY ").nth(1) {
                s.uidvalidity = v.split(']').next().unwrap().parse().unwrap();
            }
            if let Some(n) = l
                .strip_suffix(" EXISTS\r\n")
                .and_then(|l| l.strip_prefix("* "))
            {
                s.exists = n.parse().unwrap();
            }
        }
        s
    }

    /// UIDs in `folder`, ascending.
    pub fn uids(&mut self, folder: &str) -> Vec<u32> {
        self.select(folder);
        let lines = self.ok("UID SEARCH ALL");
        let mut uids: Vec<u32> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .flat_map(|l| l.split_whitespace().map(|n| n.parse::<u32>().unwrap()))
            .collect();
        uids.sort_unstable();
        uids
    }

    /// The flags of one message, or None when the UID is not in the folder.
    pub fn flags(&mut self, folder: &str, uid: u32) -> Option<Vec<String>> {
        self.select(folder);
        let lines = self.ok(&format!("UID FETCH {uid} (FLAGS)"));
        let line = lines.iter().find(|l| l.contains("FETCH ("))?;
        let inner = line.split("FLAGS (").nth(1)?.split(')').next()?;
        Some(inner.split_whitespace().map(str::to_owned).collect())
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let body = line.strip_suffix("}\r\n")?;
    let open = body.rfind('{')?;
    body[open + 1..].trim_end_matches('+').parse().ok()
}

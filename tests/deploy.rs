//! The files in `deploy/` as systemd reads them: the unit verifies cleanly and
//! is well confined, the sysusers and tmpfiles snippets apply (into a scratch
//! root), and the unit's credentials are the ones the example config names.
//!
//! Needs systemd's tools (`systemd-analyze`, `systemd-sysusers`,
//! `systemd-tmpfiles`); without them each test prints a notice and passes,
//! unless `BAOSONG_REQUIRE_SYSTEMD` is set. Applying the tmpfiles snippet
//! (it chowns) needs root; as another user that part is skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Highest `systemd-analyze security` exposure the unit may have (0 = fully
/// confined, 10 = not at all; systemd calls below 2.0 "OK").
const MAX_EXPOSURE: f64 = 2.5;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Whether `tool` can be run; if not, says so (or fails when systemd is required).
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("BAOSONG_REQUIRE_SYSTEMD").is_none(),
            "BAOSONG_REQUIRE_SYSTEMD is set but {tool} is not installed"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install systemd)");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The unit in a temp dir under its own name, `ExecStart=` running the
/// binary this build made (verify checks that the executable exists).
fn unit_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/baosong.service");
    let mut replaced = 0;
    let text: String = unit
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(cmd) => {
                replaced += 1;
                let args = cmd.split_once(' ').map_or("", |(_, a)| a);
                format!("ExecStart={} {args}\n", env!("CARGO_BIN_EXE_baosong"))
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert_eq!(replaced, 1, "the unit should have one ExecStart=");
    let path = dir.path().join("baosong.service");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Values of `key=` lines in a unit file (comments skipped).
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter(|l| !l.trim_start().starts_with(['#', ';']))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

#[test]
fn systemd_unit_verifies() {
    if !have("systemd-analyze") {
        return;
    }
    let (_dir, unit) = unit_copy();
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Anything said about our unit (unknown key, bad value, missing binary)
    // is a finding, even though verify exits 0 for most of them.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify complained:\n{stderr}"
    );
}

#[test]
fn unit_exposure_is_low() {
    if !have("systemd-analyze") {
        return;
    }
    let (_dir, unit) = unit_copy();
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "→ Overall exposure level for baosong.service: 1.2 OK 🙂"
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"));
    let level: f64 = line
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the level in {line:?}"));
    println!("systemd-analyze security: overall exposure level {level}");
    let open: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✗')).collect();
    assert!(
        level < MAX_EXPOSURE,
        "exposure {level} is not below {MAX_EXPOSURE}; open items:\n{}",
        open.join("\n")
    );
}

#[test]
fn sysusers_and_tmpfiles_snippets_parse() {
    if !have("systemd-sysusers") || !have("systemd-tmpfiles") {
        return;
    }
    let sysusers = repo("deploy/baosong.sysusers");
    let tmpfiles = repo("deploy/baosong.tmpfiles");
    let out = run(Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg(&sysusers));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Creating user 'baosong'") || said.contains("exists"),
        "sysusers does not make the baosong user:\n{said}"
    );
    // This systemd-tmpfiles (252) has no --dry-run: --cat-config at least
    // parses the snippet; applying it into a scratch root (below) checks it.
    run(Command::new("systemd-tmpfiles")
        .arg("--cat-config")
        .arg(&tmpfiles)
        .env("SYSTEMD_PAGER", ""));

    if !is_root() {
        eprintln!("skipped applying the snippets: not root (tmpfiles chowns)");
        return;
    }
    // Both snippets for real, into an empty root: sysusers writes its
    // /etc/passwd, and tmpfiles must resolve that user and make every path.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(&sysusers));
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("baosong:"))
        .unwrap_or_else(|| panic!("no baosong in the scratch passwd:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = entry[2].parse().unwrap();
    let gid: u32 = entry[3].parse().unwrap();
    assert_eq!(entry[5], "/var/lib/baosong", "home");
    let out = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(&tmpfiles));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "systemd-tmpfiles said:\n{stderr}");

    use std::os::unix::fs::MetadataExt;
    let expect = [
        ("etc/baosong", 0o750, 0, gid),
        ("etc/baosong/credentials", 0o700, 0, 0),
        ("var/lib/baosong", 0o750, uid, gid),
        ("var/lib/baosong/archive", 0o750, uid, gid),
        ("var/lib/baosong/outbox", 0o750, uid, gid),
    ];
    for (path, mode, owner, group) in expect {
        let m = std::fs::metadata(root.path().join(path))
            .unwrap_or_else(|e| panic!("tmpfiles did not make /{path}: {e}"));
        assert!(m.is_dir(), "/{path} is not a directory");
        assert_eq!(m.mode() & 0o7777, mode, "/{path} mode {:o}", m.mode());
        assert_eq!((m.uid(), m.gid()), (owner, group), "/{path} owner");
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Every `LoadCredential=` of the unit is a password file the example config
/// tells the reader to use (`{ file = "name" }`), and the other way round.
#[test]
fn unit_credentials_match_the_example_config() {
    let unit = read("deploy/baosong.service");
    let loaded: BTreeSet<&str> = unit_values(&unit, "LoadCredential")
        .into_iter()
        .map(|v| {
            let (name, path) = v.split_once(':').expect("LoadCredential=NAME:PATH");
            assert_eq!(
                path,
                format!("/etc/baosong/credentials/{name}"),
                "credential {name} should come from /etc/baosong/credentials/"
            );
            name
        })
        .collect();
    assert!(!loaded.is_empty(), "the unit loads no credentials");

    let config = read("config.example.toml");
    // Bare names in `file = "…"` (commented or not): those are looked up in
    // $CREDENTIALS_DIRECTORY; a path is not a credential.
    let named: BTreeSet<&str> = config
        .match_indices("file = \"")
        .filter_map(|(i, m)| {
            let rest = &config[i + m.len()..];
            let name = &rest[..rest.find('"')?];
            (!name.contains('/') && !name.contains('.')).then_some(name)
        })
        .collect();
    assert_eq!(
        loaded, named,
        "LoadCredential= names in deploy/baosong.service and the `file = \"…\"` \
         password names in config.example.toml differ"
    );
}

/// `ExecReload=` sends SIGHUP: the daemon must handle it, or a reload would
/// end it (and SIGHUP counts as a clean exit, so Restart=on-failure would
/// leave it stopped).
#[test]
fn unit_reload_is_handled() {
    let unit = read("deploy/baosong.service");
    let reload = unit_values(&unit, "ExecReload");
    if reload.iter().any(|r| r.contains("HUP")) {
        let src = read("src/commands.rs");
        assert!(
            src.contains("SignalKind::hangup()"),
            "the unit reloads with SIGHUP but the daemon does not handle it"
        );
    }
}

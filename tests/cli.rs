//! The command line as a user runs it.

use std::path::Path;
use std::process::Command;

fn baosong() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_baosong"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn ingest_json_prints_one_valid_report_per_mail() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let mails = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml")
        })
        .count();
    let out = baosong()
        .args(["ingest", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), mails);
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["message"]["sha256"].as_str().unwrap().len() == 64);
    }
}

#[test]
fn ingest_of_a_missing_file_says_which() {
    let out = baosong()
        .args(["ingest", "no/such/file.eml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/file.eml"), "{err}");
}

#[test]
fn a_bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[organisations]\nfile = \"orgs.txt\"\n").unwrap();
    let out = baosong()
        .args(["--config"])
        .arg(&p)
        .args(["ingest", "x.eml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("organisations.file"), "{err}");
}

#[test]
fn check_config_reports_each_mailbox_and_the_transport() {
    let out = baosong()
        .args(["--config", "config.example.toml", "check-config"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "config: valid",
        "mailbox kjt: Maildir",
        "mailbox kx: Maildir",
        "smtp: file transport",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
}

#[test]
fn check_config_fails_and_says_why_when_a_mailbox_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = baosong::config::EXAMPLE_TOML
        .replace("examples/demo/kjt", "no/such/maildir")
        .replace(
            "examples/organisations.csv",
            &root
                .join("examples/organisations.csv")
                .display()
                .to_string(),
        )
        .replace(
            "examples/demo/",
            &root.join("examples/demo/").display().to_string(),
        );
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    let out = baosong()
        .arg("--config")
        .arg(&p)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no/such/maildir is not a Maildir"),
        "{stdout}"
    );
}

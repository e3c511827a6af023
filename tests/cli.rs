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

#[test]
fn run_once_from_the_root_directory_reads_paths_against_the_config_folder() {
    // As systemd starts it: working directory `/`, the config elsewhere,
    // every path in it relative to the config's folder.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("examples/organisations.csv"),
        root.join("orgs.csv"),
    )
    .unwrap();
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join("mail/kjt").join(sub)).unwrap();
    }
    std::fs::write(
        root.join("mail/kjt/new/1746000000.M1P1.test"),
        "From: 南京市科技局 <njkjjrcc@nanjing.gov.cn>\r\nTo: kjt@example.cn\r\n\
         Subject: 推荐表\r\nMessage-ID: <rel@test>\r\n\r\n见附件\r\n",
    )
    .unwrap();
    let config = root.join("baosong.toml");
    std::fs::write(
        &config,
        r#"[store]
database = "sqlite://var/baosong.db"
archive = "var/archive"

[[mailbox]]
name = "kjt"
address = "kjt@example.cn"
maildir = "mail/kjt"

[smtp]
transport = "file"
directory = "var/outbox"

[organisations]
file = "orgs.csv"

[[campaign]]
id = "c"
name = "测试"
mailboxes = ["kjt"]
[[campaign.deadline]]
id = "d"
due = 2025-05-06
[[campaign.deadline.require]]
kind = "recommendation_form"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_baosong"))
        .current_dir("/")
        .arg("--config")
        .arg(&config)
        .args(["--now", "2025-05-01T10:00:00+08:00", "run", "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("var/baosong.db").exists());
    assert_eq!(
        std::fs::read_dir(root.join("var/outbox")).unwrap().count(),
        1
    );
    assert_eq!(
        std::fs::read_dir(root.join("mail/kjt/new"))
            .unwrap()
            .count(),
        0
    );
}

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

/// Runs `baosong --config CONFIG --now … ARGS` as the operator `ops-li`.
fn as_operator(config: &Path, args: &[&str]) -> std::process::Output {
    baosong()
        .env("USER", "ops-li")
        .env_remove("SUDO_USER")
        .arg("--config")
        .arg(config)
        .args(["--now", "2025-05-01T10:00:00+08:00"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn coordinator_commands_from_the_command_line_take_effect_are_answered_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/organisations.csv"),
        root.join("orgs.csv"),
    )
    .unwrap();
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join("mail/kjt").join(sub)).unwrap();
    }
    std::fs::write(
        root.join("mail/kjt/new/1746000000.M1P1.test"),
        "From: 王五 <wangwu1987@qq.com>\r\nTo: kjt@example.cn\r\n\
         Subject: 材料\r\nMessage-ID: <m1@qq.com>\r\n\r\n附件见后\r\n",
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
    let ok = |args: &[&str]| {
        let out = as_operator(&config, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let refused = |args: &[&str]| {
        let out = as_operator(&config, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    };
    let outbox = || {
        std::fs::read_dir(root.join("var/outbox"))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    // The stranger's mail is #1, listed for a person, its ack held back.
    ok(&["run", "--once"]);
    assert_eq!(outbox(), 0);
    let digest = ok(&["digest"]);
    assert!(digest.contains("【需处理】1项"), "{digest}");
    assert!(digest.contains("#1（新）"), "{digest}");

    // 指派 by an alias: the unit is named in full, the held ack goes out.
    let said = ok(&["assign", "1", "南京科技局"]);
    assert!(
        said.contains("#1 已指派给南京市科学技术局（nj-kjj）"),
        "{said}"
    );
    ok(&["run", "--once"]);
    assert_eq!(outbox(), 1, "the held ack is sent");
    assert!(ok(&["digest"]).contains("【需处理】无"));

    // A unit that is not in the directory: refused, with the closest names.
    let why = refused(&["remind", "--pause", "南通科协会"]);
    assert!(why.contains("单位名录中没有“南通科协会”"), "{why}");
    assert!(why.contains("南通市科学技术协会（nt-kx）"), "{why}");
    ok(&["remind", "--pause", "南通市科协"]);
    assert_eq!(ok(&["remind"]), "paused: nt-kx\n");
    let why = refused(&["ignore", "99"]);
    assert!(why.contains("没有编号为 #99 的邮件"), "{why}");
    ok(&["remind", "--resume", "nt-kx"]);
    assert_eq!(ok(&["remind"]), "no reminders are paused\n");

    // Each one is in the audit log, newest first: who, how, what was asked
    // and what was done (or why not).
    let log = ok(&["log"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2 * 5, "{log}");
    assert_eq!(
        lines[0], "2025-05-01 10:00  ops-li via cli: 恢复提醒 nt-kx",
        "{log}"
    );
    assert!(
        lines[9].starts_with("    ✔ #1 已指派给南京市科学技术局"),
        "{log}"
    );
    assert!(log.contains("✘ 没有编号为 #99 的邮件"), "{log}");
    assert!(log.contains("✘ 单位名录中没有“南通科协会”"), "{log}");
}

/// A Maildir message with one attachment, base64 in lines as mail clients
/// write it.
fn mail_with_attachment(id: &str, name: &str, data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut body = String::with_capacity(b64.len() + b64.len() / 76 * 2 + 1024);
    for line in b64.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(line).unwrap());
        body.push_str("\r\n");
    }
    format!(
        "From: 南京市科技局 <njkjjrcc@nanjing.gov.cn>\r\nTo: kjt@example.cn\r\n\
         Subject: 推荐表\r\nMessage-ID: <{id}@test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n见附件\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{body}--b--\r\n"
    )
    .into_bytes()
}

#[test]
fn run_reads_files_in_workers_so_a_file_over_their_memory_costs_only_that_file() {
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
    // A scan padded with a 24 MB comment: lopdf holds the whole file, more
    // than the workers' 48 MB of address space allow.
    let mut padded = std::fs::read(repo.join("tests/fixtures/scans/scan_jpeg.pdf")).unwrap();
    padded.splice(10..10, std::iter::repeat_n(b'%', 24 << 20).chain([b'\n']));
    let form = std::fs::read(repo.join("tests/fixtures/forms/tuijian.xlsx")).unwrap();
    let new = root.join("mail/kjt/new");
    std::fs::write(
        new.join("1.M1P1.t"),
        mail_with_attachment("a", "推荐表.xlsx", &form),
    )
    .unwrap();
    std::fs::write(
        new.join("2.M2P1.t"),
        mail_with_attachment("b", "大扫描件.pdf", &padded),
    )
    .unwrap();
    std::fs::write(
        new.join("3.M3P1.t"),
        mail_with_attachment("c", "推荐表2.xlsx", &form),
    )
    .unwrap();
    let config = root.join("baosong.toml");
    std::fs::write(
        &config,
        r#"[store]
database = "sqlite://var/baosong.db"
archive = "var/archive"

[limits]
worker_memory_mb = 48
workers = 1

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
        .arg("--config")
        .arg(&config)
        .args(["--now", "2025-05-01T10:00:00+08:00", "run", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0, "{stderr}");
    let acks: Vec<String> = std::fs::read_dir(root.join("var/outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(acks.len(), 3, "{stderr}");
    let show = Command::new(env!("CARGO_BIN_EXE_baosong"))
        .arg("--config")
        .arg(&config)
        .args(["show", "2"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("大扫描件.pdf：无法读取（内存超限）"),
        "{shown}"
    );
    let first = Command::new(env!("CARGO_BIN_EXE_baosong"))
        .arg("--config")
        .arg(&config)
        .args(["show", "1"])
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&first.stdout);
    assert!(!first.contains("无法读取"), "{first}");
}

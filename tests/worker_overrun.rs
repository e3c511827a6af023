//! A worker that overruns its wall-clock budget is killed and replaced, and
//! the file gets a timeout problem. The overrun is made certain by stopping
//! the worker (SIGSTOP), so this file holds one test: the worker is found as
//! this process's only child.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use baosong::config::{Config, Limits};
use baosong::extract::Extractor;
use baosong::intake::FileEntry;
use baosong::model::ProblemCode;
use baosong::types::Sha256;
use baosong::worker::{GRACE, Pool, PoolOptions};

/// Pids of this process's children, from /proc.
fn children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // "pid (comm) state ppid …": the comm may hold spaces, so split after ')'.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse()
                        .ok()
                })
                == Some(me)
        })
        .collect()
}

fn entry(name: &str) -> FileEntry {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/forms")
            .join(name),
    )
    .expect("fixture");
    FileEntry {
        filename: name.to_owned(),
        path: name.to_owned(),
        declared_type: None,
        media_type: "application/octet-stream".into(),
        sha256: Sha256::of(&data),
        data,
        problems: Vec::new(),
    }
}

#[test]
fn a_worker_past_its_budget_is_killed_and_the_file_timed_out() {
    let forms = Config::example(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("example config")
        .forms;
    let limits = Limits {
        extract_timeout_secs: 1,
        ..Limits::default()
    };
    let pool = Pool::with_options(PoolOptions {
        workers: 1,
        ..PoolOptions::new(env!("CARGO_BIN_EXE_baosong"))
    })
    .expect("pool");
    let [worker] = children()[..] else {
        panic!("expected one worker, found {:?}", children());
    };
    let stopped = Command::new("kill")
        .args(["-STOP", &worker.to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());

    let started = Instant::now();
    let x = pool.extract(&entry("tuijian.xlsx"), &forms, &limits);
    let took = started.elapsed();
    let budget = Duration::from_secs(1) + GRACE;
    assert!(
        took >= budget && took < budget + Duration::from_secs(5),
        "{took:?}"
    );
    let [p] = x.problems.as_slice() else {
        panic!("{:?}", x.problems);
    };
    assert_eq!(p.code, ProblemCode::FileTimeout, "{p:?}");
    assert!(
        p.message.starts_with("tuijian.xlsx：读取超时（超过3秒）"),
        "{p:?}"
    );
    assert!(x.table.is_none());
    assert!(
        !Path::new(&format!("/proc/{worker}")).exists(),
        "the stopped worker was not reaped"
    );

    let next = pool.extract(&entry("tuijian.xlsx"), &forms, &limits);
    assert!(next.table.is_some(), "{:?}", next.problems);
}

//! The extraction pool: files read in worker processes come back as they
//! read in-process, from several threads at once, and a worker that dies
//! costs one file a problem, never the caller.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baosong::commands;
use baosong::config::{Config, FormDef, Limits};
use baosong::extract::{Extraction, Extractor, InProcess};
use baosong::intake::FileEntry;
use baosong::model::ProblemCode;
use baosong::types::Sha256;
use baosong::worker::{Pool, PoolOptions};
use chrono::{DateTime, Utc};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn forms() -> Vec<FormDef> {
    Config::example(root()).expect("example config").forms
}

fn pool(workers: usize, memory_bytes: u64) -> Pool {
    Pool::with_options(PoolOptions {
        workers,
        memory_bytes,
        ..PoolOptions::new(env!("CARGO_BIN_EXE_baosong"))
    })
    .expect("pool")
}

fn entry(name: &str, data: Vec<u8>) -> FileEntry {
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

/// Every file of the form and scan fixtures.
fn fixtures() -> Vec<FileEntry> {
    let mut out = Vec::new();
    for dir in ["tests/fixtures/forms", "tests/fixtures/scans"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "py")))
            .collect();
        paths.sort();
        for p in paths {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push(entry(&name, std::fs::read(&p).expect("read")));
        }
    }
    out
}

#[test]
fn pool_reads_every_fixture_as_in_process_reading_does() {
    let pool = pool(2, baosong::worker::DEFAULT_MEMORY_BYTES);
    let (forms, limits) = (forms(), Limits::default());
    for f in fixtures() {
        let want = InProcess.extract(&f, &forms, &limits);
        let got = pool.extract(&f, &forms, &limits);
        assert_eq!(got, want, "{}", f.filename);
    }
}

#[test]
fn pool_serves_several_threads_at_once() {
    let pool = pool(2, baosong::worker::DEFAULT_MEMORY_BYTES);
    let (forms, limits) = (forms(), Limits::default());
    let files = fixtures();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (pool, forms, limits, files) = (&pool, &forms, &limits, &files);
            s.spawn(move || {
                for f in files.iter().skip(t).step_by(2) {
                    let x = pool.extract(f, forms, limits);
                    assert!(
                        x.problems
                            .iter()
                            .all(|p| p.code != ProblemCode::FileTimeout),
                        "{}: {:?}",
                        f.filename,
                        x.problems
                    );
                }
            });
        }
    });
}

#[test]
fn a_worker_out_of_memory_costs_one_file_and_is_replaced() {
    // 48 MB of address space is too little for the PDF reader on a real scan.
    let pool = pool(1, 48 << 20);
    let (forms, limits) = (forms(), Limits::default());
    let big = std::fs::read(root().join("tests/fixtures/forms/tuijian.xlsx")).unwrap();
    let mut padded = std::fs::read(root().join("tests/fixtures/scans/scan_jpeg.pdf")).unwrap();
    // A comment as large as the limit: lopdf holds the whole file.
    padded.splice(10..10, std::iter::repeat_n(b'%', 64 << 20).chain([b'\n']));
    let started = Instant::now();
    let x = pool.extract(&entry("大扫描件.pdf", padded), &forms, &limits);
    assert!(started.elapsed() < Duration::from_secs(30));
    let p = &x.problems[0];
    assert_eq!(p.code, ProblemCode::FileUnreadable, "{p:?}");
    assert!(
        p.message.starts_with("大扫描件.pdf：无法读取（内存超限）"),
        "{p:?}"
    );
    let next = pool.extract(&entry("tuijian.xlsx", big), &forms, &limits);
    assert!(next.table.is_some(), "{:?}", next.problems);
}

/// (parent pid, nice) of a process, from `/proc/PID/stat`.
fn parent_and_nice(pid: u32) -> Option<(u32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces: the 4th
    // field (the parent) and the 19th (nice).
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest.get(1)?.parse().ok()?, rest.get(16)?.parse().ok()?))
}

#[test]
fn workers_run_below_the_daemons_cpu_priority() {
    let pool = pool(2, 512 << 20);
    let file = std::fs::read(root().join("tests/fixtures/forms/tuijian.xlsx")).unwrap();
    let x = pool.extract(&entry("tuijian.xlsx", file), &forms(), &Limits::default());
    assert!(x.table.is_some(), "{:?}", x.problems);
    let me = std::process::id();
    let (_, own) = parent_and_nice(me).expect("own stat");
    let expected = (own + baosong::extract::BACKGROUND_NICE).min(19);
    let children = || -> Vec<i32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(parent_and_nice)
            .filter(|&(parent, _)| parent == me)
            .map(|(_, nice)| nice)
            .collect()
    };
    // Other tests start workers meanwhile: one just started may not have
    // lowered its priority yet.
    let started = Instant::now();
    let mut workers = children();
    while !workers.iter().all(|&n| n == expected) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        workers = children();
    }
    assert!(!workers.is_empty(), "no worker process found");
    assert!(
        workers.iter().all(|&n| n == expected),
        "{workers:?}, expected {expected}"
    );
    drop(pool);
}

#[test]
fn a_missing_worker_program_is_an_error_at_startup() {
    let err = Pool::with_options(PoolOptions::new("/nonexistent/baosong"))
        .err()
        .expect("no pool");
    assert!(err.to_string().contains("/nonexistent/baosong"), "{err}");
}

/// `ingest` over the mail fixtures, as JSON Lines: the count and the output.
fn ingest(extractor: &dyn Extractor) -> (usize, String) {
    let (config, directory) = commands::load(None).expect("example config");
    let now = DateTime::parse_from_rfc3339("2026-05-01T08:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc);
    let mails = [root().join("tests/fixtures/mail")];
    let mut out = Vec::new();
    let n = commands::ingest(&config, &directory, extractor, &mails, true, now, &mut out)
        .expect("ingest");
    (n, String::from_utf8(out).expect("utf-8"))
}

#[test]
fn ingest_on_the_pool_prints_what_reading_one_mail_after_another_prints() {
    let (n, serial) = ingest(&InProcess);
    assert!(n > 20, "{n} mails");
    let (m, pooled) = ingest(&pool(4, baosong::worker::DEFAULT_MEMORY_BYTES));
    assert_eq!(m, n);
    assert_eq!(pooled, serial);
}

/// Reads in process, eight files at once, each after a pause of up to 20 ms
/// that depends on its bytes: mails finish in another order than read.
struct Staggered;

impl Extractor for Staggered {
    fn extract(&self, file: &FileEntry, forms: &[FormDef], limits: &Limits) -> Extraction {
        let pause = file.sha256.as_str().as_bytes()[0] % 20;
        std::thread::sleep(Duration::from_millis(u64::from(pause)));
        InProcess.extract(file, forms, limits)
    }

    fn parallelism(&self) -> usize {
        8
    }
}

#[test]
fn ingest_prints_the_reports_in_the_order_the_mails_were_read() {
    assert_eq!(ingest(&Staggered), ingest(&InProcess));
}

/// Panics on every file, as a parser bug would in process.
struct Panicky;

impl Extractor for Panicky {
    fn extract(&self, file: &FileEntry, _: &[FormDef], _: &Limits) -> Extraction {
        panic!("a parser bug reading {}", file.filename)
    }

    fn parallelism(&self) -> usize {
        2
    }
}

#[test]
fn a_panic_in_ingest_costs_its_mail_a_problem_and_the_run_goes_on() {
    let (n, serial) = ingest(&InProcess);
    let (m, out) = ingest(&Panicky);
    assert_eq!(m, n);
    let reports: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(reports.len(), n);
    // Only mails with files reach the reader, and most of them do.
    let mut unreadable = 0;
    for (got, want) in out.lines().zip(serial.lines()) {
        if got.contains("message_unreadable") {
            assert!(want.contains("\"documents\":[{"), "{got}");
            unreadable += 1;
        }
    }
    assert!(unreadable > 10, "{unreadable} mails marked");
}

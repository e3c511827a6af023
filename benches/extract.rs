//! Extraction throughput over the form fixtures, per format: files/s and
//! MB/s; then what reading a file in a warm worker process costs over
//! reading it in-process (`worker::Pool` against `extract::InProcess`).
//! `cargo bench --bench extract` (a plain main: no timing assertions).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use baosong::config::{Config, FormDef, Limits};
use baosong::extract::{Extractor, InProcess, extract};
use baosong::intake::FileEntry;
use baosong::types::Sha256;
use baosong::worker::{Pool, PoolOptions};

/// Time spent on each format.
const PER_FORMAT: Duration = Duration::from_secs(2);
/// Time spent on each file and reader in the pool comparison.
const PER_FILE: Duration = Duration::from_secs(1);

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let forms = Config::example(root).expect("example config").forms;
    let limits = Limits::default();
    let mut by_ext: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("tests/fixtures/forms")).expect("fixtures") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(ext) = name.rsplit_once('.').map(|(_, e)| e.to_owned()) else {
            continue;
        };
        if matches!(ext.as_str(), "json" | "py") {
            continue;
        }
        let data = std::fs::read(&path).expect("read");
        by_ext.entry(ext).or_default().push(FileEntry {
            filename: name.clone(),
            path: name,
            declared_type: None,
            media_type: "application/octet-stream".into(),
            sha256: Sha256::of(&data),
            data,
            problems: Vec::new(),
        });
    }
    println!(
        "{:<6} {:>6} {:>10} {:>10} {:>10}",
        "format", "files", "runs", "files/s", "MB/s"
    );
    for (ext, files) in &by_ext {
        let bytes: usize = files.iter().map(|f| f.data.len()).sum();
        let started = Instant::now();
        let mut rounds = 0u64;
        while started.elapsed() < PER_FORMAT {
            for f in files {
                std::hint::black_box(extract(f, &forms, &limits));
            }
            rounds += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let n = rounds as f64 * files.len() as f64;
        println!(
            "{:<6} {:>6} {:>10} {:>10.0} {:>10.1}",
            ext,
            files.len(),
            rounds * files.len() as u64,
            n / secs,
            rounds as f64 * bytes as f64 / secs / 1e6
        );
    }
    let files: Vec<&FileEntry> = by_ext.values().flatten().collect();
    compare_pool(&files, &forms, &limits);
}

/// Mean time of one `extract` call with `reader`, over `PER_FILE`.
fn mean_us(reader: &dyn Extractor, f: &FileEntry, forms: &[FormDef], limits: &Limits) -> f64 {
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < PER_FILE {
        std::hint::black_box(reader.extract(f, forms, limits));
        n += 1;
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Per file, sequentially on one warm worker: the worker's overhead is
/// the IPC (the file and the answer through pipes, JSON both ways).
fn compare_pool(files: &[&FileEntry], forms: &[FormDef], limits: &Limits) {
    let pool = Pool::with_options(PoolOptions {
        workers: 1,
        ..PoolOptions::new(env!("CARGO_BIN_EXE_baosong"))
    })
    .expect("worker pool");
    let empty = FileEntry {
        filename: "empty.txt".into(),
        path: "empty.txt".into(),
        declared_type: None,
        media_type: "text/plain".into(),
        sha256: Sha256::of(b"x"),
        data: b"x".to_vec(),
        problems: Vec::new(),
    };
    println!();
    println!(
        "{:<28} {:>9} {:>13} {:>10} {:>10}",
        "file (1 warm worker)", "KB", "in-process µs", "pool µs", "overhead"
    );
    for f in std::iter::once(&empty).chain(files.iter().copied()) {
        let here = mean_us(&InProcess, f, forms, limits);
        let there = mean_us(&pool, f, forms, limits);
        println!(
            "{:<28} {:>9.1} {:>13.0} {:>10.0} {:>10.0}",
            f.filename,
            f.data.len() as f64 / 1e3,
            here,
            there,
            there - here
        );
    }
}

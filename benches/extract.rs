//! Extraction throughput over the form fixtures, per format: files/s and MB/s.
//! `cargo bench --bench extract` (a plain main: no timing assertions).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use baosong::config::{Config, Limits};
use baosong::extract::extract;
use baosong::intake::FileEntry;
use baosong::types::Sha256;

/// Time spent on each format.
const PER_FORMAT: Duration = Duration::from_secs(2);

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
}

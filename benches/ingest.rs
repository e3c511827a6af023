//! Parse throughput of the whole offline pipeline (intake, extract, classify,
//! match) over the mail corpus. `cargo bench --bench ingest`.

use std::path::Path;
use std::time::Instant;

use baosong::commands;
use baosong::pipeline::{self, Context};
use baosong::source::files;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let paths = files::expand(&[dir]).expect("corpus");
    let raws: Vec<_> = paths
        .iter()
        .flat_map(|p| files::read(p).expect("fixture"))
        .collect();
    let bytes: usize = raws.iter().map(|r| r.bytes.len()).sum();
    let (config, directory) = commands::load(None).expect("example config");
    let ctx = Context {
        config: &config,
        directory: &directory,
        learned: &[],
        extractor: &baosong::extract::InProcess,
        now: chrono::Utc::now(),
    };
    // Warm up once, then time several passes.
    for r in &raws {
        pipeline::analyse(r, &ctx);
    }
    let passes = 5;
    let started = Instant::now();
    for _ in 0..passes {
        for r in &raws {
            std::hint::black_box(pipeline::analyse(r, &ctx));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = (raws.len() * passes) as f64;
    println!(
        "ingest: {} mails ({:.1} MB) x {passes} passes: {:.1} mails/s, {:.1} MB/s, {:.2} ms/mail",
        raws.len(),
        bytes as f64 / 1e6,
        n / secs,
        (bytes * passes) as f64 / 1e6 / secs,
        secs * 1000.0 / n
    );
}

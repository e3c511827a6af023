//! Seal detection over a stress set: misses, false seals and time per page.
//!
//!     python3 bench/seal_stress.py /tmp/baosong-seal-stress
//!     SEAL_STRESS=/tmp/baosong-seal-stress cargo bench --bench seal_stress
//!
//! Each page of the set's `truth.json` is read once (the time is that one
//! detection); pages the detector gets wrong are listed with their score.
//! With `SEAL_STRESS_EVERY=1` every page's verdict and score is printed too,
//! to diff two builds page by page.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use baosong::config::Limits;
use baosong::extract::seal::detect_in_image;

fn main() {
    let dir = PathBuf::from(
        std::env::var("SEAL_STRESS").unwrap_or_else(|_| "/tmp/baosong-seal-stress".to_owned()),
    );
    let truth: BTreeMap<String, bool> = match std::fs::read(dir.join("truth.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).expect("truth.json: a map of file to bool"),
        Err(e) => {
            eprintln!(
                "{}: {e}; make the set first: python3 bench/seal_stress.py {}",
                dir.join("truth.json").display(),
                dir.display()
            );
            std::process::exit(2);
        }
    };
    let limits = Limits::default();
    let every = std::env::var_os("SEAL_STRESS_EVERY").is_some();
    let (mut missed, mut false_seals, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    let mut ms = Vec::new();
    for (name, &sealed) in &truth {
        let data = std::fs::read(dir.join(name)).expect("a page of the set");
        let t = Instant::now();
        let found = detect_in_image(&data, &limits);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if every && let Ok(f) = &found {
            println!(
                "page {name}: sealed {} confidence {:.6} document {:.6} ms {:.2}",
                f.sealed,
                f.confidence,
                f.document_score,
                ms.last().unwrap()
            );
        }
        match found {
            Err(p) => unreadable.push(format!("{name}: {}", p.message)),
            Ok(f) if f.sealed && !sealed => {
                false_seals.push(format!("{name} ({:.2})", f.confidence))
            }
            Ok(f) if !f.sealed && sealed => missed.push(format!("{name} ({:.2})", f.confidence)),
            Ok(_) => {}
        }
    }
    ms.sort_by(f64::total_cmp);
    let sealed = truth.values().filter(|s| **s).count();
    println!(
        "{} pages ({sealed} sealed): {} missed, {} false seals, {} unreadable; \
         ms/page median {:.1}, p90 {:.1}, max {:.1}, total {:.0}",
        truth.len(),
        missed.len(),
        false_seals.len(),
        unreadable.len(),
        ms[ms.len() / 2],
        ms[ms.len() * 9 / 10],
        ms[ms.len() - 1],
        ms.iter().sum::<f64>(),
    );
    for (what, list) in [
        ("missed", &missed),
        ("false seal", &false_seals),
        ("unreadable", &unreadable),
    ] {
        for item in list {
            println!("  {what}: {item}");
        }
    }
}

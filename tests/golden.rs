//! Golden reports: every mail under tests/fixtures/mail/ goes through the whole
//! pipeline and must give exactly the report stored next to it
//! (`<name>.expected.json`). `BAOSONG_BLESS=1 cargo test --test golden`
//! rewrites the expectations after a deliberate change; review the diff.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baosong::commands;
use baosong::pipeline::{self, Context};
use baosong::report::Report;
use baosong::source::files;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    v.sort();
    v
}

fn report_for(path: &Path) -> (serde_json::Value, Duration) {
    let (config, directory) = commands::load(None).unwrap();
    let ctx = Context {
        config: &config,
        directory: &directory,
        learned: &[],
        extractor: &baosong::extract::InProcess,
        now: chrono::Utc::now(),
    };
    let raw = files::read(path).unwrap().remove(0);
    let started = Instant::now();
    let analysis = pipeline::analyse(&raw, &ctx);
    let took = started.elapsed();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let report = Report::new(name, &analysis);
    (serde_json::to_value(&report).unwrap(), took)
}

#[test]
fn every_fixture_gives_its_golden_report() {
    let bless = std::env::var_os("BAOSONG_BLESS").is_some();
    let mut failures = Vec::new();
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 30,
        "the corpus has {} mails",
        fixtures.len()
    );
    for path in fixtures {
        let (got, _) = report_for(&path);
        let expected_path = path.with_extension("expected.json");
        let pretty = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if bless {
            std::fs::write(&expected_path, &pretty).unwrap();
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&expected_path) else {
            failures.push(format!(
                "{}: no expected report (run with BAOSONG_BLESS=1)",
                path.display()
            ));
            continue;
        };
        let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
        if expected != got {
            failures.push(format!(
                "{}: report differs\n--- expected\n{text}\n--- got\n{pretty}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_fixture_panics_or_takes_more_than_a_second() {
    for path in fixtures() {
        let (_, took) = report_for(&path);
        assert!(
            took < Duration::from_secs(1),
            "{} took {took:?}",
            path.display()
        );
    }
}

#[test]
fn every_report_has_every_key_of_the_contract() {
    for path in fixtures() {
        let (r, _) = report_for(&path);
        for key in [
            "source",
            "message",
            "auto_generated",
            "organisation",
            "campaign",
            "deadline",
            "late",
            "documents",
            "problems",
            "ack",
        ] {
            assert!(r.get(key).is_some(), "{}: no `{key}`", path.display());
        }
        for key in [
            "message_id",
            "from",
            "from_name",
            "subject",
            "date",
            "sha256",
        ] {
            assert!(
                r["message"].get(key).is_some(),
                "{}: no message.{key}",
                path.display()
            );
        }
        for key in ["id", "name", "matched_by", "evidence"] {
            assert!(r["organisation"].get(key).is_some());
        }
        for d in r["documents"].as_array().unwrap() {
            for key in [
                "filename",
                "path",
                "media_type",
                "size",
                "sha256",
                "kind",
                "form",
                "sealed",
                "table",
                "problems",
            ] {
                assert!(
                    d.get(key).is_some(),
                    "{}: no documents[].{key}",
                    path.display()
                );
            }
        }
        for key in ["send", "to", "reason"] {
            assert!(r["ack"].get(key).is_some());
        }
    }
}

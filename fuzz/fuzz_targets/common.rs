//! What every target shares: the example forms, limits with a short
//! budget, and panics kept quiet.
//!
//! A panic the readers catch (`extract::extract` runs each reader under
//! `catch_unwind`, and so do the targets) is handled in the daemon too, so
//! it is no finding; libfuzzer-sys's hook would abort on it. A panic that
//! escapes a target still aborts: libfuzzer-sys catches it and aborts.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use baosong::config::{Config, FormDef, Limits};
use baosong::extract::grid::Doc;
use baosong::extract::{Extraction, read_forms};

pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut config = Config::example(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .expect("example config");
        config.limits = limits();
        config
    })
}

pub fn forms() -> &'static [FormDef] {
    &config().forms
}

/// The defaults with a 2-second reading budget: an input that runs for
/// the fuzzer's whole per-input timeout has a loop that ignores it.
pub fn limits() -> Limits {
    Limits {
        extract_timeout_secs: 2,
        ..Limits::default()
    }
}

pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(2)
}

pub fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Runs a reader as the daemon does, then finds the forms in what it read.
pub fn read(reader: impl FnOnce() -> Result<Doc, String>) {
    quiet_panics();
    if let Ok(Ok(doc)) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(reader)) {
        let mut out = Extraction::default();
        read_forms(&mut out, &doc, forms(), "fuzz");
    }
}

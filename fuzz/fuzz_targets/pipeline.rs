//! Raw bytes as a message through every stage (in-process extraction):
//! intake, extract, classify, match, ack decision.
#![no_main]

use std::path::PathBuf;

use baosong::directory::Directory;
use baosong::extract::InProcess;
use baosong::pipeline::{self, Context};
use baosong::model::{Origin, RawMessage};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::quiet_panics();
    static DIRECTORY: std::sync::OnceLock<Directory> = std::sync::OnceLock::new();
    let directory = DIRECTORY.get_or_init(Directory::example);
    let raw = RawMessage {
        bytes: data.to_vec(),
        origin: Origin::File {
            path: PathBuf::from("fuzz.eml"),
            index: None,
        },
        received_at: None,
    };
    let ctx = Context {
        config: common::config(),
        directory,
        learned: &[],
        extractor: &InProcess,
        now: chrono::DateTime::UNIX_EPOCH,
    };
    let _ = pipeline::analyse(&raw, &ctx);
});

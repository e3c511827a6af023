//! Raw bytes as a PDF's text layer; then the forms found in it.
#![no_main]

use baosong::extract::pdf;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read(|| pdf::read(data, common::deadline()));
});

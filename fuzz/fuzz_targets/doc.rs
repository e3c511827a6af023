//! Raw bytes as a Word 97 .doc / WPS .wps; then the forms found in it.
#![no_main]

use baosong::extract::doc;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read(|| doc::read(data, common::deadline()));
});

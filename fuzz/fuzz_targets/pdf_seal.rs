//! Raw bytes as a scanned PDF: page images found, decoded, searched for a seal.
#![no_main]

use baosong::extract::seal;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::quiet_panics();
    let limits = common::limits();
    let _ = std::panic::catch_unwind(|| seal::detect_in_pdf(data, &limits));
});

//! Raw bytes as a .docx (or, without a zip signature, as its
//! word/document.xml); then the forms found in it.
#![no_main]

use baosong::extract::docx;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"PK") {
        common::read(|| docx::read(data, common::deadline()));
    } else {
        let xml = String::from_utf8_lossy(data);
        common::read(|| docx::parse_document(&xml, common::deadline()));
    }
});

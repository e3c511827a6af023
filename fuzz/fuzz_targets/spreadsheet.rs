//! Raw bytes as a workbook: xlsx/xlsb (streamed), xls/et (rewritten, then
//! calamine), ods (own reader); then the forms found in it.
#![no_main]

use baosong::extract::{Format, ReadAs, sheet, sniff};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let kinds: &[ReadAs] = match sniff(data, "") {
        Format::Workbook(ReadAs::Xlsx) => &[ReadAs::Xlsx],
        Format::Workbook(ReadAs::Xlsb) => &[ReadAs::Xlsb],
        Format::Workbook(ReadAs::Ods) => &[ReadAs::Ods],
        // Damaged containers: each reader says what is wrong.
        _ if data.starts_with(b"PK") => &[ReadAs::Xlsx, ReadAs::Xlsb, ReadAs::Ods],
        _ => &[ReadAs::Xls],
    };
    for &kind in kinds {
        common::read(|| sheet::read(data, kind, common::deadline()));
    }
});

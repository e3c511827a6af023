//! Raw bytes as a photo or video: format, size, duration from headers.
#![no_main]

use baosong::extract::media;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::quiet_panics();
    for media_type in ["image/jpeg", "video/mp4"] {
        let _ = std::panic::catch_unwind(|| media::probe(data, media_type));
    }
});

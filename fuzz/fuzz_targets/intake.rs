//! Raw bytes as a mail message: MIME tree, archives, forwarded mail.
#![no_main]

use baosong::intake::{self, OwnIdentity};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::quiet_panics();
    let own = OwnIdentity {
        addresses: vec!["kjt@example.cn".into()],
        message_id_domain: "baosong.example".into(),
    };
    let _ = intake::parse(data, &common::limits(), &own);
});

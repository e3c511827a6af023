//! Raw bytes as a .zip attachment: intake walks into it (nested archives,
//! GBK names, ratio and size limits).
#![no_main]

use base64::Engine;
use baosong::intake::{self, OwnIdentity};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::quiet_panics();
    let body = base64::engine::general_purpose::STANDARD.encode(data);
    let message = format!(
        "From: a@example.cn\r\nTo: kjt@example.cn\r\nSubject: zip\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
         --b\r\nContent-Type: application/zip; name=\"a.zip\"\r\n\
         Content-Disposition: attachment; filename=\"a.zip\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n--b--\r\n"
    );
    let own = OwnIdentity {
        addresses: vec!["kjt@example.cn".into()],
        message_id_domain: "baosong.example".into(),
    };
    let _ = intake::parse(message.as_bytes(), &common::limits(), &own);
});

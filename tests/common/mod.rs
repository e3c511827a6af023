//! Helpers shared by the integration tests; each test binary uses a different
//! part of them.
#![allow(dead_code)]

pub mod dovecot;

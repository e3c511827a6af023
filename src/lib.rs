//! baosong (报送): collects the forms units email in answer to an official notice.
//!
//! Pipeline stages, one module each:
//! - [`source`]: where raw messages come from (files, Maildir, IMAP).
//! - [`intake`]: MIME tree, archives and forwarded mail → decoded headers and files.
//! - [`extract`]: tables out of Excel/WPS/Word/PDF, red seals on scans, media facts.
//! - [`classify`]: which document and which form (electronic / scan / media) a file is.
//! - [`matching`]: which organisation sent it, for which campaign and deadline, late or not.
//! - [`pipeline`]: the stages above run over one raw message, without I/O.
//! - [`report`]: the JSON report of `baosong ingest`.
//! - [`schedule`]: when reminders and digests are due.
//! - [`status`]: what each unit has sent against what a deadline requires.
//! - [`outbound`]: acks, reminders and the digest: templates, composition, SMTP/file transport.
//! - [`export`]: the consolidated .xlsx attached to the digest.
//! - [`daemon`]: sources → pipeline → store, outbox worker, scheduler, systemd notify.
//! - [`store`]: the raw archive and the SQL database (SQLite or PostgreSQL), outbox included.
//! - [`worker`]: the extraction pool: files are read in contained child processes.
//!
//! Around them: [`config`] (TOML), [`directory`] (organisations), [`types`]
//! (domain types), [`clock`] (the one clock).
#![forbid(unsafe_code)]

pub mod classify;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod export;
pub mod extract;
pub mod fold;
pub mod intake;
pub mod matching;
pub mod model;
pub mod outbound;
pub mod pipeline;
pub mod report;
pub mod schedule;
pub mod source;
pub mod status;
pub mod store;
pub mod types;
pub mod worker;

//! baosong (报送): collects the forms units email in answer to an official notice.
//!
//! Layers, each importing only from those below it:
//! - 0 [`types`] (ids, kinds, mail addresses), [`model`] (the analysis of a
//!   message, tables, problems), [`fold`] (text folding), [`clock`] (the
//!   clock and task heartbeats).
//! - 1 [`config`] (TOML parsed once into typed values), [`directory`] (units).
//! - 2 pure stages: [`intake`] (MIME, archives, charsets), [`extract`]
//!   (tables, seals, media), [`classify`], [`matching`] (unit, campaign,
//!   deadline), [`trust`] (who may be answered automatically), [`status`]
//!   (what each unit has sent against what is required), [`schedule`],
//!   [`mailcmd`] (the commands in a coordinator's reply, and whether it
//!   may be obeyed).
//! - 3 pure assembly: [`pipeline`] (one message through the stages),
//!   [`report`] (`ingest --json`), [`outbound`] (what each mail says,
//!   templates, composition), [`export`] (the consolidated .xlsx).
//! - 4 the I/O edge behind traits: [`source`] (`MailboxSource`: IMAP,
//!   Maildir; files for `ingest`), [`store`] (SQL and the raw archive),
//!   [`outbound::transport`] (`MailSender`: SMTP, .eml files), [`worker`]
//!   (files read in contained `extract-worker` child processes).
//! - 5 [`actions`] (what baosong does: record a message with its ack,
//!   remind, digest, assign, ignore, export), [`replies`] (coordinators'
//!   command replies obeyed, answered and logged) and [`daemon`] (tasks only).
//! - 6 [`commands`]: the CLI verbs `main.rs` dispatches to.
#![forbid(unsafe_code)]

pub mod actions;
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
pub mod leases;
pub mod mailcmd;
pub mod matching;
pub mod model;
pub mod outbound;
pub mod pipeline;
pub mod replies;
pub mod report;
pub mod schedule;
pub mod source;
pub mod status;
pub mod store;
pub mod trust;
pub mod types;
pub mod worker;

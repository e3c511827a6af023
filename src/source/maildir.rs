//! The Maildir source: a local Maildir polled for messages without the `S`
//! (seen) flag. Same contract as the IMAP source: a message is marked or moved
//! only after the pipeline committed it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::imap::encode_mailbox_name;
use super::{Backoff, Delivery, Disposition, Origin, RawMessage, SourceError, deliver};
use crate::config::{AfterProcessing, MailboxConfig};

/// Polls `cfg.maildir` every `poll_interval_secs` until `cancel` fires.
///
/// Messages in `new/`, and those in `cur/` without the `S` flag, are delivered
/// oldest first. After `Committed`, `after` applies: `seen` moves the file to
/// `cur/` with the `S` flag, `move` moves it into the `.<move_to>` sub-Maildir,
/// `keep` leaves it (and it is not offered again while this run lasts).
/// Returns `Ok` when cancelled; `Err` for a configuration error or when the
/// receiver of `tx` is gone. Other errors are logged and retried with backoff.
pub async fn run(
    cfg: MailboxConfig,
    tx: mpsc::Sender<Delivery>,
    cancel: CancellationToken,
    once: bool,
) -> Result<(), SourceError> {
    let Some(root) = cfg.maildir.clone() else {
        return Err(SourceError::Config {
            mailbox: cfg.name.to_string(),
            message: "no `maildir` path".into(),
        });
    };
    let mut kept = HashSet::new();
    let mut backoff = Backoff::new();
    loop {
        let delay = match poll(&cfg, &root, &tx, &cancel, &mut kept).await {
            Ok(()) => {
                backoff.reset();
                Duration::from_secs(cfg.poll_interval_secs)
            }
            Err(e @ (SourceError::Config { .. } | SourceError::ConsumerGone)) => return Err(e),
            Err(e) if once => return Err(e),
            Err(e) => {
                let delay = backoff.delay(&e);
                warn!(
                    mailbox = %cfg.name, maildir = %root.display(), error = %e,
                    retry_in_secs = delay.as_secs(), "reading the Maildir failed; retrying"
                );
                delay
            }
        };
        if cancel.is_cancelled() || once {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Ok(()),
        }
    }
}

/// A message file waiting to be read.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    /// The unique name, without `:2,` and the flags.
    key: String,
    flags: String,
    received_at: DateTime<Utc>,
}

/// One pass over `new/` and `cur/`.
async fn poll(
    cfg: &MailboxConfig,
    root: &Path,
    tx: &mpsc::Sender<Delivery>,
    cancel: &CancellationToken,
    kept: &mut HashSet<String>,
) -> Result<(), SourceError> {
    let mut entries = unseen(root)?;
    entries.retain(|e| !kept.contains(&e.key));
    entries.sort_by(|a, b| (a.received_at, &a.key).cmp(&(b.received_at, &b.key)));
    for e in entries {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let bytes = match tokio::fs::read(&e.path).await {
            Ok(b) => b,
            // Another mail client moved it meanwhile.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err.into()),
        };
        let raw = RawMessage {
            bytes,
            origin: Origin::Maildir {
                mailbox: cfg.name.clone(),
                key: e.key.clone(),
            },
            received_at: Some(e.received_at),
        };
        debug!(mailbox = %cfg.name, key = %e.key, "delivering message");
        match deliver(tx, raw, cancel).await? {
            None => return Ok(()),
            Some(Disposition::Committed) => {
                apply_after(cfg, root, &e)?;
                if cfg.after == AfterProcessing::Keep {
                    kept.insert(e.key.clone());
                }
                info!(mailbox = %cfg.name, key = %e.key, after = ?cfg.after, "message committed");
            }
            Some(Disposition::Failed(reason)) => {
                warn!(mailbox = %cfg.name, key = %e.key, reason = %reason, "message not stored; will retry");
                return Err(SourceError::Consumer(reason));
            }
        }
    }
    Ok(())
}

/// Messages in `new/`, and in `cur/` without `S`; dot files are not messages.
fn unseen(root: &Path) -> Result<Vec<Entry>, SourceError> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for dirent in std::fs::read_dir(root.join(sub))? {
            let dirent = dirent?;
            let Some(name) = dirent.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let (key, flags) = match name.split_once(":2,") {
                Some((k, f)) => (k.to_owned(), f.to_owned()),
                None => (name.clone(), String::new()),
            };
            if sub == "cur" && flags.contains('S') {
                continue;
            }
            let meta = match dirent.metadata() {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let received_at = delivery_time(&key).unwrap_or(meta.modified()?.into());
            out.push(Entry {
                path: dirent.path(),
                key,
                flags,
                received_at,
            });
        }
    }
    Ok(out)
}

/// The delivery time a Maildir name starts with (`1746000000.M1P2.host`).
/// It survives copying and backups, which the file's mtime does not.
fn delivery_time(key: &str) -> Option<DateTime<Utc>> {
    let secs: i64 = key.split('.').next()?.parse().ok()?;
    // Before 2000 or far ahead: not a delivery time.
    (946_684_800..4_102_444_800)
        .contains(&secs)
        .then(|| DateTime::from_timestamp(secs, 0))
        .flatten()
}

fn apply_after(cfg: &MailboxConfig, root: &Path, e: &Entry) -> Result<(), SourceError> {
    match cfg.after {
        AfterProcessing::Keep => Ok(()),
        AfterProcessing::Seen => {
            let mut flags: Vec<char> = e.flags.chars().chain(['S']).collect();
            // Maildir wants the flags in ASCII order.
            flags.sort_unstable();
            flags.dedup();
            let flags: String = flags.into_iter().collect();
            rename(
                &e.path,
                &root.join("cur").join(format!("{}:2,{flags}", e.key)),
            )
        }
        AfterProcessing::Move => {
            let folder = cfg.move_to.as_deref().unwrap_or_default();
            // Maildir++: `.Folder`, hierarchy with dots, names in modified UTF-7.
            let target = root.join(format!(
                ".{}",
                encode_mailbox_name(folder).replace('/', ".")
            ));
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(target.join(sub))?;
            }
            let marker = target.join("maildirfolder");
            if !marker.exists() {
                std::fs::write(marker, b"")?;
            }
            rename(
                &e.path,
                &target.join("cur").join(format!("{}:2,{}", e.key, e.flags)),
            )
        }
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), SourceError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        // Moved by another client after we read it: nothing left to mark.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

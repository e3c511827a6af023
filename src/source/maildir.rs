//! The Maildir source: a local Maildir polled for messages without the `S`
//! (seen) flag. Same contract as the IMAP source: a message is marked or moved
//! only after the pipeline committed it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::imap::encode_mailbox_name;
use super::{BATCH_BYTES, MailboxSource, SourceError};
use crate::config::{AfterProcessing, MailboxConfig};
use crate::model::{Origin, RawMessage};
use crate::types::MailboxName;

/// Messages in `new/`, and those in `cur/` without the `S` flag, oldest
/// first. After a commit, `after` applies: `seen` moves the file to `cur/`
/// with the `S` flag, `move` moves it into the `.<move_to>` sub-Maildir,
/// `keep` leaves it (and it is not offered again while this source lives).
#[derive(Debug)]
pub struct MaildirSource {
    cfg: MailboxConfig,
    root: PathBuf,
    /// Kept (`after = "keep"`) or skipped: not offered again.
    passed: HashSet<String>,
    /// Read by the last fetch, by key, until finished.
    pending: Vec<Entry>,
}

impl MaildirSource {
    pub fn new(cfg: MailboxConfig) -> Result<Self, SourceError> {
        let Some(root) = cfg.maildir.clone() else {
            return Err(SourceError::Config {
                mailbox: cfg.name.to_string(),
                message: "no `maildir` path".into(),
            });
        };
        Ok(Self {
            cfg,
            root,
            passed: HashSet::new(),
            pending: Vec::new(),
        })
    }
}

#[async_trait::async_trait]
impl MailboxSource for MaildirSource {
    fn name(&self) -> &MailboxName {
        &self.cfg.name
    }

    async fn fetch(&mut self, max: usize) -> Result<Vec<RawMessage>, SourceError> {
        let mut entries = unseen(&self.root)?;
        entries.retain(|e| !self.passed.contains(&e.key));
        entries.sort_by(|a, b| (a.received_at, &a.key).cmp(&(b.received_at, &b.key)));
        entries.truncate(max);
        let mut out = Vec::with_capacity(entries.len());
        self.pending.clear();
        let mut held = 0;
        for e in entries {
            // The size first: a batch holds about BATCH_BYTES, however many
            // large files wait.
            let size = match tokio::fs::metadata(&e.path).await {
                Ok(m) => m.len(),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(SourceError::io(&e.path)(err)),
            };
            if !out.is_empty() && held + size > BATCH_BYTES {
                break;
            }
            held += size;
            let bytes = match tokio::fs::read(&e.path).await {
                Ok(b) => b,
                // Another mail client moved it meanwhile.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(SourceError::io(&e.path)(err)),
            };
            out.push(RawMessage::new(
                bytes,
                Origin::Maildir {
                    mailbox: self.cfg.name.clone(),
                    key: e.key.clone(),
                },
                Some(e.received_at),
            ));
            self.pending.push(e);
        }
        Ok(out)
    }

    async fn finish(&mut self, committed: &[Origin]) -> Result<(), SourceError> {
        for origin in committed {
            let Origin::Maildir { key, .. } = origin else {
                continue;
            };
            let Some(e) = self.pending.iter().find(|e| &e.key == key) else {
                continue;
            };
            apply_after(&self.cfg, &self.root, e)?;
            if self.cfg.after == AfterProcessing::Keep {
                self.passed.insert(key.clone());
            }
        }
        Ok(())
    }

    fn skip(&mut self, origin: &Origin) {
        if let Origin::Maildir { key, .. } = origin {
            self.passed.insert(key.clone());
        }
    }

    async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), SourceError> {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(self.cfg.poll_interval_secs)) => {}
            () = cancel.cancelled() => {}
        }
        Ok(())
    }

    async fn reset(&mut self) {
        self.pending.clear();
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

/// Messages in `new/`, and in `cur/` without `S`; dot files are not messages.
fn unseen(root: &Path) -> Result<Vec<Entry>, SourceError> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let dir = root.join(sub);
        for dirent in std::fs::read_dir(&dir).map_err(SourceError::io(&dir))? {
            let dirent = dirent.map_err(SourceError::io(&dir))?;
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
            // The type comes with the directory listing, and the delivery
            // time with the name: a file is stat'ed only when its name has
            // none, not once for every fetch while it waits in a backlog.
            match dirent.file_type() {
                Ok(t) if t.is_file() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SourceError::io(&dirent.path())(e)),
            }
            let received_at = match delivery_time(&key) {
                Some(t) => t,
                None => match dirent.metadata() {
                    Ok(m) => m
                        .modified()
                        .map_err(SourceError::io(&dirent.path()))?
                        .into(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(SourceError::io(&dirent.path())(e)),
                },
            };
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
                let dir = target.join(sub);
                std::fs::create_dir_all(&dir).map_err(SourceError::io(&dir))?;
            }
            let marker = target.join("maildirfolder");
            if !marker.exists() {
                std::fs::write(&marker, b"").map_err(SourceError::io(&marker))?;
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
        Err(e) => Err(SourceError::io(from)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_mail_is_dated_by_its_name_else_by_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("new/1746000000.M1P2.host"), "a").unwrap();
        std::fs::write(root.join("new/no-time-in-name"), "b").unwrap();
        std::fs::write(root.join("new/.hidden"), "c").unwrap();
        std::fs::create_dir(root.join("new/1746000001.M1P2.dir")).unwrap();
        std::fs::write(root.join("cur/1746000002.M1P2.host:2,S"), "seen").unwrap();
        std::fs::write(root.join("cur/1746000003.M1P2.host:2,F"), "flagged").unwrap();

        let mut found = unseen(root).unwrap();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<&str> = found.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "1746000000.M1P2.host",
                "1746000003.M1P2.host",
                "no-time-in-name"
            ]
        );
        assert_eq!(found[0].received_at.timestamp(), 1_746_000_000);
        let mtime: DateTime<Utc> = std::fs::metadata(root.join("new/no-time-in-name"))
            .unwrap()
            .modified()
            .unwrap()
            .into();
        assert_eq!(found[2].received_at, mtime);
        assert_eq!(found[1].flags, "F");
    }
}

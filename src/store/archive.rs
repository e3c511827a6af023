//! The raw archive: every message's bytes, content-addressed by SHA-256
//! (`ab/<sha256>.eml`), durable before any mail server or sender is told
//! the message is kept.
//!
//! One level of 256 folders, as git keeps its objects: a second level
//! (`ab/cd/`, the layout before 2026-11) made a new folder for nearly every
//! message of a store under 65,536 messages, and each new folder cost an
//! inode, a block and two more fsyncs. Messages stored in that layout are
//! still read from it.
//!
//! A [`Durability::Deferred`] put writes and renames without an fsync; the
//! daemon puts a group of them on disk with one `syncfs` ([`Archive::sync`])
//! before it flags them. The row may reach the disk before the file does
//! (a checkpoint, the kernel's writeback), so a power cut can leave a row
//! whose file is empty or short. Such a message was not flagged, so its
//! source offers it again, and a put of bytes whose file does not hold them
//! writes the file again.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::warn;

use super::{Durability, StoreError};
use crate::model::RawMessage;
use crate::types::Sha256;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

use crate::types::{DIR_MODE, FILE_MODE};

/// The archive directory.
#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
    /// A deferred put happened since the last [`Archive::sync`].
    unsynced: Arc<AtomicBool>,
}

impl Archive {
    /// The directory need not exist yet: [`Archive::put`] creates what it needs.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            unsynced: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a message with this hash lives, relative to the root; this is
    /// what the `messages.archive_path` column holds.
    pub fn relative_path(sha: &Sha256) -> PathBuf {
        let s = sha.as_str();
        [s.get(0..2).unwrap_or("__"), &format!("{s}.eml")]
            .iter()
            .collect()
    }

    /// Where the two-level layout kept it.
    fn legacy_path(&self, sha: &Sha256) -> PathBuf {
        let s = sha.as_str();
        let (a, b) = (s.get(0..2).unwrap_or("__"), s.get(2..4).unwrap_or("__"));
        self.root.join(a).join(b).join(format!("{s}.eml"))
    }

    pub fn path_of(&self, sha: &Sha256) -> PathBuf {
        self.root.join(Self::relative_path(sha))
    }

    /// Stores a message's bytes and returns their hash: on disk when it
    /// returns ([`Durability::Synced`]) or after the next [`Archive::sync`].
    /// Idempotent: a file that already holds these bytes is left alone.
    /// The hash is computed here, off the runtime, and kept with the message.
    pub async fn put(
        &self,
        raw: &RawMessage,
        durability: Durability,
    ) -> Result<Sha256, StoreError> {
        let (this, raw) = (self.clone(), raw.clone());
        self.blocking(move || this.put_blocking(&raw.bytes, raw.sha256().clone(), durability))
            .await
    }

    /// Runs file work off the runtime; a panic in it is an I/O error.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Io {
                path: self.root.clone(),
                source: std::io::Error::other(e),
            })?
    }

    fn put_blocking(
        &self,
        bytes: &[u8],
        sha: Sha256,
        durability: Durability,
    ) -> Result<Sha256, StoreError> {
        let path = self.path_of(&sha);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        let synced = durability == Durability::Synced;

        match holds(&path, bytes) {
            // An earlier put may have stopped after its rename but before its
            // syncs, or been deferred: sync again, so "exists" always means
            // "durable" once this put is.
            Ok(true) => {
                if synced {
                    File::open(&path)
                        .and_then(|f| f.sync_all())
                        .map_err(io(&path))?;
                    sync_dir(&dir)?;
                } else {
                    self.unsynced.store(true, Ordering::SeqCst);
                }
                return Ok(sha);
            }
            // Only complete files are renamed into place, so this is a
            // deferred write a power cut cut short (or someone else's
            // file): the name says what it must hold.
            Ok(false) => warn!(
                path = %path.display(),
                "archive file does not hold the bytes its name says; writing it again"
            ),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }

        create_dir_all_synced(&dir)?;
        // Unique per writer, so two writers of the same message never share a temp file.
        let tmp = dir.join(format!(
            ".{sha}.{}.{}.tmp",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .open(&tmp)
                .map_err(io(&tmp))?;
            file.write_all(bytes).map_err(io(&tmp))?;
            if synced {
                file.sync_all().map_err(io(&tmp))?;
            }
            fs::rename(&tmp, &path).map_err(io(&path))?;
            if synced {
                sync_dir(&dir)
            } else {
                self.unsynced.store(true, Ordering::SeqCst);
                Ok(())
            }
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| sha)
    }

    /// Puts every deferred put made before this call on disk: one `syncfs`
    /// of the archive's filesystem instead of two fsyncs per message (the
    /// file, its folder). It also writes back whatever else is pending on
    /// that filesystem, which the database's sync would mostly do anyway.
    pub async fn sync(&self) -> Result<(), StoreError> {
        if !self.unsynced.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let root = self.root.clone();
        let synced = self
            .blocking(move || {
                File::open(&root)
                    .and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from))
                    .map_err(|source| StoreError::Io { path: root, source })
            })
            .await;
        if synced.is_err() {
            self.unsynced.store(true, Ordering::SeqCst);
        }
        synced
    }

    /// The bytes of an archived message, checked against their hash.
    pub async fn read(&self, sha: &Sha256) -> Result<Vec<u8>, StoreError> {
        let (path, legacy) = (self.path_of(sha), self.legacy_path(sha));
        let sha = sha.clone();
        self.blocking(move || {
            let mut bytes = Vec::new();
            let path = if path.exists() || !legacy.exists() {
                path
            } else {
                legacy
            };
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
            if Sha256::of(&bytes) != sha {
                return Err(StoreError::Corrupt(format!(
                    "archived file {} does not hash to its name",
                    path.display()
                )));
            }
            Ok(bytes)
        })
        .await
    }
}

/// Whether the file at `path` holds exactly `bytes`: its size first, so a
/// file cut short is not read, then chunk by chunk, so a big mail's file is
/// not held a second time.
fn holds(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() != bytes.len() as u64 {
        return Ok(false);
    }
    let mut chunk = vec![0; 64 << 10];
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rest.len().min(chunk.len());
        match file.read_exact(&mut chunk[..n]) {
            // Cut short since its size was read.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(false),
            r => r?,
        }
        if chunk[..n] != rest[..n] {
            return Ok(false);
        }
        rest = &rest[n..];
    }
    Ok(true)
}

/// Creates `dir` and its missing parents, syncing each parent after an entry
/// was added to it, so a new directory survives a power cut.
fn create_dir_all_synced(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_synced(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        // Another writer created it meanwhile.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

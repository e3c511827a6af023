//! The raw archive: every message's bytes, content-addressed by SHA-256
//! (`ab/<sha256>.eml`), durable before any database row refers to them.
//!
//! One level of 256 folders, as git keeps its objects: a second level
//! (`ab/cd/`, the layout before 2026-11) made a new folder for nearly every
//! message of a store under 65,536 messages, and each new folder cost an
//! inode, a block and two more fsyncs. Messages stored in that layout are
//! still read from it.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;
use crate::types::Sha256;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

use crate::types::{DIR_MODE, FILE_MODE};

/// The archive directory.
#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
}

impl Archive {
    /// The directory need not exist yet: [`Archive::put`] creates what it needs.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
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

    /// Stores `bytes` durably and returns their hash. Idempotent: when the file
    /// already exists with the right size it is left alone.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<Sha256, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.put_blocking(&bytes))
            .await
            .map_err(|e| StoreError::Io {
                path: self.root.clone(),
                source: std::io::Error::other(e),
            })?
    }

    /// The blocking body of [`Archive::put`], for callers outside a runtime.
    pub fn put_blocking(&self, bytes: &[u8]) -> Result<Sha256, StoreError> {
        let sha = Sha256::of(bytes);
        let path = self.path_of(&sha);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };

        match fs::metadata(&path) {
            // An earlier put may have failed after its rename but before its
            // syncs: sync again, so "exists" always means "durable".
            Ok(meta) if meta.len() == bytes.len() as u64 => {
                File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(io(&path))?;
                sync_dir(&dir)?;
                return Ok(sha);
            }
            // A torn file from a crash before our rename cannot exist (we rename
            // only complete files), so a wrong size means someone else wrote it.
            Ok(meta) => {
                return Err(StoreError::ArchiveMismatch {
                    path,
                    expected: bytes.len() as u64,
                    found: meta.len(),
                });
            }
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
            file.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, &path).map_err(io(&path))?;
            sync_dir(&dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| sha)
    }

    /// The bytes of an archived message, checked against their hash.
    pub async fn read(&self, sha: &Sha256) -> Result<Vec<u8>, StoreError> {
        let (path, legacy) = (self.path_of(sha), self.legacy_path(sha));
        let sha = sha.clone();
        tokio::task::spawn_blocking(move || {
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
        .map_err(|e| StoreError::Io {
            path: self.root.clone(),
            source: std::io::Error::other(e),
        })?
    }
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

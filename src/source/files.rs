//! Messages from files: single .eml files, mbox files and Maildir folders.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::model::{Origin, RawMessage};

#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl FileSourceError {
    /// A file that cannot be read now may be readable later (a busy disk, a
    /// permission fixed); the caller decides.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::Interrupted)
    }
}

/// Expands command-line paths into message files: a Maildir (a folder with
/// `cur`/`new`) gives its messages, another folder its `.eml` and `.mbox`
/// files, recursively, in name order. A file named on the command line is
/// always read.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FileSourceError> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, &mut out)?;
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), FileSourceError> {
    let io_err = |source| FileSourceError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_err)?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let is_maildir = path.join("cur").is_dir() || path.join("new").is_dir();
    let subdirs: Vec<PathBuf> = if is_maildir {
        vec![path.join("new"), path.join("cur")]
    } else {
        vec![path.to_owned()]
    };
    for dir in subdirs {
        if !dir.is_dir() {
            continue;
        }
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                if !is_maildir && !matches!(e.file_name().and_then(|n| n.to_str()), Some("tmp")) {
                    collect(&e, out)?;
                }
            } else if is_maildir || is_mail_file(&e) {
                out.push(e);
            }
        }
    }
    Ok(())
}

fn is_mail_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["eml", "mbox", "mbx", "msg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads one file: an mbox gives every message in it, anything else is one message.
pub fn read(path: &Path) -> Result<Vec<RawMessage>, FileSourceError> {
    let bytes = fs::read(path).map_err(|source| FileSourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    if bytes.starts_with(b"From ") {
        let msgs = split_mbox(&bytes);
        if !msgs.is_empty() {
            return Ok(msgs
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    RawMessage::new(
                        m,
                        Origin::File {
                            path: path.to_owned(),
                            index: Some(i),
                        },
                        None,
                    )
                })
                .collect());
        }
    }
    Ok(vec![RawMessage::new(
        bytes,
        Origin::File {
            path: path.to_owned(),
            index: None,
        },
        None,
    )])
}

/// Splits an mbox (mboxrd or mboxo) at `From ` lines that follow a blank line,
/// undoing `>From ` quoting. Written by hand: the crates for this are unmaintained.
pub fn split_mbox(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut prev_blank = true;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if prev_blank && line.starts_with(b"From ") {
            if let Some(mut m) = current.take() {
                // The blank line before a separator belongs to the mbox, not the message.
                if m.ends_with(b"\r\n\r\n") {
                    m.truncate(m.len() - 2);
                } else if m.ends_with(b"\n\n") {
                    m.truncate(m.len() - 1);
                }
                out.push(m);
            }
            current = Some(Vec::new());
            prev_blank = false;
            continue;
        }
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        prev_blank = trimmed.is_empty();
        if let Some(m) = current.as_mut() {
            let unquoted = if line.starts_with(b">") {
                let n = line.iter().take_while(|&&b| b == b'>').count();
                if line[n..].starts_with(b"From ") {
                    &line[1..]
                } else {
                    line
                }
            } else {
                line
            };
            m.extend_from_slice(unquoted);
        }
    }
    if let Some(m) = current {
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_is_split_and_from_quoting_undone() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2025\nSubject: one\n\n>From here\n\nFrom c@d Mon Jan  1 00:00:00 2025\nSubject: two\n\nbody\n";
        let msgs = split_mbox(mbox);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"Subject: one\n\nFrom here\n");
        assert_eq!(msgs[1], b"Subject: two\n\nbody\n");
    }
}

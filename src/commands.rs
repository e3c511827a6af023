//! What each command-line verb does, so `main.rs` only parses arguments.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::directory::{Directory, DirectoryError};
use crate::pipeline::{self, Context};
use crate::report::Report;
use crate::source::files;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Files(#[from] files::FileSourceError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The configuration and directory: from `--config`, else the bundled example.
pub fn load(config: Option<&Path>) -> Result<(Config, Directory), CommandError> {
    match config {
        Some(p) => {
            let c = Config::load(p)?;
            let d = Directory::load(&c.resolve(&c.organisations.file))?;
            Ok((c, d))
        }
        None => {
            let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            Ok((Config::example(&base)?, Directory::example()))
        }
    }
}

/// `baosong ingest`: reads messages from files and prints one report each.
/// Writes nothing, sends nothing.
pub fn ingest(
    config: &Config,
    directory: &Directory,
    paths: &[PathBuf],
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, CommandError> {
    let ctx = Context {
        config,
        directory,
        learned: &[],
    };
    let mut count = 0;
    for path in files::expand(paths)? {
        for raw in files::read(&path)? {
            let analysis = pipeline::analyse(&raw, &ctx);
            let report = Report::new(raw.origin.display(), &analysis);
            if json {
                writeln!(out, "{}", report.to_json())?;
            } else {
                write!(out, "{}", report.to_text())?;
            }
            count += 1;
        }
    }
    Ok(count)
}

//! The `baosong` command line: parses arguments and calls the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use baosong::commands;

#[derive(Parser)]
#[command(
    name = "baosong",
    version,
    about = "报送: collects the forms units email in answer to a notice"
)]
struct Cli {
    /// Configuration file (TOML); without it the bundled example is used.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reads .eml/.mbox files and Maildir folders and reports what baosong
    /// makes of each message. Writes nothing, sends nothing.
    Ingest {
        /// One JSON object per message (JSON Lines) instead of readable text.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BAOSONG_LOG")
        .unwrap_or_else(|_| "warn".into())
        // async-imap traces every command it sends, LOGIN with its password
        // included: never let that through, whatever BAOSONG_LOG asks for.
        .add_directive(
            baosong::source::LOG_FILTER_DIRECTIVE
                .parse()
                .expect("a valid directive"),
        );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    let result: anyhow::Result<()> = (|| {
        let (config, directory) = commands::load(cli.config.as_deref())?;
        match cli.command {
            Command::Ingest { json, paths } => {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                commands::ingest(&config, &directory, &paths, json, &mut out)?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baosong: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `baosong` command line: parses arguments and calls the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use baosong::actions::Services;
use baosong::clock::{Clock, FixedClock, SystemClock};
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
    /// Pretend it is this instant (RFC 3339), e.g. to replay a campaign.
    #[arg(long, global = true, value_parser = parse_now)]
    now: Option<chrono::DateTime<chrono::Utc>>,
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
    /// Runs the daemon: polls the mailboxes, stores, acknowledges, reminds.
    Run {
        /// Read what the mailboxes hold now, send what is due, then exit.
        #[arg(long)]
        once: bool,
    },
    /// The bundled demo: sample submissions through the whole daemon on
    /// SQLite, acks and a digest written as .eml files, then the status.
    Demo {
        /// Folder for the demo's database, archive and outgoing mail.
        #[arg(long, default_value = "baosong-demo")]
        dir: PathBuf,
    },
    /// Which unit has sent what, per deadline.
    Status {
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long)]
        deadline: Option<String>,
    },
    /// Everything stored about one message.
    Show { message: i64 },
    /// Ties a message to a unit (its id, name or alias); the sender's
    /// address is learned and a held ack goes out.
    Assign { message: i64, unit: String },
    /// Takes a message (42) or a failed send (S3) off the digest's 需处理 list.
    Ignore { item: String },
    /// Prints the digest as it would go out now; `--send` enqueues it, with
    /// the spreadsheet, for the coordinators.
    Digest {
        #[arg(long)]
        send: bool,
    },
    /// The coordinators' commands (by mail and here), newest first.
    Log {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Writes the consolidated spreadsheet.
    Export {
        #[arg(long)]
        xlsx: PathBuf,
    },
    /// Reads one stored message, or every one, again after a config or
    /// form change. Sends nothing.
    Reprocess { message: Option<i64> },
    /// Pauses or resumes reminders to one unit (its id, name or alias);
    /// lists the paused ones.
    Remind {
        #[arg(long, conflicts_with = "resume")]
        pause: Option<String>,
        #[arg(long)]
        resume: Option<String>,
    },
    /// Logs in to every mailbox and the SMTP server and renders every template.
    CheckConfig,
    /// Reads files for the daemon in a contained process; the daemon starts it.
    #[command(name = "extract-worker", hide = true)]
    ExtractWorker {
        /// Address-space limit the worker sets on itself.
        #[arg(long, default_value_t = baosong::worker::DEFAULT_MEMORY_BYTES)]
        memory_bytes: u64,
    },
}

fn parse_now(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BAOSONG_LOG")
        .unwrap_or_else(|_| {
            if matches!(cli.command, Command::Run { .. }) {
                "info".into()
            } else {
                "warn".into()
            }
        })
        // async-imap traces every command it sends, LOGIN with its password
        // included: never let that through, whatever BAOSONG_LOG asks for.
        .add_directive(
            baosong::source::LOG_FILTER_DIRECTIVE
                .parse()
                .expect("a valid directive"),
        );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for journald or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("baosong: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Command::ExtractWorker { memory_bytes } = cli.command {
        baosong::worker::serve(memory_bytes)?;
        return Ok(true);
    }
    // One async worker thread. Parsing and reading files run on the blocking
    // pool and in the extraction workers; the async tasks mostly wait on
    // SQLite's threads and the network, and a second worker only added
    // wake-ups between the two (1,000 mails: 82,500 context switches
    // against 65,600, and 6 % more CPU).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let clock: Arc<dyn Clock> = match cli.now {
        Some(t) => Arc::new(FixedClock::new(t)),
        None => Arc::new(SystemClock),
    };
    if let Command::Demo { dir } = &cli.command {
        let out = runtime.block_on(commands::demo(dir, clock))?;
        print!("{out}");
        return Ok(true);
    }
    let (config, directory) = commands::load(cli.config.as_deref())?;
    let print = |s: String| {
        print!("{s}");
        Ok(true)
    };
    match cli.command {
        Command::Ingest { json, paths } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            // Files are read in the daemon's contained workers, on every core.
            let pool = commands::pool(&config)?;
            let now = clock.now();
            commands::ingest(&config, &directory, &pool, &paths, json, now, &mut out)?;
            Ok(true)
        }
        Command::Run { once } => {
            runtime.block_on(commands::run(config, directory, once, clock))?;
            Ok(true)
        }
        Command::CheckConfig => {
            let (out, ok) = runtime.block_on(commands::check_config(&config, &directory))?;
            print!("{out}");
            Ok(ok)
        }
        Command::Demo { .. } | Command::ExtractWorker { .. } => Ok(true),
        command => runtime.block_on(async move {
            let services = Services::open(config, directory, clock).await?;
            let out = match command {
                Command::Status { campaign, deadline } => {
                    commands::status(&services, campaign.as_deref(), deadline.as_deref()).await?
                }
                Command::Show { message } => commands::show(&services, message).await?,
                Command::Assign { message, unit } => {
                    commands::assign(&services, message, &unit).await?
                }
                Command::Ignore { item } => commands::ignore(&services, &item).await?,
                Command::Digest { send } => commands::digest(&services, send).await?,
                Command::Log { limit } => commands::log(&services, limit).await?,
                Command::Export { xlsx } => commands::export_xlsx(&services, &xlsx).await?,
                Command::Reprocess { message } => {
                    commands::reprocess(&commands::with_workers(services.clone())?, message).await?
                }
                Command::Remind { pause, resume } => {
                    commands::remind(&services, pause.as_deref(), resume.as_deref()).await?
                }
                _ => String::new(),
            };
            services.store.close().await;
            print(out)
        }),
    }
}

//! The worker side: `baosong extract-worker` reads files off stdin and
//! writes what it found to stdout until stdin closes.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::time::Duration;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use super::protocol::{self, Hello, Received};
use super::{GRACE, WorkerError};
use crate::config::{FormDef, Limits};
use crate::extract;
use crate::intake::FileEntry;
use crate::types::Sha256;

/// CPU seconds a worker may use before its first file: starting up.
const STARTUP_CPU_SECS: u64 = 10;
/// Out-of-memory score added to a worker (-1000..1000; the daemon has 0).
const OOM_SCORE_ADJ: &str = "500";

/// Runs a worker until its input ends: limits first, then one file after
/// another. `memory_bytes` caps the address space.
pub fn serve(memory_bytes: u64) -> Result<(), WorkerError> {
    // Before anything is parsed: past here an allocation bomb fails inside
    // this process and no further.
    limit(Resource::As, memory_bytes)?;
    cpu_budget(Duration::from_secs(STARTUP_CPU_SECS))?;
    // When the service as a whole runs out of memory, the kernel should
    // take a worker rather than the daemon. Raising one's own score needs
    // no privilege; where /proc is not there, the default stays.
    let _ = std::fs::write("/proc/self/oom_score_adj", OOM_SCORE_ADJ);
    // Below the commit path (see the constant). Lowering needs no privilege.
    let _ = rustix::process::nice(extract::BACKGROUND_NICE);
    let mut output = protocol_output()?;
    // A parser's panic is caught and becomes a problem; say it in one line.
    std::panic::set_hook(Box::new(|info| eprintln!("解析程序内部错误: {info}")));
    let hello = Hello {
        protocol: protocol::VERSION,
        pid: std::process::id(),
    };
    send(&mut output, &hello)?;
    let mut input = BufReader::new(io::stdin().lock());
    let mut setup: (Vec<FormDef>, Limits) = (Vec::new(), Limits::default());
    while let Some(frame) = protocol::read_frame(&mut input)? {
        match serde_json::from_slice(&frame)? {
            Received::Setup { forms, limits } => setup = (forms, limits),
            Received::File {
                filename,
                media_type,
                size,
            } => {
                let mut data = Vec::new();
                let len = usize::try_from(size).unwrap_or(usize::MAX);
                data.try_reserve_exact(len)
                    .map_err(|_| WorkerError::OutOfMemory(size))?;
                (&mut input).take(size).read_to_end(&mut data)?;
                if data.len() as u64 != size {
                    return Err(WorkerError::Protocol("file cut short".into()));
                }
                let (forms, limits) = &setup;
                cpu_budget(Duration::from_secs(limits.extract_timeout_secs.max(1)) + GRACE)?;
                let file = FileEntry {
                    filename,
                    path: String::new(),
                    declared_type: None,
                    media_type,
                    data,
                    // Only the daemon's copy is hashed and stored.
                    sha256: Sha256(String::new()),
                    problems: Vec::new(),
                };
                let found = extract::extract(&file, forms, limits);
                send(&mut output, &found)?;
            }
        }
    }
    Ok(())
}

/// The frames go to a copy of stdout; stdout itself then points at stderr,
/// so that a stray print from a library cannot break a frame.
fn protocol_output() -> Result<BufWriter<File>, WorkerError> {
    let frames = File::from(rustix::io::dup(io::stdout())?);
    rustix::stdio::dup2_stdout(io::stderr())?;
    Ok(BufWriter::new(frames))
}

fn send(output: &mut BufWriter<File>, message: &impl serde::Serialize) -> Result<(), WorkerError> {
    protocol::write_frame(output, &serde_json::to_vec(message)?)?;
    output.flush()?;
    Ok(())
}

fn limit(resource: Resource, value: u64) -> Result<(), WorkerError> {
    let hard = getrlimit(resource).maximum;
    // Never above the hard limit: an unprivileged process cannot raise it.
    let value = hard.map_or(value, |h| value.min(h));
    setrlimit(
        resource,
        Rlimit {
            current: Some(value),
            maximum: hard,
        },
    )
    .map_err(|e| WorkerError::Limit(resource_name(resource), e.into()))
}

/// Lets the process run `budget` more CPU seconds: the soft RLIMIT_CPU is
/// what it has used so far plus the budget, and SIGXCPU ends it past that.
/// The hard limit stays, so the soft one can be raised again per file.
fn cpu_budget(budget: Duration) -> Result<(), WorkerError> {
    let used = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    // Whole seconds, rounded up: the limit counts seconds.
    let used = used.tv_sec as u64 + u64::from(used.tv_nsec > 0);
    limit(Resource::Cpu, used + budget.as_secs().max(1))
}

fn resource_name(resource: Resource) -> &'static str {
    match resource {
        Resource::As => "RLIMIT_AS",
        Resource::Cpu => "RLIMIT_CPU",
        _ => "rlimit",
    }
}

//! Contained extraction: untrusted files are read in child processes of
//! this same binary (`baosong extract-worker`), so that an allocation bomb,
//! a stack overflow or a runaway loop in a parser costs a child, never the
//! daemon. `catch_unwind` cannot stop any of those, and a time budget
//! around a thread does not stop its work.
//!
//! [`Pool`] keeps warm workers and hands each file to an idle one; a worker
//! that dies or overruns is killed and replaced, and the file gets a
//! problem that says why. [`serve`] is the worker's side.
//!
//! # Limits
//! A worker sets them on itself before reading anything: `RLIMIT_AS`
//! (address space, [`PoolOptions::memory_bytes`]) and, before each file,
//! `RLIMIT_CPU` at the CPU time used so far plus the file's budget. The
//! daemon waits for each answer until `extract_timeout_secs` + [`GRACE`]
//! of wall-clock time and sends SIGKILL past that.
//!
//! # Protocol
//! Frames both ways: a u32 little-endian length, then that many bytes of
//! JSON. Files go raw, after their frame, to avoid an encoding pass over
//! megabytes.
//! 1. worker → daemon: `{"protocol": 1, "pid": N}` once its limits are set.
//! 2. daemon → worker: `{"type": "setup", "forms": […], "limits": {…}}`
//!    whenever they differ from what that worker last got (the forms and
//!    limits in the configuration's own field names);
//! 3. daemon → worker: `{"type": "file", "filename", "media_type", "size"}`
//!    followed by `size` bytes; the worker answers with one frame, the
//!    [`Extraction`] as JSON.
//!
//! A worker exits when its stdin closes; the pool kills its workers when
//! it is dropped.

mod child;
mod protocol;

pub use child::serve;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use tracing::{debug, warn};

use crate::config::{FormDef, Limits};
use crate::extract::{Extraction, Extractor};
use crate::intake::FileEntry;
use crate::model::{Problem, ProblemCode};
use protocol::{FormWire, Hello, LimitsWire, Request};

/// The hidden subcommand that runs a worker.
pub const SUBCOMMAND: &str = "extract-worker";
/// Wall-clock and CPU time a worker gets past `extract_timeout_secs`: the
/// readers stop themselves at the budget, this is for them to say so.
pub const GRACE: Duration = Duration::from_secs(2);
/// Default address space of a worker: a 50 MB PDF or workbook reads in a
/// few hundred MB; a bomb stops here.
pub const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;
/// A worker is replaced after this many files, so that whatever its heap
/// kept from a large file does not stay for good.
const FILES_PER_WORKER: u64 = 1000;
/// How long a new worker may take to say hello.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a worker's stderr kept to tell why it died.
const STDERR_TAIL_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start the extraction worker {program}: {source}")]
    Spawn { program: PathBuf, source: io::Error },
    #[error("setting {0}: {1}")]
    Limit(&'static str, io::Error),
    #[error("worker protocol: {0}")]
    Protocol(String),
    #[error("worker I/O: {0}")]
    Io(#[from] io::Error),
    #[error("worker message: {0}")]
    Json(#[from] serde_json::Error),
    /// Said on the worker's stderr: the daemon reads it as a memory death.
    #[error("memory allocation of {0} bytes failed")]
    OutOfMemory(u64),
}

impl From<rustix::io::Errno> for WorkerError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

/// How a pool runs its workers.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The baosong executable (it has the `extract-worker` subcommand).
    pub program: PathBuf,
    /// Most workers at once: files read in parallel.
    pub workers: usize,
    /// Address-space limit of each worker.
    pub memory_bytes: u64,
}

impl PoolOptions {
    /// One worker per CPU, [`DEFAULT_MEMORY_BYTES`] each.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

/// Warm extraction workers, shared by the threads that read files.
/// [`Extractor::extract`] blocks until a worker is free.
pub struct Pool {
    options: PoolOptions,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Worker>,
    /// Workers alive, idle or busy.
    live: usize,
}

impl Pool {
    /// A pool of this executable's workers with the default options.
    pub fn new() -> Result<Self, WorkerError> {
        let program = std::env::current_exe().map_err(|source| WorkerError::Spawn {
            program: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        Self::with_options(PoolOptions::new(program))
    }

    /// Starts one worker now, so that a wrong executable shows at startup
    /// rather than on the first file; the others start when needed.
    pub fn with_options(mut options: PoolOptions) -> Result<Self, WorkerError> {
        options.workers = options.workers.max(1);
        let first = Worker::spawn(&options)?;
        Ok(Self {
            options,
            state: Mutex::new(State {
                idle: vec![first],
                live: 1,
            }),
            freed: Condvar::new(),
        })
    }

    pub fn options(&self) -> &PoolOptions {
        &self.options
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle worker, a new one when there is room, or the first freed.
    fn checkout(&self) -> Result<Worker, WorkerError> {
        let mut state = self.lock();
        loop {
            while let Some(mut w) = state.idle.pop() {
                // One that died while idle (killed from outside) is replaced.
                if w.alive() {
                    return Ok(w);
                }
                state.live -= 1;
            }
            if state.live < self.options.workers {
                state.live += 1;
                drop(state);
                let spawned = Worker::spawn(&self.options);
                if spawned.is_err() {
                    self.release();
                }
                return spawned;
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn checkin(&self, worker: Worker) {
        if worker.files >= FILES_PER_WORKER {
            drop(worker);
            self.release();
            return;
        }
        self.lock().idle.push(worker);
        self.freed.notify_one();
    }

    /// A worker is gone: its slot is free.
    fn release(&self) {
        self.lock().live -= 1;
        self.freed.notify_one();
    }
}

impl Extractor for Pool {
    fn parallelism(&self) -> usize {
        self.options.workers
    }

    fn extract(&self, file: &FileEntry, forms: &[FormDef], limits: &Limits) -> Extraction {
        let budget = Duration::from_secs(limits.extract_timeout_secs.max(1)) + GRACE;
        let setup = Request::Setup {
            forms: forms.iter().map(FormWire::of).collect(),
            limits: LimitsWire::of(limits),
        };
        let setup = match serde_json::to_vec(&setup) {
            Ok(s) => s,
            Err(e) => return failed(file, Failure::Unavailable(e.to_string()), budget),
        };
        let mut worker = match self.checkout() {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "no extraction worker");
                return failed(file, Failure::Unavailable(e.to_string()), budget);
            }
        };
        let started = Instant::now();
        match worker.run(&setup, file, started + budget) {
            Ok(found) => {
                self.checkin(worker);
                found
            }
            Err(failure) => {
                let failure = worker.end(failure);
                warn!(
                    file = %file.path,
                    pid = worker.pid,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    reason = %failure,
                    "extraction worker lost"
                );
                drop(worker);
                self.release();
                failed(file, failure, budget)
            }
        }
    }
}

/// Why a file got no answer.
#[derive(Debug)]
enum Failure {
    /// Past its wall-clock budget: killed.
    Timeout,
    /// The worker died; its exit status and last stderr lines.
    Died(Option<ExitStatus>, String),
    /// It answered nonsense or too much.
    Protocol(String),
    /// No worker could be started.
    Unavailable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("past its time budget, killed"),
            Self::Died(status, tail) => {
                let status = status.map_or("unknown".into(), |s| s.to_string());
                write!(f, "died ({status}): {}", tail.trim_end())
            }
            Self::Protocol(detail) => write!(f, "bad answer: {detail}"),
            Self::Unavailable(detail) => write!(f, "no worker: {detail}"),
        }
    }
}

fn failed(file: &FileEntry, failure: Failure, budget: Duration) -> Extraction {
    let name = &file.filename;
    let problem = match failure {
        Failure::Timeout => Problem::new(
            ProblemCode::FileTimeout,
            format!(
                "{name}：读取超时（超过{}秒），文件可能过大或结构异常，请检查文件能否正常打开，或另存为.xlsx/.docx/.pdf后重新发送",
                budget.as_secs()
            ),
        ),
        Failure::Died(status, tail) => {
            let why = death(status, &tail);
            let code = if why == CPU_EXCEEDED {
                ProblemCode::FileTimeout
            } else {
                ProblemCode::FileUnreadable
            };
            Problem::new(
                code,
                format!(
                    "{name}：无法读取（{why}），文件可能已损坏或结构异常，请检查文件能否正常打开后重新发送"
                ),
            )
        }
        Failure::Protocol(_) => Problem::new(
            ProblemCode::FileUnreadable,
            format!("{name}：无法读取（读取结果异常），请检查文件能否正常打开后重新发送"),
        ),
        Failure::Unavailable(_) => Problem::new(
            ProblemCode::FileUnreadable,
            format!("{name}：暂时无法读取（解析程序无法启动），工作人员将人工处理"),
        ),
    };
    Extraction {
        problems: vec![problem],
        ..Extraction::default()
    }
}

const MEMORY_EXCEEDED: &str = "内存超限";
const CPU_EXCEEDED: &str = "处理超时";

/// Why a worker died, in the sender's words.
fn death(status: Option<ExitStatus>, tail: &str) -> String {
    if tail.contains("memory allocation of") || tail.contains("capacity overflow") {
        return MEMORY_EXCEEDED.into();
    }
    if tail.contains("has overflowed its stack") {
        return "文件结构嵌套过深".into();
    }
    match status.and_then(|s| s.signal()) {
        Some(24) => CPU_EXCEEDED.into(),
        // Not sent by the pool (a timeout is told apart): the kernel's OOM
        // killer or the service's memory limit.
        Some(9) => MEMORY_EXCEEDED.into(),
        Some(sig) => format!("解析程序异常退出，信号{sig}"),
        None => match status.and_then(|s| s.code()) {
            Some(code) => format!("解析程序异常退出，退出码{code}"),
            None => "解析程序异常退出".into(),
        },
    }
}

/// One worker process.
struct Worker {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// The end of its stderr, filled by `stderr_thread`.
    tail: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
    /// The setup frame it last got.
    setup: Vec<u8>,
    files: u64,
    /// Bytes of an answer read so far.
    buf: Vec<u8>,
}

/// glibc hands a large freed buffer back to the kernel (mmap above a
/// threshold, the heap trimmed above twice it), so every decoded page had
/// its memory faulted in afresh: 430,000 page faults per 1000 mails, 11 % of
/// the CPU. A worker keeps up to 128 MiB of freed heap instead; its address
/// space is capped by `--memory-bytes` all the same. Other C libraries
/// ignore the variable.
const MALLOC_TUNABLES: &str =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728";

impl Worker {
    fn spawn(options: &PoolOptions) -> Result<Self, WorkerError> {
        let spawn_error = |source| WorkerError::Spawn {
            program: options.program.clone(),
            source,
        };
        let tunables = match std::env::var("GLIBC_TUNABLES") {
            // The operator's own settings come last, so theirs win.
            Ok(theirs) if !theirs.is_empty() => format!("{MALLOC_TUNABLES}:{theirs}"),
            _ => MALLOC_TUNABLES.to_owned(),
        };
        let mut child = Command::new(&options.program)
            .arg(SUBCOMMAND)
            .arg("--memory-bytes")
            .arg(options.memory_bytes.to_string())
            .env("GLIBC_TUNABLES", tunables)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(WorkerError::Protocol("worker pipes missing".into()));
        };
        let tail = Arc::new(Mutex::new(String::new()));
        let stderr_thread = {
            let tail = Arc::clone(&tail);
            std::thread::Builder::new()
                .name(format!("worker-{pid}-stderr"))
                .spawn(move || forward_stderr(pid, stderr, &tail))
                .map_err(spawn_error)?
        };
        let mut worker = Self {
            child,
            pid,
            stdin,
            stdout,
            tail,
            stderr_thread: Some(stderr_thread),
            setup: Vec::new(),
            files: 0,
            buf: Vec::new(),
        };
        let hello = worker
            .read_answer(Instant::now() + START_TIMEOUT)
            .map_err(|f| WorkerError::Protocol(format!("no hello: {}", worker.end(f))))?;
        let hello: Hello = serde_json::from_slice(&hello)?;
        if hello.protocol != protocol::VERSION {
            return Err(WorkerError::Protocol(format!(
                "{} speaks protocol {}, not {}",
                options.program.display(),
                hello.protocol,
                protocol::VERSION
            )));
        }
        debug!(pid, "extraction worker started");
        Ok(worker)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one file and waits for its answer until `deadline`.
    fn run(
        &mut self,
        setup: &[u8],
        file: &FileEntry,
        deadline: Instant,
    ) -> Result<Extraction, Failure> {
        self.files += 1;
        let dead = |_: io::Error| Failure::Died(None, String::new());
        if self.setup != setup {
            protocol::write_frame(&mut self.stdin, setup).map_err(dead)?;
            self.setup = setup.to_vec();
        }
        let request = Request::File {
            filename: &file.filename,
            media_type: &file.media_type,
            size: file.data.len() as u64,
        };
        let request = serde_json::to_vec(&request).map_err(|e| Failure::Protocol(e.to_string()))?;
        protocol::write_frame(&mut self.stdin, &request).map_err(dead)?;
        self.stdin.write_all(&file.data).map_err(dead)?;
        self.stdin.flush().map_err(dead)?;
        let answer = self.read_answer(deadline)?;
        serde_json::from_slice(&answer).map_err(|e| Failure::Protocol(e.to_string()))
    }

    /// Reads one frame, waiting no later than `deadline`.
    fn read_answer(&mut self, deadline: Instant) -> Result<Vec<u8>, Failure> {
        self.buf.clear();
        let mut want = 4;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            while self.buf.len() < want {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Failure::Timeout);
                }
                let timeout = Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                let mut fds = [PollFd::new(&self.stdout, PollFlags::IN)];
                match poll(&mut fds, Some(&timeout)) {
                    Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                    Ok(_) => {}
                    Err(e) => return Err(Failure::Protocol(e.to_string())),
                }
                let room = (want - self.buf.len()).min(chunk.len());
                match self.stdout.read(&mut chunk[..room]) {
                    Ok(0) => return Err(Failure::Died(None, String::new())),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(Failure::Died(None, String::new())),
                }
            }
            if want == 4 {
                let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if len as usize > protocol::MAX_FRAME {
                    return Err(Failure::Protocol(format!("answer of {len} bytes")));
                }
                want += len as usize;
                self.buf.reserve(len as usize);
                continue;
            }
            return Ok(self.buf.split_off(4));
        }
    }

    /// Kills the process (a no-op when it is already dead), reaps it and
    /// fills in what its death says.
    fn end(&mut self, failure: Failure) -> Failure {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let tail = self
            .tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match failure {
            Failure::Died(..) => Failure::Died(status, tail),
            f => f,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Killed, not asked: a worker may be stuck in a parser.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
    }
}

/// Passes a worker's stderr to the log and keeps its end.
fn forward_stderr(pid: u32, stderr: std::process::ChildStderr, tail: &Mutex<String>) {
    let mut lines = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(n) = lines.read_until(b'\n', &mut line) {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        debug!(pid, "worker: {text}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.push_str(text);
        tail.push('\n');
        if tail.len() > STDERR_TAIL_BYTES {
            let cut = tail.len() - STDERR_TAIL_BYTES;
            let cut = (cut..tail.len())
                .find(|&i| tail.is_char_boundary(i))
                .unwrap_or(0);
            tail.drain(..cut);
        }
        line.clear();
    }
}

//! The TOML configuration: what is read, what is required, and validation
//! with messages that name the key and say what is wrong.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::types::{CampaignId, DeadlineId, DocForm, DocumentKind, FormId, MailboxName};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("secret for `{key}`: {message}")]
    Secret { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Configuration errors never go away by retrying.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// An IANA time zone, checked when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub Tz);

impl Default for Zone {
    fn default() -> Self {
        Self(chrono_tz::Asia::Shanghai)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Zone).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{s}` is not an IANA time zone (e.g. \"Asia/Shanghai\")"
            ))
        })
    }
}

/// A cron line (6 fields, seconds first), parsed when the config is read.
#[derive(Debug, Clone)]
pub struct CronLine {
    pub text: String,
    pub schedule: cron::Schedule,
}

impl CronLine {
    fn parse(text: &str) -> Result<Self, String> {
        text.parse::<cron::Schedule>()
            .map(|schedule| Self {
                text: text.to_owned(),
                schedule,
            })
            .map_err(|e| format!("`{text}` is not a cron line with 6 fields (seconds first): {e}"))
    }
}

impl<'de> Deserialize<'de> for CronLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A deadline as written: `"2025-05-06"`, the TOML date `2025-05-06`, or a
/// local time `"2025-05-07T12:00"`. Read into an instant with the
/// campaign's zone at load ([`DeadlineConfig::due_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueText(pub String);

impl<'de> Deserialize<'de> for DueText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Toml(toml::value::Datetime),
        }
        Ok(Self(match Written::deserialize(d)? {
            Written::Text(s) => s,
            Written::Toml(t) => t.to_string(),
        }))
    }
}

/// A `Name <address>` sender, checked when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender(pub lettre::message::Mailbox);

impl Sender {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse().map(Self).map_err(|e| {
            format!("`{s}` is not a mail address (e.g. \"报送助手 <kjt@example.cn>\"): {e}")
        })
    }

    /// The bare address, lower case.
    pub fn address(&self) -> String {
        self.0.email.to_string().to_lowercase()
    }
}

impl<'de> Deserialize<'de> for Sender {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The whole configuration, paths already resolved against the config file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, rename = "mailbox")]
    pub mailboxes: Vec<MailboxConfig>,
    #[serde(default)]
    pub smtp: SmtpConfig,
    pub organisations: OrganisationsConfig,
    #[serde(default, rename = "form")]
    pub forms: Vec<FormDef>,
    #[serde(default, rename = "campaign")]
    pub campaigns: Vec<CampaignConfig>,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub trust: TrustConfig,
    /// Folder the relative paths above are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/to/baosong.db` or `postgres://user@host/db`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Where raw messages are kept, content-addressed.
    #[serde(default = "default_archive")]
    pub archive: PathBuf,
    /// The PostgreSQL password, from the environment or a file; never in the
    /// URL of a config file.
    #[serde(default)]
    pub password: Option<Secret>,
    /// This instance's name among those sharing one database (default: the
    /// host name). Work it leased and left unfinished when it stopped is
    /// taken back at once when an instance of that name starts.
    #[serde(default)]
    pub instance: Option<String>,
}

fn default_database() -> String {
    "sqlite://baosong.db".into()
}
fn default_archive() -> PathBuf {
    PathBuf::from("archive")
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database: default_database(),
            archive: default_archive(),
            password: None,
            instance: None,
        }
    }
}

/// Limits that keep one bad message from costing the daemon its memory or time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest raw message accepted for parsing; larger ones are kept and marked.
    pub max_message_bytes: u64,
    /// Largest single file (attachment or archive entry) read.
    pub max_file_bytes: u64,
    /// How deep archives inside archives (and forwarded mail) are opened.
    pub max_archive_depth: u32,
    /// Most entries read out of one archive.
    pub max_archive_entries: u32,
    /// Most bytes unpacked from one message's archives together.
    pub max_unpacked_bytes: u64,
    /// Highest compression ratio (unpacked / packed) accepted for an entry.
    pub max_compression_ratio: u32,
    /// Most attachments considered in one message.
    pub max_attachments: u32,
    /// Wall-clock budget for reading one file's tables or scan, in seconds.
    pub extract_timeout_secs: u64,
    /// Most pixels decoded from one image (after reduction).
    pub max_image_pixels: u64,
    /// Address-space limit of each extraction worker process, in MiB: a
    /// file that needs more is unreadable, and the daemon is untouched.
    pub worker_memory_mb: u64,
    /// Extraction workers at most (0: one per CPU).
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024 * 1024,
            max_file_bytes: 50 * 1024 * 1024,
            max_archive_depth: 3,
            max_archive_entries: 500,
            max_unpacked_bytes: 200 * 1024 * 1024,
            max_compression_ratio: 200,
            max_attachments: 200,
            extract_timeout_secs: 30,
            max_image_pixels: 80_000_000,
            worker_memory_mb: 1024,
            workers: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    pub name: MailboxName,
    /// The address units write to; used to tell which campaign a mail is for.
    pub address: String,
    #[serde(default)]
    pub imap: Option<ImapConfig>,
    /// A local Maildir instead of IMAP.
    #[serde(default)]
    pub maildir: Option<PathBuf>,
    #[serde(default = "default_folder")]
    pub folder: String,
    #[serde(default)]
    pub after: AfterProcessing,
    /// Folder for `after = "move"`.
    #[serde(default)]
    pub move_to: Option<String>,
    /// Seconds between polls where IDLE is not offered (a new mail waits up
    /// to this long for its ack there).
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
    /// From of the acks to mail this mailbox received; `[smtp] from` otherwise.
    #[serde(default)]
    pub from: Option<Sender>,
}

fn default_folder() -> String {
    "INBOX".into()
}
fn default_poll() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterProcessing {
    Keep,
    #[default]
    Seen,
    Move,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    #[default]
    Implicit,
    Starttls,
    /// Plain text: only for loopback tests.
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImapAuth {
    #[default]
    Login,
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file with the CA that signs the server's certificate; system roots otherwise.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Secret,
    #[serde(default)]
    pub auth: ImapAuth,
    /// Send the IMAP ID command after login (163.com/Coremail need it).
    #[serde(default = "yes")]
    pub send_id: bool,
}

fn yes() -> bool {
    true
}

impl ImapConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Implicit => 993,
            _ => 143,
        })
    }
}

/// Where a password comes from. Never the config file itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// Name of an environment variable.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the secret; `$CREDENTIALS_DIRECTORY` is searched for a bare name
    /// (systemd `LoadCredential=`).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl Secret {
    /// Reads the secret now. The value is never logged.
    pub fn resolve(&self, key: &str) -> Result<String, ConfigError> {
        if let Some(var) = &self.env {
            return std::env::var(var).map_err(|_| ConfigError::Secret {
                key: key.into(),
                message: format!("environment variable {var} is not set"),
            });
        }
        if let Some(file) = &self.file {
            let path = if file.components().count() == 1 {
                match std::env::var_os("CREDENTIALS_DIRECTORY") {
                    Some(dir) if Path::new(&dir).join(file).exists() => Path::new(&dir).join(file),
                    _ => file.clone(),
                }
            } else {
                file.clone()
            };
            return std::fs::read_to_string(&path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| ConfigError::Secret {
                    key: key.into(),
                    message: format!("cannot read {}: {e}", path.display()),
                });
        }
        Err(ConfigError::Secret {
            key: key.into(),
            message: "give `env` or `file`".into(),
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTransport {
    Smtp,
    /// Write each mail as an .eml file into `directory` (dry runs, quickstart).
    #[default]
    File,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    #[serde(default)]
    pub transport: SmtpTransport,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// For the file transport.
    #[serde(default = "default_outdir")]
    pub directory: PathBuf,
    #[serde(default = "default_from")]
    pub from: Sender,
    #[serde(default)]
    pub reply_to: Option<Sender>,
    /// Domain of the Message-IDs we make; mail citing it is ours and never answered.
    #[serde(default = "default_msgid_domain")]
    pub message_id_domain: String,
    /// Most acknowledgements to one address per hour.
    #[serde(default = "default_ack_rate")]
    pub ack_per_recipient_per_hour: u32,
    /// Most acknowledgements to anyone per hour: a flood of mail cannot make
    /// the mailbox a mass mailer.
    #[serde(default = "default_ack_total")]
    pub ack_per_hour: u32,
    /// Folder with the operator's mail templates; the built-in ones otherwise.
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// First delay before a failed send is tried again, in seconds; it doubles
    /// with each attempt up to 2 hours.
    #[serde(default = "default_retry_base")]
    pub retry_base_secs: u64,
    /// Seconds one SMTP command may wait for the server's answer; past it the
    /// send counts as a passing failure and is tried again later.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_outdir() -> PathBuf {
    PathBuf::from("outbox")
}
fn default_from() -> Sender {
    Sender::parse("报送助手 <baosong@localhost>").expect("a valid literal address")
}
fn default_msgid_domain() -> String {
    "baosong.invalid".into()
}
fn default_ack_rate() -> u32 {
    5
}
fn default_ack_total() -> u32 {
    300
}
fn default_retry_base() -> u64 {
    30
}
fn default_smtp_timeout() -> u64 {
    60
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            transport: SmtpTransport::File,
            host: None,
            port: None,
            tls: TlsMode::Implicit,
            ca_file: None,
            username: None,
            password: None,
            directory: default_outdir(),
            from: default_from(),
            reply_to: None,
            message_id_domain: default_msgid_domain(),
            ack_per_recipient_per_hour: default_ack_rate(),
            ack_per_hour: default_ack_total(),
            templates: None,
            retry_base_secs: default_retry_base(),
            timeout_secs: default_smtp_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationsConfig {
    /// A .csv or .xlsx with the header `id,name,aliases,emails,domains,category,contact`.
    pub file: PathBuf,
    /// Pairs of spellings treated as the same when names are compared,
    /// e.g. `["科学技术", "科技"]`.
    #[serde(default = "default_synonyms")]
    pub synonyms: Vec<(String, String)>,
    /// Free-mail domains that never identify an organisation by themselves.
    #[serde(default = "default_public_domains")]
    pub public_domains: Vec<String>,
}

fn default_synonyms() -> Vec<(String, String)> {
    [
        ("科学技术协会", "科协"),
        ("科学技术", "科技"),
        ("委员会", "委"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

fn default_public_domains() -> Vec<String> {
    [
        "163.com",
        "126.com",
        "yeah.net",
        "qq.com",
        "foxmail.com",
        "sina.com",
        "sina.cn",
        "sohu.com",
        "139.com",
        "189.cn",
        "aliyun.com",
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "yahoo.com",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// A table definition: how to find a form's table and what its columns or fields mean.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormDef {
    pub id: FormId,
    /// Short name as units know it, e.g. `推荐表`.
    pub name: String,
    /// Which document this form is.
    pub kind: DocumentKind,
    pub layout: Layout,
    /// Words in a title or file name that point to this form.
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(rename = "field")]
    pub fields: Vec<FieldDef>,
}

impl FormDef {
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One record per row under a header row (推荐表).
    Rows,
    /// Label → value pairs (统计表).
    Fields,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Integer,
    /// A number with a unit (`unit` says which: 万元, 人次, 次, 个…).
    Decimal,
    Phone,
    /// A date and/or place; the place is checked to county level when `county_level` is set.
    DatePlace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Canonical key, e.g. `summary`.
    pub key: String,
    /// Header labels or field labels as forms print them; the first is the display name.
    pub labels: Vec<String>,
    #[serde(rename = "type", default = "default_field_type")]
    pub ty: FieldType,
    /// Unit the number is expected in, e.g. `万元`, `人次`.
    #[serde(default)]
    pub unit: Option<String>,
    /// For two-level labels (统计表): the group label, e.g. `活动经费投入数量`.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Most characters, counted as a reader does.
    #[serde(default)]
    pub max_chars: Option<u32>,
    /// The place must name a county-level division.
    #[serde(default)]
    pub county_level: bool,
    /// This field names the sending unit (推荐单位, 地方/部门).
    #[serde(default)]
    pub is_unit: bool,
}

fn default_field_type() -> FieldType {
    FieldType::Text
}

impl FieldDef {
    pub fn display_name(&self) -> &str {
        self.labels.first().map(String::as_str).unwrap_or(&self.key)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    pub id: CampaignId,
    pub name: String,
    /// Names of the `[[mailbox]]` entries that collect for this campaign.
    #[serde(default)]
    pub mailboxes: Vec<MailboxName>,
    #[serde(default)]
    pub timezone: Zone,
    /// Words in a subject or file name that point to this campaign (e.g. `科普月`).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Directory categories the notice addresses (e.g. `设区市科技局`); empty: every unit.
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(rename = "deadline")]
    pub deadlines: Vec<DeadlineConfig>,
}

impl CampaignConfig {
    pub fn tz(&self) -> Tz {
        self.timezone.0
    }

    pub fn deadline(&self, id: &DeadlineId) -> Option<&DeadlineConfig> {
        self.deadlines.iter().find(|d| &d.id == id)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineConfig {
    pub id: DeadlineId,
    /// Shown to people, e.g. `推荐表报送`.
    #[serde(default)]
    pub name: Option<String>,
    /// `2025-05-06` (end of that day in the campaign's zone) or `2025-05-07T12:00`.
    pub due: DueText,
    /// `due` as an instant, set when the config is read.
    #[serde(skip)]
    pub due_at: DateTime<Utc>,
    /// `due` names a day (the deadline is the end of it), not a time.
    #[serde(skip)]
    pub due_is_day: bool,
    #[serde(default, rename = "require")]
    pub requires: Vec<Requirement>,
    /// Most records (e.g. recommended activities) one unit may send (青岛: 3).
    #[serde(default)]
    pub max_items_per_unit: Option<u32>,
    #[serde(default)]
    pub photos: Option<PhotoRule>,
    #[serde(default)]
    pub video: Option<VideoRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The document required…
    #[serde(default)]
    pub kind: Option<DocumentKind>,
    /// …or any one of several kinds (影像资料: `["photo", "video"]`).
    #[serde(default)]
    pub any_of: Vec<DocumentKind>,
    /// Forms needed, each separately (e.g. `["scan", "electronic"]`); empty = any one.
    #[serde(default)]
    pub forms: Vec<DocForm>,
    /// Fewest different files that meet it, counted per unit over all its
    /// mails for the deadline (青岛: at least 5 photos).
    #[serde(default)]
    pub min_count: Option<u32>,
    /// What units call it (`影像资料`); the kinds' names otherwise.
    #[serde(default)]
    pub label: Option<String>,
    /// Only files whose name (or zip folder) has one of these words meet it
    /// (青岛: `["线上"]` for 线上活动照片). Other requirements of the same
    /// kind then leave those files to it, so 现场照片 are counted apart.
    #[serde(default)]
    pub name_has: Vec<String>,
}

impl Requirement {
    /// The kinds that meet it.
    pub fn kinds(&self) -> Vec<DocumentKind> {
        self.kind
            .into_iter()
            .chain(self.any_of.iter().copied())
            .collect()
    }

    pub fn accepts(&self, kind: DocumentKind) -> bool {
        self.kind == Some(kind) || self.any_of.contains(&kind)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoRule {
    #[serde(default)]
    pub min_count: u32,
    #[serde(default)]
    pub min_bytes: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Accepted formats, e.g. `["jpeg"]`.
    #[serde(default)]
    pub formats: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoRule {
    pub max_seconds: u32,
}

impl DeadlineConfig {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.to_string())
    }
}

/// `2025-05-06` means the end of that day; `2025-05-07T12:00[:00]` is exact.
/// The flag says whether `due` named a day.
pub fn parse_due(due: &str, tz: Tz) -> Result<(DateTime<Utc>, bool), String> {
    let local = if let Ok(d) = NaiveDate::parse_from_str(due, "%Y-%m-%d") {
        let end = d.and_hms_opt(23, 59, 59).ok_or("invalid date")?;
        return tz
            .from_local_datetime(&end)
            .latest()
            .map(|t| (t.with_timezone(&Utc), true))
            .ok_or_else(|| format!("`{due}` does not exist in {tz}"));
    } else if let Ok(dt) = NaiveDateTime::parse_from_str(due, "%Y-%m-%dT%H:%M:%S") {
        dt
    } else if let Ok(dt) = NaiveDateTime::parse_from_str(due, "%Y-%m-%dT%H:%M") {
        dt
    } else if let Ok(dt) = DateTime::parse_from_rfc3339(due) {
        return Ok((dt.with_timezone(&Utc), false));
    } else {
        return Err(format!(
            "`{due}` is not a date (due = \"2025-05-06\", the end of that day) or a local time (due = \"2025-05-07T12:00\")"
        ));
    };
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| (t.with_timezone(&Utc), false))
        .ok_or_else(|| format!("`{due}` does not exist in {tz}"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Cron (6 fields, seconds first) for the reminder run.
    #[serde(default = "default_reminder_cron")]
    pub reminder_cron: CronLine,
    /// Days before a deadline at which a reminder is due.
    #[serde(default = "default_offsets")]
    pub reminder_days_before: Vec<u32>,
    #[serde(default = "default_digest_cron")]
    pub digest_cron: CronLine,
    /// Who gets the digest.
    #[serde(default)]
    pub coordinators: Vec<String>,
    /// Time zone the cron lines are read in.
    #[serde(default)]
    pub timezone: Zone,
}

fn default_reminder_cron() -> CronLine {
    CronLine::parse("0 0 9 * * *").expect("a valid literal cron line")
}
fn default_digest_cron() -> CronLine {
    CronLine::parse("0 30 8 * * Mon-Fri").expect("a valid literal cron line")
}
fn default_offsets() -> Vec<u32> {
    vec![3, 1]
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            reminder_cron: default_reminder_cron(),
            reminder_days_before: default_offsets(),
            digest_cron: default_digest_cron(),
            coordinators: Vec::new(),
            timezone: Zone::default(),
        }
    }
}

/// Which receiving servers' verdicts on senders to believe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// `authserv-id`s (the first word of `Authentication-Results`) of the
    /// servers that receive our mail, e.g. `["mx.example.cn"]`. A sender they
    /// say failed DMARC, or SPF without DKIM, gets no automatic ack.
    #[serde(default)]
    pub authserv_ids: Vec<String>,
}

/// The example configuration shipped in the repository, used when no `--config` is given.
pub const EXAMPLE_TOML: &str = include_str!("../config.example.toml");

impl StoreConfig {
    /// The database URL with the password from `password` put in.
    pub fn url(&self) -> Result<String, ConfigError> {
        let Some(secret) = &self.password else {
            return Ok(self.database.clone());
        };
        let password = secret.resolve("store.password")?;
        let invalid = |m: &str| ConfigError::invalid("store.database", m);
        let (scheme, rest) = self
            .database
            .split_once("://")
            .ok_or_else(|| invalid("is not a URL"))?;
        let (user, host) = rest.split_once('@').ok_or_else(|| {
            invalid("`password` needs a user in the URL: postgres://user@host/db")
        })?;
        if user.contains(':') {
            return Err(invalid(
                "give the password either in `password` or in the URL, not both",
            ));
        }
        let encoded: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Ok(format!("{scheme}://{user}:{encoded}@{host}"))
    }

    /// The name this instance leases work under.
    pub fn instance_name(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|s| s.trim().to_owned())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "baosong".into())
        })
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        // Absolute, so the daemon's working directory (`/` under systemd)
        // does not matter.
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = std::path::absolute(parent).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path, &base)
    }

    /// The bundled example, paths resolved against `base` (the repository or install folder).
    pub fn example(base: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(EXAMPLE_TOML, Path::new("config.example.toml"), base)
    }

    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.base_dir = base.to_owned();
        config.validate()?;
        config.resolve_paths();
        Ok(config)
    }

    /// Every relative path of the file, read against the config file's folder.
    fn resolve_paths(&mut self) {
        let base = self.base_dir.clone();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.store.archive);
        resolve(&mut self.smtp.directory);
        resolve(&mut self.organisations.file);
        for p in [&mut self.smtp.templates, &mut self.smtp.ca_file]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
        for m in &mut self.mailboxes {
            if let Some(p) = &mut m.maildir {
                resolve(p);
            }
            if let Some(p) = m.imap.as_mut().and_then(|i| i.ca_file.as_mut()) {
                resolve(p);
            }
        }
        if let Some(rest) = self.store.database.strip_prefix("sqlite://")
            && !rest.starts_with('/')
            && !rest.starts_with(":memory:")
        {
            self.store.database = format!("sqlite://{}", base.join(rest).display());
        }
    }

    pub fn form(&self, id: &FormId) -> Option<&FormDef> {
        self.forms.iter().find(|f| &f.id == id)
    }

    pub fn campaign(&self, id: &CampaignId) -> Option<&CampaignConfig> {
        self.campaigns.iter().find(|c| &c.id == id)
    }

    pub fn mailbox(&self, name: &MailboxName) -> Option<&MailboxConfig> {
        self.mailboxes.iter().find(|m| &m.name == name)
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let s = &self.store;
        if s.password
            .as_ref()
            .is_some_and(|p| p.env.is_none() && p.file.is_none())
        {
            return Err(ConfigError::invalid(
                "store.password",
                "give `env = \"VAR\"` or `file = \"path\"`",
            ));
        }
        if !(s.database.starts_with("sqlite:")
            || s.database.starts_with("postgres://")
            || s.database.starts_with("postgresql://"))
        {
            return Err(ConfigError::invalid(
                "store.database",
                "must start with sqlite:// or postgres://",
            ));
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_file_bytes", l.max_file_bytes),
            ("limits.max_unpacked_bytes", l.max_unpacked_bytes),
            (
                "limits.max_archive_entries",
                u64::from(l.max_archive_entries),
            ),
            (
                "limits.max_compression_ratio",
                u64::from(l.max_compression_ratio),
            ),
            ("limits.max_attachments", u64::from(l.max_attachments)),
            ("limits.extract_timeout_secs", l.extract_timeout_secs),
            ("limits.max_image_pixels", l.max_image_pixels),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }

        let mut names = HashSet::new();
        for (i, m) in self.mailboxes.iter().enumerate() {
            let key = format!("mailbox[{i}]");
            if !names.insert(m.name.clone()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("mailbox name `{}` is used twice", m.name),
                ));
            }
            if !m.address.contains('@') {
                return Err(ConfigError::invalid(
                    format!("{key}.address"),
                    format!("`{}` is not a mail address", m.address),
                ));
            }
            match (&m.imap, &m.maildir) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(
                        key,
                        "give either `imap` or `maildir`, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::invalid(
                        key,
                        "needs an `[mailbox.imap]` section or a `maildir` path",
                    ));
                }
                (Some(imap), None) => {
                    if imap.host.trim().is_empty() {
                        return Err(ConfigError::invalid(format!("{key}.imap.host"), "is empty"));
                    }
                    if imap.password.env.is_none() && imap.password.file.is_none() {
                        return Err(ConfigError::invalid(
                            format!("{key}.imap.password"),
                            "give `env = \"VAR\"` or `file = \"path\"`; passwords are never written in the config",
                        ));
                    }
                }
                (None, Some(_)) => {}
            }
            if m.after == AfterProcessing::Move && m.move_to.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid(
                    format!("{key}.move_to"),
                    "`after = \"move\"` needs the folder to move to",
                ));
            }
            if m.poll_interval_secs == 0 {
                return Err(ConfigError::invalid(
                    format!("{key}.poll_interval_secs"),
                    "must be greater than 0",
                ));
            }
        }

        let smtp = &self.smtp;
        if smtp.transport == SmtpTransport::Smtp && smtp.host.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(
                "smtp.host",
                "the smtp transport needs a host",
            ));
        }
        if smtp.username.is_some() && smtp.password.is_none() {
            return Err(ConfigError::invalid(
                "smtp.password",
                "a username is set but no password source (`env` or `file`)",
            ));
        }
        if smtp.retry_base_secs == 0 {
            return Err(ConfigError::invalid(
                "smtp.retry_base_secs",
                "must be greater than 0",
            ));
        }
        if smtp.timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "smtp.timeout_secs",
                "must be greater than 0",
            ));
        }

        let ext = self
            .organisations
            .file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("csv" | "xlsx")) {
            return Err(ConfigError::invalid(
                "organisations.file",
                "must be a .csv or .xlsx file",
            ));
        }

        let mut form_ids = HashSet::new();
        for (i, f) in self.forms.iter().enumerate() {
            let key = format!("form[{i}]");
            if !form_ids.insert(f.id.clone()) {
                return Err(ConfigError::invalid(
                    format!("{key}.id"),
                    format!("form id `{}` is used twice", f.id),
                ));
            }
            if f.fields.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.field"),
                    "a form needs fields",
                ));
            }
            let mut keys = HashSet::new();
            for (j, fd) in f.fields.iter().enumerate() {
                if !keys.insert(fd.key.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.field[{j}].key"),
                        format!("key `{}` is used twice", fd.key),
                    ));
                }
                if fd.labels.iter().all(|l| l.trim().is_empty()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.field[{j}].labels"),
                        "needs at least one label",
                    ));
                }
            }
        }

        let mailbox_names: HashSet<MailboxName> =
            self.mailboxes.iter().map(|m| m.name.clone()).collect();
        let mut campaign_ids = HashSet::new();
        for (i, c) in self.campaigns.iter_mut().enumerate() {
            let key = format!("campaign[{i}]");
            if !campaign_ids.insert(c.id.clone()) {
                return Err(ConfigError::invalid(
                    format!("{key}.id"),
                    format!("campaign id `{}` is used twice", c.id),
                ));
            }
            let tz = c.tz();
            for m in &c.mailboxes {
                if !mailbox_names.contains(m) {
                    return Err(ConfigError::invalid(
                        format!("{key}.mailboxes"),
                        format!("no [[mailbox]] is named `{m}`"),
                    ));
                }
            }
            if c.deadlines.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.deadline"),
                    "a campaign needs at least one deadline",
                ));
            }
            let mut dl_ids = HashSet::new();
            for (j, d) in c.deadlines.iter_mut().enumerate() {
                let dkey = format!("{key}.deadline[{j}]");
                if !dl_ids.insert(d.id.clone()) {
                    return Err(ConfigError::invalid(
                        format!("{dkey}.id"),
                        format!("deadline id `{}` is used twice", d.id),
                    ));
                }
                (d.due_at, d.due_is_day) = parse_due(&d.due.0, tz)
                    .map_err(|m| ConfigError::invalid(format!("{dkey}.due"), m))?;
                if d.requires.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{dkey}.require"),
                        "say what is required, e.g. [[campaign.deadline.require]] kind = \"recommendation_form\"",
                    ));
                }
                for (k, r) in d.requires.iter().enumerate() {
                    if r.kind.is_some() != r.any_of.is_empty() {
                        return Err(ConfigError::invalid(
                            format!("{dkey}.require[{k}]"),
                            "give either `kind = \"photo\"` or `any_of = [\"photo\", \"video\"]`",
                        ));
                    }
                    if r.min_count == Some(0) {
                        return Err(ConfigError::invalid(
                            format!("{dkey}.require[{k}].min_count"),
                            "must be at least 1",
                        ));
                    }
                    if r.name_has.iter().any(|w| w.trim().is_empty()) {
                        return Err(ConfigError::invalid(
                            format!("{dkey}.require[{k}].name_has"),
                            "a word may not be empty, e.g. name_has = [\"线上\"]",
                        ));
                    }
                }
            }
        }

        let sch = &self.schedule;
        for (i, a) in sch.coordinators.iter().enumerate() {
            if !a.contains('@') {
                return Err(ConfigError::invalid(
                    format!("schedule.coordinators[{i}]"),
                    format!("`{a}` is not a mail address"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("example config is valid")
    }

    #[test]
    fn example_config_models_the_jiangsu_and_kepuyue_notices() {
        let c = example();
        let js = c.campaign(&"js-2025".into()).unwrap();
        let ids: Vec<_> = js.deadlines.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["recommend", "summary"]);
        let kp = c.campaign(&"kepuyue-2025".into()).unwrap();
        assert_eq!(kp.deadlines[0].id.as_str(), "summary");
        assert!(c.forms.iter().any(|f| f.name == "推荐表"));
        assert!(c.forms.iter().any(|f| f.name == "统计表"));
    }

    #[test]
    fn a_date_due_means_the_end_of_that_day_in_shanghai() {
        let (t, day) = parse_due("2025-05-06", chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(
            (t.to_rfc3339().as_str(), day),
            ("2025-05-06T15:59:59+00:00", true)
        );
        let (t, day) = parse_due("2025-05-07T12:00", chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(
            (t.to_rfc3339().as_str(), day),
            ("2025-05-07T04:00:00+00:00", false)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let text = EXAMPLE_TOML.replace("due = \"2025-05-06\"", "due = \"5月6日\"");
        let err = Config::from_toml(&text, Path::new("x.toml"), Path::new(".")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("campaign[0].deadline[0].due"), "{msg}");

        let text = EXAMPLE_TOML.replace(
            "reminder_cron = \"0 0 9 * * *\"",
            "reminder_cron = \"0 9 * * *\"",
        );
        let err = Config::from_toml(&text, Path::new("x.toml"), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("reminder_cron"), "{err}");
        assert!(err.to_string().contains("6 fields"), "{err}");

        let text = EXAMPLE_TOML.replace("# retry_base_secs = 30", "retry_base_secs = 0");
        let err = Config::from_toml(&text, Path::new("x.toml"), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("smtp.retry_base_secs"), "{err}");
    }

    #[test]
    fn name_has_takes_words_and_an_empty_one_is_named() {
        let good = EXAMPLE_TOML.replace(
            "kind = \"summary_report\"\n[[campaign.deadline.require]]\nkind = \"statistics_form\"",
            "kind = \"summary_report\"\nname_has = [\"总结\"]\n[[campaign.deadline.require]]\nkind = \"statistics_form\"",
        );
        assert_ne!(good, EXAMPLE_TOML);
        let c = Config::from_toml(&good, Path::new("x.toml"), Path::new(".")).unwrap();
        assert_eq!(c.campaigns[0].deadlines[1].requires[0].name_has, ["总结"]);
        let bad = good.replace("name_has = [\"总结\"]", "name_has = [\" \"]");
        let err = Config::from_toml(&bad, Path::new("x.toml"), Path::new(".")).unwrap_err();
        assert!(
            err.to_string()
                .contains("campaign[0].deadline[1].require[0].name_has"),
            "{err}"
        );
    }

    #[test]
    fn the_database_password_comes_from_a_secret_and_is_encoded() {
        let file = std::env::temp_dir().join(format!("baosong-pw-{}", std::process::id()));
        std::fs::write(&file, "p@ss:w/rd\n").unwrap();
        let store = StoreConfig {
            database: "postgres://baosong@db.example/baosong".into(),
            password: Some(Secret {
                env: None,
                file: Some(file.clone()),
            }),
            ..StoreConfig::default()
        };
        assert_eq!(
            store.url().unwrap(),
            "postgres://baosong:p%40ss%3Aw%2Frd@db.example/baosong"
        );
        let both = StoreConfig {
            database: "postgres://baosong:x@db.example/baosong".into(),
            ..store
        };
        assert!(both.url().unwrap_err().to_string().contains("not both"));
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = format!("{EXAMPLE_TOML}\n[store2]\nx = 1\n");
        let err = Config::from_toml(&text, Path::new("x.toml"), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("store2"), "{err}");
    }
}

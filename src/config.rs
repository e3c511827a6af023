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
    pub fn is_retryable(&self) -> bool {
        false
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
    /// Seconds between polls where IDLE is not offered.
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
}

fn default_folder() -> String {
    "INBOX".into()
}
fn default_poll() -> u64 {
    300
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
    pub from: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Domain of the Message-IDs we make; mail citing it is ours and never answered.
    #[serde(default = "default_msgid_domain")]
    pub message_id_domain: String,
    /// Most acknowledgements to one address per hour.
    #[serde(default = "default_ack_rate")]
    pub ack_per_recipient_per_hour: u32,
    /// Folder with the operator's mail templates; the built-in ones otherwise.
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// First delay before a failed send is tried again, in seconds; it doubles
    /// with each attempt up to 2 hours.
    #[serde(default = "default_retry_base")]
    pub retry_base_secs: u64,
}

fn default_outdir() -> PathBuf {
    PathBuf::from("outbox")
}
fn default_from() -> String {
    "报送助手 <baosong@localhost>".into()
}
fn default_msgid_domain() -> String {
    "baosong.invalid".into()
}
fn default_ack_rate() -> u32 {
    5
}
fn default_retry_base() -> u64 {
    30
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
            templates: None,
            retry_base_secs: default_retry_base(),
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
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Words in a subject or file name that point to this campaign (e.g. `科普月`).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Directory categories the notice addresses (e.g. `设区市科技局`); empty: every unit.
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(rename = "deadline")]
    pub deadlines: Vec<DeadlineConfig>,
}

fn default_tz() -> String {
    "Asia/Shanghai".into()
}

impl CampaignConfig {
    pub fn tz(&self) -> Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
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
    pub due: String,
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
    pub kind: DocumentKind,
    /// Forms needed, each separately (e.g. `["scan", "electronic"]`); empty = any one.
    #[serde(default)]
    pub forms: Vec<DocForm>,
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
    /// The instant the deadline falls, in UTC.
    pub fn due_instant(&self, tz: Tz) -> Result<DateTime<Utc>, String> {
        parse_due(&self.due, tz)
    }

    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.to_string())
    }
}

/// `2025-05-06` means the end of that day; `2025-05-07T12:00[:00]` is exact.
pub fn parse_due(due: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let local = if let Ok(d) = NaiveDate::parse_from_str(due, "%Y-%m-%d") {
        d.and_hms_opt(23, 59, 59).ok_or("invalid date")?
    } else if let Ok(dt) = NaiveDateTime::parse_from_str(due, "%Y-%m-%dT%H:%M:%S") {
        dt
    } else if let Ok(dt) = NaiveDateTime::parse_from_str(due, "%Y-%m-%dT%H:%M") {
        dt
    } else if let Ok(dt) = DateTime::parse_from_rfc3339(due) {
        return Ok(dt.with_timezone(&Utc));
    } else {
        return Err(format!(
            "`{due}` is not a date (2025-05-06) or a local time (2025-05-07T12:00)"
        ));
    };
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("`{due}` does not exist in {tz}"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Cron (6 fields, seconds first) for the reminder run.
    #[serde(default = "default_reminder_cron")]
    pub reminder_cron: String,
    /// Days before a deadline at which a reminder is due.
    #[serde(default = "default_offsets")]
    pub reminder_days_before: Vec<u32>,
    #[serde(default = "default_digest_cron")]
    pub digest_cron: String,
    /// Who gets the digest.
    #[serde(default)]
    pub coordinators: Vec<String>,
    /// Time zone the cron lines are read in.
    #[serde(default = "default_tz")]
    pub timezone: String,
}

fn default_reminder_cron() -> String {
    "0 0 9 * * *".into()
}
fn default_digest_cron() -> String {
    "0 30 8 * * Mon-Fri".into()
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
            timezone: default_tz(),
        }
    }
}

/// The example configuration shipped in the repository, used when no `--config` is given.
pub const EXAMPLE_TOML: &str = include_str!("../config.example.toml");

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
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
        Ok(config)
    }

    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The database URL with a relative SQLite path resolved.
    pub fn database_url(&self) -> String {
        match self.store.database.strip_prefix("sqlite://") {
            Some(rest) if !rest.starts_with('/') && !rest.starts_with(":memory:") => {
                format!("sqlite://{}", self.resolve(Path::new(rest)).display())
            }
            _ => self.store.database.clone(),
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

    fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.store;
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
        if !smtp.from.contains('@') {
            return Err(ConfigError::invalid(
                "smtp.from",
                "must contain a mail address",
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

        let mut campaign_ids = HashSet::new();
        for (i, c) in self.campaigns.iter().enumerate() {
            let key = format!("campaign[{i}]");
            if !campaign_ids.insert(c.id.clone()) {
                return Err(ConfigError::invalid(
                    format!("{key}.id"),
                    format!("campaign id `{}` is used twice", c.id),
                ));
            }
            let tz: Tz = c.timezone.parse().map_err(|_| {
                ConfigError::invalid(
                    format!("{key}.timezone"),
                    format!("`{}` is not an IANA time zone", c.timezone),
                )
            })?;
            for m in &c.mailboxes {
                if self.mailbox(m).is_none() {
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
            for (j, d) in c.deadlines.iter().enumerate() {
                let dkey = format!("{key}.deadline[{j}]");
                if !dl_ids.insert(d.id.clone()) {
                    return Err(ConfigError::invalid(
                        format!("{dkey}.id"),
                        format!("deadline id `{}` is used twice", d.id),
                    ));
                }
                d.due_instant(tz)
                    .map_err(|m| ConfigError::invalid(format!("{dkey}.due"), m))?;
                if d.requires.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{dkey}.require"),
                        "say what is required, e.g. [[campaign.deadline.require]] kind = \"recommendation_form\"",
                    ));
                }
            }
        }

        let sch = &self.schedule;
        for (key, expr) in [
            ("schedule.reminder_cron", &sch.reminder_cron),
            ("schedule.digest_cron", &sch.digest_cron),
        ] {
            expr.parse::<cron::Schedule>().map_err(|e| {
                ConfigError::invalid(
                    key,
                    format!("`{expr}` is not a cron line with 6 fields (seconds first): {e}"),
                )
            })?;
        }
        sch.timezone.parse::<Tz>().map_err(|_| {
            ConfigError::invalid(
                "schedule.timezone",
                format!("`{}` is not an IANA time zone", sch.timezone),
            )
        })?;
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
        let t = parse_due("2025-05-06", chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-05-06T15:59:59+00:00");
        let t = parse_due("2025-05-07T12:00", chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-05-07T04:00:00+00:00");
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
        assert!(err.to_string().contains("schedule.reminder_cron"), "{err}");

        let text = EXAMPLE_TOML.replace("# retry_base_secs = 30", "retry_base_secs = 0");
        let err = Config::from_toml(&text, Path::new("x.toml"), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("smtp.retry_base_secs"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = format!("{EXAMPLE_TOML}\n[store2]\nx = 1\n");
        let err = Config::from_toml(&text, Path::new("x.toml"), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("store2"), "{err}");
    }
}

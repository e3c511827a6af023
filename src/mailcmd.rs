//! Commands in a coordinator's reply to a digest or an ack, read from the
//! reply's own text: the mail it quotes (as Outlook, 163 web mail, QQ Mail,
//! Foxmail and `>`-quoting clients put it below) is cut off first, because
//! a quoted digest holds lines that look like commands. Pure: no I/O.
//!
//! A line is a command when it starts with a verb (`指派`, `暂停提醒`,
//! `恢复提醒`, `忽略`, `重新识别`, `汇总表`, `帮助`); other lines (greetings, a
//! signature) are prose and ignored. A verb whose arguments cannot be read
//! is kept as an error, so the answer can say what was wrong. Full-width
//! digits and signs, Chinese and ASCII punctuation and any spacing are read
//! alike.
//!
//! Whether a reply may be obeyed at all is [`authority`]'s question.

use std::fmt;

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, PartType};

use crate::fold::{clean_line, half_width};
use crate::trust::AuthVerdict;

/// What a command points at: a stored message (`#42`) or a failed send (`#S3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Message(i64),
    Send(i64),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message(n) => write!(f, "#{n}"),
            Self::Send(n) => write!(f, "#S{n}"),
        }
    }
}

impl Item {
    /// `42`, `#42`, `＃４２`, `42号`, `S3`, `#s3`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = half_width(s.trim());
        let s = s.trim_start_matches('#').trim_start_matches('第');
        let s = s.trim_end_matches('号');
        let (send, digits) = match s.strip_prefix(['S', 's']) {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 15 {
            return None;
        }
        let n: i64 = digits.parse().ok()?;
        Some(if send {
            Self::Send(n)
        } else {
            Self::Message(n)
        })
    }
}

/// What a coordinator can ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The message was sent by this unit (id, name or alias).
    Assign {
        message: i64,
        unit: String,
    },
    PauseReminders {
        unit: String,
    },
    ResumeReminders {
        unit: String,
    },
    /// Spam, or not a submission: listed no more.
    Ignore {
        item: Item,
    },
    /// Read one stored message again.
    Reprocess {
        message: i64,
    },
    /// The consolidated spreadsheet, now.
    Spreadsheet,
    Help,
}

/// The kind of a command, as the audit log stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Assign,
    PauseReminders,
    ResumeReminders,
    Ignore,
    Reprocess,
    Spreadsheet,
    Help,
    /// A line that starts with a verb but could not be read.
    Invalid,
    /// `baosong digest --now`: the digest enqueued by hand.
    Digest,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assign => "assign",
            Self::PauseReminders => "pause",
            Self::ResumeReminders => "resume",
            Self::Ignore => "ignore",
            Self::Reprocess => "reprocess",
            Self::Spreadsheet => "spreadsheet",
            Self::Help => "help",
            Self::Invalid => "invalid",
            Self::Digest => "digest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Assign,
            Self::PauseReminders,
            Self::ResumeReminders,
            Self::Ignore,
            Self::Reprocess,
            Self::Spreadsheet,
            Self::Help,
            Self::Invalid,
            Self::Digest,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl Command {
    pub fn verb(&self) -> Verb {
        match self {
            Self::Assign { .. } => Verb::Assign,
            Self::PauseReminders { .. } => Verb::PauseReminders,
            Self::ResumeReminders { .. } => Verb::ResumeReminders,
            Self::Ignore { .. } => Verb::Ignore,
            Self::Reprocess { .. } => Verb::Reprocess,
            Self::Spreadsheet => Verb::Spreadsheet,
            Self::Help => Verb::Help,
        }
    }

    /// What it acts on, for the audit log: `#42`, a unit as written.
    pub fn target(&self) -> Option<String> {
        match self {
            Self::Assign { message, unit } => Some(format!("#{message} {unit}")),
            Self::PauseReminders { unit } | Self::ResumeReminders { unit } => Some(unit.clone()),
            Self::Ignore { item } => Some(item.to_string()),
            Self::Reprocess { message } => Some(format!("#{message}")),
            Self::Spreadsheet | Self::Help => None,
        }
    }
}

impl fmt::Display for Command {
    /// The command as a coordinator would write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Assign { message, unit } => write!(f, "指派 #{message} {unit}"),
            Self::PauseReminders { unit } => write!(f, "暂停提醒 {unit}"),
            Self::ResumeReminders { unit } => write!(f, "恢复提醒 {unit}"),
            Self::Ignore { item } => write!(f, "忽略 {item}"),
            Self::Reprocess { message } => write!(f, "重新识别 #{message}"),
            Self::Spreadsheet => f.write_str("汇总表"),
            Self::Help => f.write_str("帮助"),
        }
    }
}

/// One command of a reply: the line it came from, and the command or why
/// it could not be read (said to the coordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: String,
    pub command: Result<Command, String>,
}

/// Verbs at the start of a line; longer spellings first.
const VERBS: &[(&str, Verb)] = &[
    ("暂停提醒", Verb::PauseReminders),
    ("停止提醒", Verb::PauseReminders),
    ("恢复提醒", Verb::ResumeReminders),
    ("继续提醒", Verb::ResumeReminders),
    ("重新识别", Verb::Reprocess),
    ("重新处理", Verb::Reprocess),
    ("发送汇总表", Verb::Spreadsheet),
    ("汇总表", Verb::Spreadsheet),
    ("指派", Verb::Assign),
    ("忽略", Verb::Ignore),
    ("帮助", Verb::Help),
    ("help", Verb::Help),
];

/// Lines longer than this are prose, whatever they start with.
const MAX_LINE_CHARS: usize = 120;
/// A reply that asks for more is cut here: nobody types this many by hand.
pub const MAX_COMMANDS: usize = 30;

/// The commands of a reply's own text.
pub fn parse(body: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (shown, line) in own_lines(body) {
        out.extend(parse_line(&shown, &line));
        if out.len() >= MAX_COMMANDS {
            out.truncate(MAX_COMMANDS);
            break;
        }
    }
    out
}

/// The commands of a raw reply: its top-level text (not the text of mail
/// forwarded inside it), then [`parse`].
pub fn read(raw: &[u8]) -> Vec<Entry> {
    parse(&reply_text(raw))
}

/// Whether the reply's own text mentions a verb or an item number without
/// forming a command: worth answering with the help text.
pub fn looks_like_a_try(body: &str) -> bool {
    own_lines(body).iter().any(|(_, l)| {
        VERBS.iter().any(|(v, _)| l.contains(v))
            || l.split('#').skip(1).any(|rest| {
                rest.trim_start_matches(['S', 's'])
                    .starts_with(|c: char| c.is_ascii_digit())
            })
    })
}

/// The reply's top-level text body; HTML converted when there is no plain part.
pub fn reply_text(raw: &[u8]) -> String {
    let Some(msg) = MessageParser::new().parse(raw) else {
        return String::new();
    };
    let Some(part) = msg
        .text_body
        .first()
        .and_then(|id| msg.parts.get(*id as usize))
    else {
        return String::new();
    };
    match &part.body {
        PartType::Text(t) => t.replace("\r\n", "\n"),
        PartType::Html(h) => crate::intake::html_to_text(h),
        _ => String::new(),
    }
}

/// The lines the coordinator wrote, up to where the quoted mail starts,
/// without `>` lines and blank ones: each as shown back to them (spacing
/// tidied) and normalised for reading.
fn own_lines(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for raw in body.lines() {
        let line = normalise(raw);
        if line.starts_with('>') {
            continue;
        }
        if starts_quote(&line) {
            break;
        }
        if !line.is_empty() {
            out.push((
                clean_line(&raw.replace("&nbsp;", " "), MAX_LINE_CHARS),
                line,
            ));
        }
    }
    out
}

/// Half width, `&nbsp;` (QQ Mail's plain text keeps the entity) and
/// no-break spaces as spaces, zero-width characters gone, runs of spaces
/// one, trimmed.
fn normalise(line: &str) -> String {
    let line = line
        .replace("&nbsp;", " ")
        .replace("&gt;", ">")
        .replace("&lt;", "<");
    let line: String = half_width(&line)
        .chars()
        .filter(|c| !matches!(c, '\u{200B}'..='\u{200D}' | '\u{FEFF}'))
        .map(|c| if c == '\u{A0}' { ' ' } else { c })
        .collect();
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first line of the quoted mail, as each client writes it.
fn starts_quote(line: &str) -> bool {
    let lower = line.to_lowercase();
    let rule = lower.chars().count() >= 8 && lower.chars().all(|c| "-_=* ".contains(c));
    let marked_rule = lower.starts_with("---")
        && [
            "原始邮件",
            "邮件原件",
            "原邮件",
            "转发",
            "original",
            "forwarded",
        ]
        .iter()
        .any(|w| lower.contains(w));
    let header = [
        "发件人:",
        "发件人 :",
        "from:",
        "发送时间:",
        "sent:",
        "date:",
        "主题:",
        "subject:",
    ]
    .iter()
    .any(|h| lower.starts_with(h));
    // 163: `在 2025-06-20 08:30:00，"…" <…> 写道：`; Foxmail: `… 于 … 写道：`;
    // Gmail, Apple Mail, Thunderbird: `On …, … wrote:`; 163 in English: `At …, … wrote:`.
    let wrote = lower.ends_with("写道:") || lower.ends_with("写道") || lower.ends_with("wrote:");
    rule || marked_rule || header || wrote
}

/// Separators between a verb and its arguments, and around items.
fn is_sep(c: char) -> bool {
    c.is_whitespace() || matches!(c, ':' | ',' | ';' | '、' | '，' | '：' | '；')
}

/// Leading list markers people type before each line: `1.`, `1、`, `(1)`, `-`, `•`.
fn strip_marker(line: &str) -> &str {
    let t = line
        .trim_start_matches(['-', '*', '•', '·', '・'])
        .trim_start();
    if t.len() != line.len() {
        return t;
    }
    let digits = line.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits <= 2 {
        let rest = &line[digits..];
        if let Some(r) = rest.strip_prefix(['.', '、', ')']) {
            return r.trim_start();
        }
    }
    if let Some(rest) = line.strip_prefix('(') {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0
            && let Some(r) = rest[digits..].strip_prefix(')')
        {
            return r.trim_start();
        }
    }
    line
}

/// The commands of one line; `shown` is how the answer quotes it.
fn parse_line(shown: &str, line: &str) -> Vec<Entry> {
    if line.chars().count() > MAX_LINE_CHARS {
        return Vec::new();
    }
    let body = strip_marker(line)
        .trim_end_matches(['。', '.', ';', '；', '!', '！', ',', '，', '、', ' '])
        .trim();
    let lower = body.to_lowercase();
    let Some((word, verb)) = VERBS
        .iter()
        .find(|(w, _)| lower.starts_with(&w.to_lowercase()))
    else {
        return Vec::new();
    };
    let rest = body
        .get(word.len()..)
        .unwrap_or_default()
        .trim_start_matches(is_sep)
        .trim();
    let entry = |command| Entry {
        line: shown.to_owned(),
        command,
    };
    match verb {
        // Bare words: with anything after them the line is prose
        // (`汇总表里南京的数字不对`).
        Verb::Spreadsheet | Verb::Help => {
            if !rest.is_empty() {
                return Vec::new();
            }
            let command = if *verb == Verb::Help {
                Command::Help
            } else {
                Command::Spreadsheet
            };
            vec![entry(Ok(command))]
        }
        Verb::PauseReminders | Verb::ResumeReminders => {
            let unit = unit_text(rest);
            let command = if unit.is_empty() || is_placeholder(&unit) {
                Err(format!("“{word}”后请写具体的单位，例如：{word} 南通市科协"))
            } else if *verb == Verb::PauseReminders {
                Ok(Command::PauseReminders { unit })
            } else {
                Ok(Command::ResumeReminders { unit })
            };
            vec![entry(command)]
        }
        Verb::Assign => {
            let (first, unit) = match (split_item(rest), rest.rsplit_once(is_sep)) {
                // The unit first, the number last: `指派 南京市科技局 #42`.
                ((i, _), Some((u, last)))
                    if Item::parse(i).is_none() && Item::parse(last).is_some() =>
                {
                    (last, u)
                }
                (split, _) => split,
            };
            let unit = unit_text(unit);
            let command = match Item::parse(first) {
                Some(Item::Message(message)) if !unit.is_empty() && !is_placeholder(&unit) => {
                    Ok(Command::Assign { message, unit })
                }
                Some(Item::Send(_)) => {
                    Err("“指派”只用于邮件编号（如 #42），不用于发送失败的邮件".into())
                }
                _ => Err("“指派”后请写邮件编号和单位，例如：指派 #42 南京市科技局".into()),
            };
            vec![entry(command)]
        }
        Verb::Ignore | Verb::Reprocess => {
            let items: Vec<&str> = rest.split(is_sep).filter(|s| !s.is_empty()).collect();
            if items.is_empty() {
                return vec![entry(Err(format!("“{word}”后请写编号，例如：{word} #43")))];
            }
            items
                .into_iter()
                .map(|s| {
                    let command = match (verb, Item::parse(s)) {
                        (Verb::Ignore, Some(item)) => Ok(Command::Ignore { item }),
                        (Verb::Reprocess, Some(Item::Message(message))) => {
                            Ok(Command::Reprocess { message })
                        }
                        (Verb::Reprocess, Some(Item::Send(_))) => {
                            Err("“重新识别”只用于邮件编号（如 #44）".into())
                        }
                        _ => Err(format!("“{s}”不是编号，请写成 #43 这样")),
                    };
                    entry(command)
                })
                .collect()
        }
        Verb::Invalid | Verb::Digest => Vec::new(),
    }
}

/// The words the digest's examples put where a unit goes: copied as they
/// are, or read in a quoted digest, they name no unit.
fn is_placeholder(unit: &str) -> bool {
    ["单位名称", "单位全称"].iter().any(|p| unit.starts_with(p)) || unit == "单位"
}

/// The item at the start of `s` (`#42`, `第42号`, `S3`) and the rest,
/// with or without a space between them (`指派#42南京市科技局`).
fn split_item(s: &str) -> (&str, &str) {
    let mut end = 0;
    let mut digits = false;
    for (i, c) in s.char_indices() {
        let ok = match c {
            '#' | '＃' | '第' => !digits && end == i,
            'S' | 's' => !digits,
            '0'..='9' => {
                digits = true;
                true
            }
            '号' => digits,
            _ => false,
        };
        if !ok {
            break;
        }
        end = i + c.len_utf8();
        if c == '号' {
            break;
        }
    }
    (&s[..end], &s[end..])
}

/// A unit as written, without the particles and quotes around it
/// (`给“南京市科技局”` → `南京市科技局`).
fn unit_text(s: &str) -> String {
    let s = s.trim_start_matches(is_sep);
    let s = ["给", "到", "为", "->", "=>", "→"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    s.trim_matches(|c: char| {
        is_sep(c)
            || matches!(
                c,
                '"' | '\'' | '“' | '”' | '‘' | '’' | '「' | '」' | '《' | '》'
            )
    })
    .to_owned()
}

/// One mail of ours a reply cites, as the outbox knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cited {
    /// Recipients, lower case.
    pub to: Vec<String>,
    /// When it was sent; None while it has not been.
    pub sent_at: Option<DateTime<Utc>>,
    /// A digest, an ack or an answer to a command: mail a coordinator may
    /// answer with commands (a reminder is not).
    pub answerable: bool,
}

/// How long a digest or ack stays a key to command replies.
pub const CITED_FOR_DAYS: i64 = 14;

/// What to do with a mail as a command reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// Not from a coordinator, or citing no mail of ours: ordinary mail.
    None,
    /// A coordinator's reply to one of our mails that was sent to them
    /// within [`CITED_FOR_DAYS`], not failed by a trusted server: obey it.
    Obey,
    /// It claims to be one and is not: stored as ordinary mail, never obeyed.
    Refuse(String),
}

/// Whether a mail from `from` (lower case) that cites our Message-IDs
/// `cites` (those of our domain among In-Reply-To and References), of which
/// `found` are in our outbox, may be obeyed. The random part of a
/// Message-ID we sent to that address is the capability; a trusted
/// server's failing verdict overrides it.
pub fn authority(
    from: &str,
    coordinators: &[String],
    cites_ours: bool,
    found: &[Cited],
    verdict: AuthVerdict,
    now: DateTime<Utc>,
) -> Authority {
    if !coordinators.iter().any(|c| c.eq_ignore_ascii_case(from)) || !cites_ours {
        return Authority::None;
    }
    if verdict == AuthVerdict::Fail {
        return Authority::Refuse(
            "收件服务器判定发件人身份验证失败（DMARC/SPF），可能是冒充的".into(),
        );
    }
    let to_them: Vec<&Cited> = found
        .iter()
        .filter(|c| c.answerable && c.to.iter().any(|t| t.eq_ignore_ascii_case(from)))
        .collect();
    if to_them.is_empty() {
        return Authority::Refuse("所回复的邮件不是本系统发给该协调人的汇总或回执".into());
    }
    let since = now - chrono::Duration::days(CITED_FOR_DAYS);
    if !to_them
        .iter()
        .any(|c| c.sent_at.is_some_and(|t| t >= since && t <= now))
    {
        return Authority::Refuse(format!(
            "所回复的邮件已超过{CITED_FOR_DAYS}天，请回复最新一期汇总"
        ));
    }
    Authority::Obey
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(body: &str) -> Vec<Result<Command, String>> {
        parse(body).into_iter().map(|e| e.command).collect()
    }

    fn assign(message: i64, unit: &str) -> Result<Command, String> {
        Ok(Command::Assign {
            message,
            unit: unit.into(),
        })
    }

    #[test]
    fn chinese_and_ascii_punctuation_and_full_width_digits_read_alike() {
        for line in [
            "指派 #42 南京市科技局",
            "指派：#42，南京市科技局。",
            "指派＃４２　南京市科技局",
            "指派#42 给“南京市科技局”",
            "1. 指派 42号 南京市科技局",
            "（1）指派 #42 南京市科技局；",
            "指派  ＃42、南京市科技局",
            "指派#42南京市科技局",
            "指派 南京市科技局 #42",
        ] {
            assert_eq!(commands(line), [assign(42, "南京市科技局")], "{line}");
        }
    }

    #[test]
    fn every_verb_is_read() {
        let body =
            "暂停提醒 南通市科协\n恢复提醒：nt-kx\n忽略 #43、#S3\n重新识别 #44\n汇总表\n帮助";
        assert_eq!(
            commands(body),
            [
                Ok(Command::PauseReminders {
                    unit: "南通市科协".into()
                }),
                Ok(Command::ResumeReminders {
                    unit: "nt-kx".into()
                }),
                Ok(Command::Ignore {
                    item: Item::Message(43)
                }),
                Ok(Command::Ignore {
                    item: Item::Send(3)
                }),
                Ok(Command::Reprocess { message: 44 }),
                Ok(Command::Spreadsheet),
                Ok(Command::Help),
            ]
        );
    }

    #[test]
    fn prose_is_ignored_and_a_verb_without_arguments_is_an_error() {
        let body =
            "王处好，\n汇总表里南京的数字不对\n指派\n忽略 四十三\n暂停提醒 单位名称\n谢谢！\n王明";
        let got = commands(body);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[2].as_ref().unwrap_err().contains("具体的单位"));
        assert!(got[0].as_ref().unwrap_err().contains("邮件编号和单位"));
        assert!(got[1].as_ref().unwrap_err().contains("“四十三”不是编号"));
    }

    #[test]
    fn an_html_only_reply_is_read_up_to_its_quote() {
        // QQ Mail and 163 on a phone may send HTML alone; the quote's heading
        // survives the conversion to text and still ends the commands.
        let html = "<html><body><div>暂停提醒&nbsp;南通市科协</div><div>汇总表</div>\
                    <div><br></div><div style=\"font-size:12px\">\
                    ------------------&nbsp;原始邮件&nbsp;------------------</div>\
                    <div><b>发件人:</b> 报送 &lt;kjt@163.com&gt;</div>\
                    <blockquote>指派 #42 单位名称<br>忽略 #43</blockquote></body></html>";
        let raw = format!(
            "From: <a@qq.com>\r\nSubject: re\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
        );
        let text = reply_text(raw.as_bytes());
        assert_eq!(
            commands(&text),
            [
                Ok(Command::PauseReminders {
                    unit: "南通市科协".into()
                }),
                Ok(Command::Spreadsheet)
            ],
            "{text}"
        );
    }

    #[test]
    fn quoted_mail_below_the_reply_is_not_read() {
        let styles = [
            // Outlook
            "________________________________\n发件人: 江苏省科技活动周报送 <kjt@163.com>\n",
            "-----邮件原件-----\nFrom: kjt@163.com\n",
            // 163 web mail
            "在 2025-06-20 08:30:00，\"江苏省科技活动周报送\" <kjt@163.com> 写道：\n",
            // QQ Mail's plain text keeps the entities
            "------------------&nbsp;原始邮件&nbsp;------------------\n发件人:&nbsp;\"报送\"<kjt@163.com&gt;;\n",
            "On Fri, Jun 20, 2025 at 8:30 AM 报送 <kjt@163.com> wrote:\n",
        ];
        for quote in styles {
            let body =
                format!("汇总表\n\n{quote}\n回复本邮件即可处理：\n指派 #42 单位名称\n忽略 #43\n");
            assert_eq!(commands(&body), [Ok(Command::Spreadsheet)], "{quote}");
        }
        let inline = "> 指派 #42 南京市科技局\n> 忽略 #43\n忽略 #43\n";
        assert_eq!(
            commands(inline),
            [Ok(Command::Ignore {
                item: Item::Message(43)
            })]
        );
    }

    #[test]
    fn a_mention_without_a_command_is_a_try() {
        assert!(looks_like_a_try("请把#42指给南京"));
        assert!(looks_like_a_try("我想要汇总表"));
        assert!(!looks_like_a_try("收到，谢谢"));
        assert!(!looks_like_a_try(
            "谢谢\n\n在 2025-06-20 写道：\n指派 #42 x"
        ));
    }

    fn cited(to: &str, sent: &str) -> Cited {
        Cited {
            to: vec![to.into()],
            sent_at: Some(sent.parse().unwrap()),
            answerable: true,
        }
    }

    #[test]
    fn only_a_coordinator_citing_a_recent_mail_sent_to_them_is_obeyed() {
        let now: DateTime<Utc> = "2025-06-20T02:00:00Z".parse().unwrap();
        let coord = vec!["kjt@163.com".to_owned()];
        let fresh = [cited("kjt@163.com", "2025-06-20T00:30:00Z")];
        let pass = AuthVerdict::Unknown;
        assert_eq!(
            authority("kjt@163.com", &coord, true, &fresh, pass, now),
            Authority::Obey
        );
        assert_eq!(
            authority("KJT@163.com", &coord, true, &fresh, AuthVerdict::Pass, now),
            Authority::Obey
        );
        assert_eq!(
            authority("unit@nj.gov.cn", &coord, true, &fresh, pass, now),
            Authority::None
        );
        assert_eq!(
            authority("kjt@163.com", &coord, false, &[], pass, now),
            Authority::None
        );
        let refused = |a| matches!(a, Authority::Refuse(_));
        assert!(refused(authority(
            "kjt@163.com",
            &coord,
            true,
            &[],
            pass,
            now
        )));
        assert!(refused(authority(
            "kjt@163.com",
            &coord,
            true,
            &fresh,
            AuthVerdict::Fail,
            now
        )));
        let old = [cited("kjt@163.com", "2025-06-01T00:30:00Z")];
        assert!(refused(authority(
            "kjt@163.com",
            &coord,
            true,
            &old,
            pass,
            now
        )));
        let other = [cited("other@163.com", "2025-06-20T00:30:00Z")];
        assert!(refused(authority(
            "kjt@163.com",
            &coord,
            true,
            &other,
            pass,
            now
        )));
        let reminder = [Cited {
            answerable: false,
            ..fresh[0].clone()
        }];
        assert!(refused(authority(
            "kjt@163.com",
            &coord,
            true,
            &reminder,
            pass,
            now
        )));
    }
}

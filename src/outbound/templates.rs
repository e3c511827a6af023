//! The mail templates (minijinja), loaded once at startup.
//!
//! Each mail has a text and an HTML template; the text one also defines the
//! `subject()` macro. Loading parses every template and renders it once with
//! [`super::sample`] data under strict undefined-variable checking, so a typo
//! an operator makes in an edited template stops the daemon at startup with
//! the file and line, not at the first real send.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use super::{AckData, DigestData, ReminderData, ReplyData, sample};

/// Every template file, with the copy built into the binary.
const BUILTIN: [(&str, &str); 8] = [
    ("ack.txt.j2", include_str!("../../templates/ack.txt.j2")),
    ("ack.html.j2", include_str!("../../templates/ack.html.j2")),
    (
        "reminder.txt.j2",
        include_str!("../../templates/reminder.txt.j2"),
    ),
    (
        "reminder.html.j2",
        include_str!("../../templates/reminder.html.j2"),
    ),
    (
        "digest.txt.j2",
        include_str!("../../templates/digest.txt.j2"),
    ),
    (
        "digest.html.j2",
        include_str!("../../templates/digest.html.j2"),
    ),
    ("reply.txt.j2", include_str!("../../templates/reply.txt.j2")),
    (
        "reply.html.j2",
        include_str!("../../templates/reply.html.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

/// One rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The loaded, checked templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Where the files came from, for error messages (`None`: built in).
    dir: Option<PathBuf>,
}

impl Templates {
    /// The copies built into the binary.
    pub fn builtin() -> Self {
        Self::from_sources(None, BUILTIN.map(|(n, s)| (n, s.to_owned())))
            .expect("the built-in templates are checked by the tests")
    }

    /// Loads every template from `dir`; a missing or broken file is an error
    /// naming it (and the line). `None` uses the built-in copies.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let Some(dir) = dir else {
            return Ok(Self::builtin());
        };
        let mut sources = Vec::with_capacity(BUILTIN.len());
        for (name, _) in BUILTIN {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| TemplateError::Read { path, source })?;
            sources.push((name, text));
        }
        let sources: [(&str, String); 8] = sources
            .try_into()
            .expect("one source per built-in template");
        Self::from_sources(Some(dir.to_owned()), sources)
    }

    /// The file names a template directory must hold.
    pub fn file_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    fn from_sources(
        dir: Option<PathBuf>,
        sources: [(&'static str, String); 8],
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("zh_date", zh_date);
        env.add_filter("zh_datetime", zh_datetime);
        env.add_filter("zh_due", zh_due);
        env.add_filter("zh_md", zh_md);
        let mut templates = Self { env, dir };
        for (name, text) in sources {
            if let Err(e) = templates.env.add_template_owned(name, text) {
                return Err(templates.error(name, e));
            }
        }
        templates.ack(&sample::ack())?;
        templates.reminder(&sample::reminder())?;
        templates.digest(&sample::digest())?;
        templates.reply(&sample::reply())?;
        Ok(templates)
    }

    pub fn ack(&self, data: &AckData) -> Result<Rendered, TemplateError> {
        // Derived here so an edited template cannot get the rule wrong.
        let needs_action = !data.missing.is_empty()
            || !data.redo.is_empty()
            || !data.problems.is_empty()
            || data
                .files
                .iter()
                .any(|f| !f.problems.is_empty() || f.sealed == Some(false));
        let ctx = minijinja::context! {
            needs_action,
            ..minijinja::Value::from_serialize(data)
        };
        self.render("ack", &ctx)
    }

    pub fn reminder(&self, data: &ReminderData) -> Result<Rendered, TemplateError> {
        self.render("reminder", data)
    }

    pub fn digest(&self, data: &DigestData) -> Result<Rendered, TemplateError> {
        self.render("digest", data)
    }

    pub fn reply(&self, data: &ReplyData) -> Result<Rendered, TemplateError> {
        self.render("reply", data)
    }

    fn render<S: Serialize>(&self, mail: &str, ctx: &S) -> Result<Rendered, TemplateError> {
        let txt = format!("{mail}.txt.j2");
        let html = format!("{mail}.html.j2");
        let text_tmpl = self
            .env
            .get_template(&txt)
            .map_err(|e| self.error(&txt, e))?;
        let captured = text_tmpl
            .render_captured(ctx)
            .map_err(|e| self.error(&txt, e))?;
        let subject = captured
            .state()
            .call_macro("subject", &[])
            .map_err(|e| self.error(&txt, e))?;
        let text = captured.into_output();
        let html = self
            .env
            .get_template(&html)
            .and_then(|t| t.render(ctx))
            .map_err(|e| self.error(&html, e))?;
        Ok(Rendered {
            // A header is one line: whatever the template's whitespace, fold it.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: tidy_text(&text),
            html,
        })
    }

    fn error(&self, name: &str, e: minijinja::Error) -> TemplateError {
        let path = match &self.dir {
            Some(d) => d.join(e.name().unwrap_or(name)),
            None => PathBuf::from(format!("(built-in) {}", e.name().unwrap_or(name))),
        };
        let mut message = match e.kind() {
            ErrorKind::UndefinedError => "uses an unknown variable".to_owned(),
            _ => e.to_string(),
        };
        if let Some(detail) = e.detail()
            && !message.contains(detail)
        {
            message = format!("{message}: {detail}");
        }
        TemplateError::Invalid {
            path,
            line: e.line(),
            message,
        }
    }
}

/// Text mail: no trailing spaces, at most one blank line in a row, CRLF-free.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn parse_time(value: &str) -> Result<DateTime<FixedOffset>, minijinja::Error> {
    DateTime::parse_from_rfc3339(value).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("`{value}` is not a time: {e}"),
        )
    })
}

/// `2025年5月5日`
fn zh_date(value: &str) -> Result<String, minijinja::Error> {
    let t = parse_time(value)?;
    Ok(format!("{}年{}月{}日", t.year(), t.month(), t.day()))
}

/// `5月5日`
fn zh_md(value: &str) -> Result<String, minijinja::Error> {
    let t = parse_time(value)?;
    Ok(format!("{}月{}日", t.month(), t.day()))
}

/// `2025年5月5日 14:03`
fn zh_datetime(value: &str) -> Result<String, minijinja::Error> {
    let t = parse_time(value)?;
    Ok(format!(
        "{}年{}月{}日 {:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    ))
}

/// A deadline as a notice states it: `2025年5月6日24:00` for the end of a
/// day (how a bare date in the config is stored), `2025年5月7日12:00` otherwise.
fn zh_due(value: &str) -> Result<String, minijinja::Error> {
    Ok(due_text(&parse_time(value)?))
}

/// A deadline as people read it everywhere (acks, reminders, digest,
/// `status`): `2025年5月6日24:00` for the end of a day, `2025年5月7日12:00`.
pub fn due_text(t: &DateTime<FixedOffset>) -> String {
    let (h, m) = if (t.hour(), t.minute()) == (23, 59) {
        (24, 0)
    } else {
        (t.hour(), t.minute())
    };
    format!("{}年{}月{}日{}:{:02}", t.year(), t.month(), t.day(), h, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_dates_read_like_the_notice() {
        assert_eq!(
            zh_due("2025-05-06T23:59:59+08:00").unwrap(),
            "2025年5月6日24:00"
        );
        assert_eq!(
            zh_due("2025-05-07T12:00:00+08:00").unwrap(),
            "2025年5月7日12:00"
        );
        assert_eq!(
            zh_datetime("2025-05-05T14:03:00+08:00").unwrap(),
            "2025年5月5日 14:03"
        );
    }

    #[test]
    fn builtin_ack_says_what_arrived_and_what_is_missing() {
        let r = Templates::builtin().ack(&sample::ack()).unwrap();
        assert_eq!(r.subject, "回执：已收到《南京市科技活动周推荐表》");
        assert!(r.text.contains("2025年5月5日 14:03"), "{}", r.text);
        assert!(r.text.contains("南京市科学技术局"), "{}", r.text);
        assert!(r.text.contains("第3项活动简介126字"), "{}", r.text);
        assert!(
            r.text
                .contains("需修改后重新发送：推荐表电子版、推荐表盖章扫描件"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("已齐全"), "{}", r.text);
        assert!(
            r.text.contains("本次截止时间：2025年5月6日24:00"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("逾期"), "{}", r.text);
        assert!(r.html.contains("南京市推荐表.xlsx"));
    }

    #[test]
    fn html_escapes_what_units_wrote() {
        let mut d = sample::ack();
        d.org_name = Some("<b>某单位</b>".into());
        let r = Templates::builtin().ack(&d).unwrap();
        assert!(r.html.contains("&lt;b&gt;某单位"), "{}", r.html);
        assert!(r.text.contains("<b>某单位</b>"));
    }

    #[test]
    fn unknown_sender_and_late_are_said() {
        let mut d = sample::ack();
        d.org_name = None;
        d.unknown_sender = true;
        d.late = true;
        let r = Templates::builtin().ack(&d).unwrap();
        assert!(r.text.contains("未能确认贵单位名称"), "{}", r.text);
        assert!(r.text.contains("逾期"), "{}", r.text);
        assert!(r.html.contains("未能确认贵单位名称"));
    }

    #[test]
    fn readme_documents_every_variable() {
        fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        out.push(k.clone());
                        keys(v, out);
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
                _ => {}
            }
        }
        let readme = include_str!("../../templates/README.md");
        let mut all = vec!["needs_action".to_owned()];
        keys(&serde_json::to_value(sample::ack()).unwrap(), &mut all);
        keys(&serde_json::to_value(sample::reminder()).unwrap(), &mut all);
        keys(&serde_json::to_value(sample::digest()).unwrap(), &mut all);
        keys(&serde_json::to_value(sample::reply()).unwrap(), &mut all);
        for k in all {
            assert!(
                readme.contains(&format!("{k}`")) || readme.contains(&format!("{k}.")),
                "templates/README.md lacks `{k}`"
            );
        }
    }

    #[test]
    fn the_digest_leads_with_what_needs_a_person_then_changes_then_the_matrix() {
        let r = Templates::builtin().digest(&sample::digest()).unwrap();
        let at = |s: &str| {
            r.text
                .find(s)
                .unwrap_or_else(|| panic!("{s} in {}", r.text))
        };
        assert!(at("【需处理】2项") < at("【2025年6月19日 08:30以来】"));
        assert!(at("以来】") < at("【2025年江苏省"));
        assert!(
            r.text.contains("#42（新） 2025年6月19日 16:12"),
            "{}",
            r.text
        );
        assert!(r.text.contains("#S3 "), "{}", r.text);
        assert!(r.text.contains("发给 xzkjjrc@xz.gov.cn"), "{}", r.text);
        assert!(r.text.contains("指派 #编号 单位名称"), "{}", r.text);
        assert!(r.text.contains("新齐全：南京市科学技术局"), "{}", r.text);
        assert!(r.text.contains("尚未报送：徐州市科学技术局"), "{}", r.text);
        assert!(
            r.text
                .contains("特色群众性主题实践活动推荐表（5月6日截止）：共3个单位，齐全2"),
            "{}",
            r.text
        );
        // Short lines for a phone: nothing but a unit's problem list runs long.
        for line in r.text.lines().filter(|l| !l.contains("需修改")) {
            assert!(line.chars().count() <= 60, "long line: {line}");
        }
        // The help lines a quoted digest carries are not commands.
        let commands = crate::mailcmd::parse(&r.text);
        assert!(commands.iter().all(|e| e.command.is_err()), "{commands:?}");
    }

    #[test]
    fn a_command_reply_says_what_was_done_and_what_was_not() {
        let r = Templates::builtin().reply(&sample::reply()).unwrap();
        assert_eq!(r.subject, "指令处理结果（已办3条，未办1条）");
        assert!(
            r.text
                .contains("1. “指派 #42 南京市科技局”\n   ✔ 已办：#42 已指派给南京市科学技术局"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("✘ 未办：没有编号为 #43 的邮件"),
            "{}",
            r.text
        );
        assert!(r.text.contains("汇总表见附件"), "{}", r.text);
        assert!(!r.text.contains("可用的指令"), "{}", r.text);
        // Our echo of a command, quoted in a later reply, is not a command again.
        assert!(crate::mailcmd::parse(&r.text).is_empty(), "{}", r.text);
    }

    #[test]
    fn tidy_text_collapses_blank_runs() {
        assert_eq!(tidy_text("\n\na  \n\n\n\nb\n\n"), "a\n\nb\n");
    }
}

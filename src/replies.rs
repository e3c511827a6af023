//! Coordinators act by replying to the digest (or to an ack sent to them):
//! a reply is obeyed only when it comes from a configured coordinator, cites
//! the Message-ID of a digest, ack or answer we sent to that address within
//! [`mailcmd::CITED_FOR_DAYS`] days (its random part is the capability), and
//! no trusted `Authentication-Results` says the sender failed. Anything else
//! is ordinary mail and never obeyed.
//!
//! An obeyed reply is stored like every mail (never acknowledged); each of
//! its commands is done at most once, even when the mail is offered again
//! after a crash (the command log is keyed by mail and command), and all of
//! them are answered in one mail through the outbox, threaded under the
//! coordinator's. The command line runs the same commands through
//! [`Services::perform`], logged the same way.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::actions::{ActionError, Outcome, Services, outbox_row};
use crate::config::{Config, Limits};
use crate::export;
use crate::intake;
use crate::mailcmd::{self, Authority, Command, Entry, Verb};
use crate::model::{Analysis, Header, RawMessage};
use crate::outbound::{CommandResult, MailKind, ReplyData, compose, data};
use crate::store::{LogEntry, MessageId, OutboxKind, Recorded, Via};
use crate::trust;
use crate::types::MailAddress;

/// `messages.ack_reason` of a command mail: how a later pass (a duplicate
/// delivery, `reprocess`) knows it for one.
pub const COMMAND_MAIL: &str =
    "a coordinator's command reply: obeyed and answered, not acknowledged";

/// What [`Services::command_reply`] made of a mail.
#[derive(Debug)]
pub enum Handled {
    /// Not a command reply: process it as usual.
    Ordinary,
    /// It claims to be one and is not (the reason, said to coordinators):
    /// store it as ordinary mail, unanswered.
    Refused(String),
    /// Recorded, its commands done and answered.
    Obeyed(Recorded),
}

/// Who gives a command, and how it reached us.
#[derive(Debug, Clone)]
pub struct Actor {
    /// A coordinator's address, or the operator's user name.
    pub who: String,
    pub via: Via,
    /// The mail that carried it, and which of its commands it is.
    pub mail: Option<(MessageId, u32)>,
}

impl Actor {
    pub fn cli(user: &str) -> Self {
        Self {
            who: user.to_owned(),
            via: Via::Cli,
            mail: None,
        }
    }
}

/// A command mail is stored for the record only: no ack, nobody to look at it.
pub fn mark_command_mail(analysis: &mut Analysis) {
    analysis.ack.send = false;
    analysis.ack.held = false;
    analysis.ack.reason = COMMAND_MAIL.to_owned();
    analysis.attention = None;
}

/// A mail that claimed to be a coordinator's command reply and is not: no
/// ack, and listed for the coordinators with the reason.
pub fn not_obeyed(analysis: &mut Analysis, why: &str) {
    analysis.ack.send = false;
    analysis.ack.held = false;
    analysis.ack.reason = format!("not obeyed as a coordinator's command reply: {why}");
    analysis.attention = Some(format!("像是协调人的指令回复，但未执行：{why}"));
}

/// The headers of a raw mail, without reading its body or attachments, and
/// whether it is machine-made. Our own addresses do not make it so here: a
/// coordinator may reply from the contact mailbox itself. Our own Message-ID
/// and `Auto-Submitted` still do, so our answer, delivered back to a
/// coordinator address that is one of our mailboxes, is never obeyed (and
/// never answered again).
fn headers(raw: &RawMessage, config: &Config) -> (Header, Option<String>) {
    // A message larger than the limit is read for its headers only.
    let headers_only = Limits {
        max_message_bytes: 0,
        ..config.limits.clone()
    };
    let own = intake::OwnIdentity {
        addresses: Vec::new(),
        message_id_domain: config.smtp.message_id_domain.clone(),
    };
    let intake = intake::parse(&raw.bytes, &headers_only, &own);
    (intake.header, intake.auto_generated)
}

/// Whether a Message-ID (with or without `<>`) is one we generated.
fn is_ours(id: &str, domain: &str) -> bool {
    id.trim()
        .trim_matches(['<', '>'])
        .rsplit_once('@')
        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
}

impl Services {
    /// Whether `raw` is a coordinator's command reply, and if it may be
    /// obeyed, obeys and answers it.
    pub(crate) async fn command_reply(&self, raw: &RawMessage) -> Result<Handled, ActionError> {
        let config = &self.config;
        let (header, auto_generated) = headers(raw, config);
        let Some(from) = header.from.clone() else {
            return Ok(Handled::Ordinary);
        };
        if auto_generated.is_some() {
            return Ok(Handled::Ordinary);
        }
        let coordinators = &config.schedule.coordinators;
        let cites: Vec<String> = header
            .in_reply_to
            .iter()
            .chain(&header.references)
            .filter(|id| is_ours(id, &config.smtp.message_id_domain))
            .take(20)
            .cloned()
            .collect();
        if cites.is_empty() || !coordinators.iter().any(|c| c.eq_ignore_ascii_case(&from)) {
            return Ok(Handled::Ordinary);
        }
        let found = self.store.cited(&cites).await?;
        let verdict =
            trust::auth_verdict(&header.authentication_results, &config.trust.authserv_ids);
        let now = self.now();
        match mailcmd::authority(&from, coordinators, true, &found, verdict, now) {
            Authority::None => return Ok(Handled::Ordinary),
            Authority::Refuse(why) => {
                warn!(%from, origin = raw.origin.display(), why, "a command reply that may not be obeyed; stored as ordinary mail");
                return Ok(Handled::Refused(why));
            }
            Authority::Obey => {}
        }

        let mut analysis = self.analyse_bounded(raw, self.learned().await?, now).await;
        mark_command_mail(&mut analysis);
        let recorded = self.store.record(raw, &analysis, None, now).await?;
        let mail = match recorded {
            // Another copy (To one mailbox, Cc the other): the first one is obeyed.
            Recorded::Copy { .. } => return Ok(Handled::Obeyed(recorded)),
            Recorded::New { message_id, .. } => message_id,
            Recorded::Duplicate { message_id } => {
                let earlier = self.store.show_message(message_id).await?;
                if earlier.is_none_or(|d| d.message.ack_reason != COMMAND_MAIL) {
                    // Recorded before as ordinary mail: it stays that.
                    return Ok(Handled::Obeyed(recorded));
                }
                message_id
            }
        };
        let text = mailcmd::reply_text(&raw.bytes);
        let entries = mailcmd::parse(&text);
        let mut results = Vec::with_capacity(entries.len());
        for (seq, entry) in (0u32..).zip(&entries) {
            let actor = Actor {
                who: from.clone(),
                via: Via::Mail,
                mail: Some((mail, seq)),
            };
            results.push(self.obey(entry, &actor).await?);
        }
        info!(message = %mail, %from, commands = results.len(), "coordinator's command reply obeyed");
        let tried = entries.is_empty() && mailcmd::looks_like_a_try(&text);
        if entries.is_empty() && !tried {
            // `收到，谢谢`: nothing to do and nothing to answer.
            return Ok(Handled::Obeyed(recorded));
        }
        self.answer(mail, &analysis, &from, results, now).await?;
        Ok(Handled::Obeyed(recorded))
    }

    /// One command of a mail, done once: a command already in the log was
    /// done before this mail was offered again, and is only reported.
    async fn obey(
        &self,
        entry: &Entry,
        actor: &Actor,
    ) -> Result<(Verb, CommandResult), ActionError> {
        if let Some((mail, seq)) = actor.mail
            && let Some(done) = self.store.logged_command(mail, seq).await?
        {
            let verb = Verb::parse(&done.verb).unwrap_or(Verb::Invalid);
            return Ok((
                verb,
                CommandResult {
                    command: done.line,
                    ok: done.ok,
                    said: done.said,
                },
            ));
        }
        let (verb, outcome) = match &entry.command {
            Ok(command) => (
                command.verb(),
                self.perform(&entry.line, command, actor).await?,
            ),
            Err(why) => {
                let outcome = Outcome::no(why.clone());
                self.log(actor, &entry.line, Verb::Invalid, None, &outcome)
                    .await?;
                (Verb::Invalid, outcome)
            }
        };
        Ok((
            verb,
            CommandResult {
                command: entry.line.clone(),
                ok: outcome.ok,
                said: outcome.said,
            },
        ))
    }

    /// Does one command and logs it: who, when, what was asked, what was
    /// done. `line` is the command as written.
    pub async fn perform(
        &self,
        line: &str,
        command: &Command,
        actor: &Actor,
    ) -> Result<Outcome, ActionError> {
        let outcome = match command {
            Command::Assign { message, unit } => {
                self.assign(MessageId(*message), unit, &actor.who).await?
            }
            Command::PauseReminders { unit } => self.pause_reminders(unit).await?,
            Command::ResumeReminders { unit } => self.resume_reminders(unit).await?,
            Command::Ignore { item } => self.ignore(*item, &actor.who).await?,
            Command::Reprocess { message } => self.reprocess_message(MessageId(*message)).await?,
            Command::Spreadsheet => Outcome::yes("汇总表见附件".into()),
            Command::Help => Outcome::yes("指令说明见下".into()),
        };
        self.log(actor, line, command.verb(), command.target(), &outcome)
            .await?;
        Ok(outcome)
    }

    /// The audit row of a command.
    pub(crate) async fn log(
        &self,
        actor: &Actor,
        line: &str,
        verb: Verb,
        target: Option<String>,
        outcome: &Outcome,
    ) -> Result<(), ActionError> {
        let entry = LogEntry {
            at: self.now(),
            actor: actor.who.clone(),
            via: actor.via,
            mail: actor.mail.map(|(m, _)| m),
            seq: actor.mail.map(|(_, s)| s),
            line: line.to_owned(),
            verb: verb.as_str().to_owned(),
            target,
            ok: outcome.ok,
            said: outcome.said.clone(),
        };
        info!(actor = %entry.actor, via = entry.via.as_str(), verb = %entry.verb, ok = entry.ok, said = %entry.said, "coordinator command");
        self.store.log_command(&entry).await?;
        Ok(())
    }

    /// One mail answering every command of `mail`, threaded under it, with
    /// the spreadsheet when asked for; once per mail (`reply:<sha256>`).
    async fn answer(
        &self,
        mail: MessageId,
        analysis: &Analysis,
        from: &str,
        results: Vec<(Verb, CommandResult)>,
        now: DateTime<Utc>,
    ) -> Result<(), ActionError> {
        let Some(to) = MailAddress::parse(from) else {
            warn!(message = %mail, %from, "a coordinator address no mail can go to; commands done, not answered");
            return Ok(());
        };
        let spreadsheet = results.iter().any(|(v, r)| *v == Verb::Spreadsheet && r.ok);
        let help = results.is_empty()
            || results
                .iter()
                .any(|(v, _)| matches!(v, Verb::Help | Verb::Invalid));
        let config = &self.config;
        let data = ReplyData {
            to,
            generated_at: data::local(config.schedule.timezone.0, now),
            results: results.into_iter().map(|(_, r)| r).collect(),
            help,
            spreadsheet,
            original_subject: crate::fold::clean_line(
                analysis.header.subject.as_deref().unwrap_or_default(),
                data::QUOTE_CHARS,
            ),
            original_message_id: analysis.header.message_id.clone(),
            original_references: analysis.header.references.clone(),
        };
        let xlsx = if spreadsheet {
            Some(export::workbook(&self.export_data().await?)?)
        } else {
            None
        };
        let message_id =
            compose::new_message_id(&config.smtp.message_id_domain, MailKind::Reply, now);
        let msg = compose::reply(
            &self.templates,
            &data,
            xlsx.as_deref(),
            &self.stamp(analysis.ack.from_mailbox.as_ref(), &message_id, now),
        )?;
        let mut row = outbox_row(
            OutboxKind::Reply,
            &msg,
            message_id,
            format!("reply:{}", analysis.sha256),
        );
        row.related_message = Some(mail);
        if self.store.enqueue(row, now).await?.is_some() {
            info!(message = %mail, to = %data.to, "answer to the command reply queued");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_message_id_domain_is_ours() {
        let d = "baosong.kjt.example.cn";
        assert!(is_ours("<20250620.abc.digest@baosong.kjt.example.cn>", d));
        assert!(is_ours("20250620.abc.digest@BAOSONG.kjt.example.cn", d));
        assert!(!is_ours("<x@kjt.example.cn>", d));
        assert!(!is_ours("<x@evil.baosong.kjt.example.cn.evil>", d));
        assert!(!is_ours("no-at-sign", d));
    }
}

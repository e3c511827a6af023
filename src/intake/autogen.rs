//! Is a message machine-generated (so it gets no ack)? DESIGN.md invariant 5:
//! RFC 3834 plus what Zammad, RT and FreeScout check, plus our own identity.

use super::OwnIdentity;

/// The raw header fields, the sender and subject a decision needs.
pub(crate) struct Facts<'a> {
    /// Top-level header fields: name and unfolded, decoded value.
    pub headers: &'a [(String, String)],
    pub from: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub message_id: Option<&'a str>,
    /// Content-Type of the whole message, lower case, no parameters.
    pub content_type: Option<&'a str>,
}

/// Why the message is auto-generated, or None.
pub(crate) fn check(facts: &Facts<'_>, own: &OwnIdentity) -> Option<String> {
    for (name, value) in facts.headers {
        if let Some(reason) = header_reason(name, value) {
            return Some(reason);
        }
    }
    if facts.content_type == Some("multipart/report") {
        return Some("content type multipart/report".into());
    }
    if let Some(from) = facts.from {
        let local = from.split('@').next().unwrap_or("");
        let machine = matches!(
            local,
            "mailer-daemon" | "postmaster" | "no-reply" | "noreply" | "do-not-reply" | "donotreply"
        ) || local.starts_with("noreply-")
            || local.starts_with("no-reply-")
            || local.starts_with("noreply.")
            || local.starts_with("mailer-daemon");
        if machine {
            return Some(format!("sender {from}"));
        }
        if own.addresses.iter().any(|a| a.eq_ignore_ascii_case(from)) {
            return Some(format!("sender is our own address {from}"));
        }
    }
    if let Some(id) = facts.message_id
        && !own.message_id_domain.is_empty()
        && id
            .trim_matches(['<', '>'])
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&own.message_id_domain))
    {
        return Some(format!("our own Message-ID {id}"));
    }
    facts.subject.and_then(subject_reason)
}

fn header_reason(name: &str, value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    let hit = match name.to_ascii_lowercase().as_str() {
        "auto-submitted" => !v.is_empty() && v != "no",
        "precedence" | "x-precedence" => {
            matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply")
        }
        "list-id"
        | "list-unsubscribe"
        | "x-loop"
        | "x-autoreply"
        | "x-autorespond"
        | "x-autoresponder"
        | "x-ms-exchange-inbox-rules-loop"
        | "x-fc-machinegenerated" => true,
        "x-auto-response-suppress" => v.contains("all") || v.contains("autoreply"),
        "return-path" => v == "<>",
        _ => false,
    };
    hit.then(|| format!("header {name}: {}", value.trim()))
}

/// Subjects of auto-replies and bounces. Prefixes for words a person may also
/// write mid-sentence (退信, 休假), anywhere for the unmistakable ones.
fn subject_reason(subject: &str) -> Option<String> {
    let s = subject.trim().to_lowercase();
    const PREFIXES: [&str; 15] = [
        "自动回复",
        "自动答复",
        "退信",
        "系统退信",
        "休假",
        "undeliverable",
        "undelivered",
        "delivery status notification",
        "delivery failure",
        "mail delivery failed",
        "returned mail",
        "out of office",
        "automatic reply",
        "auto:",
        "autoreply",
    ];
    const ANYWHERE: [&str; 7] = [
        "自动回复",
        "自动答复",
        "系统退信",
        "退信通知",
        "undeliverable:",
        "delivery status notification",
        "automatic reply",
    ];
    (PREFIXES.iter().any(|p| s.starts_with(p)) || ANYWHERE.iter().any(|p| s.contains(p)))
        .then(|| format!("subject {}", subject.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(headers: &[(&str, &str)], from: &str, subject: &str) -> Option<String> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect();
        let own = OwnIdentity {
            addresses: vec!["kjtrcc83236071@163.com".into()],
            message_id_domain: "baosong.example.cn".into(),
        };
        check(
            &Facts {
                headers: &headers,
                from: Some(from),
                subject: Some(subject),
                message_id: Some("abc@mail.qq.com"),
                content_type: Some("multipart/mixed"),
            },
            &own,
        )
    }

    #[test]
    fn auto_submitted_other_than_no_is_auto() {
        assert_eq!(
            run(&[("Auto-Submitted", "auto-replied")], "a@qq.com", "x").unwrap(),
            "header Auto-Submitted: auto-replied"
        );
        assert!(run(&[("Auto-Submitted", "no")], "a@qq.com", "推荐表").is_none());
    }

    #[test]
    fn exchange_suppress_and_list_headers_are_auto() {
        assert!(run(&[("X-Auto-Response-Suppress", "All")], "a@b.cn", "x").is_some());
        assert!(
            run(
                &[("X-Auto-Response-Suppress", "DR, AutoReply")],
                "a@b.cn",
                "x"
            )
            .is_some()
        );
        assert!(run(&[("X-Auto-Response-Suppress", "OOF")], "a@b.cn", "x").is_none());
        assert!(run(&[("List-Id", "<kp.lists.example>")], "a@b.cn", "x").is_some());
        assert!(run(&[("Precedence", "bulk")], "a@b.cn", "x").is_some());
        assert!(run(&[("Return-Path", "<>")], "a@b.cn", "x").is_some());
    }

    #[test]
    fn qq_autoreply_subject_is_auto_generated() {
        assert!(run(&[], "a@qq.com", "自动回复: 南京市科技局推荐表").is_some());
        assert!(run(&[], "a@qq.com", "Re:自动回复：您好").is_some());
        assert!(run(&[], "a@163.com", "系统退信").is_some());
        assert!(run(&[], "a@outlook.com", "Automatic reply: 推荐表").is_some());
    }

    #[test]
    fn ordinary_subjects_are_not_auto_generated() {
        for s in [
            "Re: 推荐表",
            "回复：关于科技活动周推荐表的报送",
            "无锡市科协统计表（含退信说明）",
            "Fw: 休假前报送的推荐表",
            "Auto parts 推荐表",
        ] {
            assert!(run(&[], "a@qq.com", s).is_none(), "{s}");
        }
    }

    #[test]
    fn machine_senders_and_our_own_mail_are_auto() {
        assert!(run(&[], "mailer-daemon@qq.com", "x").is_some());
        assert!(run(&[], "noreply-abc@service.example", "x").is_some());
        assert!(run(&[], "do-not-reply@a.cn", "x").is_some());
        assert!(run(&[], "kjtrcc83236071@163.com", "x").is_some());
        assert!(run(&[], "noreplyer@a.cn", "x").is_none());
    }
}

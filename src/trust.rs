//! Whether a message may be answered automatically, and where to.
//!
//! An official mailbox that answers anyone is a relay: whoever forges a
//! sender (or sets a Reply-To) gets our server to mail a victim, quoting the
//! forger's subject. So an automatic ack goes only to a sender we know (the
//! directory, or an address a coordinator assigned), or to one whose mail
//! names a unit and carries a document the campaign asks for; never when the
//! receiving server says the sender failed DMARC or SPF; and to Reply-To
//! only within From's domain or when that address is known too. Everything
//! else waits for a coordinator. Pure logic over the parsed headers.

use crate::model::{Header, MatchedBy, OrgMatch};
use crate::types::MailAddress;

/// What a trusted receiving server concluded about the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    /// No `Authentication-Results` from a server we trust.
    Unknown,
    /// Nothing failed.
    Pass,
    /// DMARC failed, or SPF failed without a passing DKIM signature.
    Fail,
}

/// Reads the `Authentication-Results` fields (RFC 8601) of servers in
/// `trusted` (their authserv-id, case-insensitive); others are ignored,
/// because anyone can write one into a mail before sending it.
pub fn auth_verdict(fields: &[String], trusted: &[String]) -> AuthVerdict {
    let mut verdict = AuthVerdict::Unknown;
    for field in fields {
        let field = strip_comments(field);
        let mut parts = field.split(';');
        let id = parts
            .next()
            .and_then(|p| p.split_whitespace().next())
            .unwrap_or_default();
        if !trusted.iter().any(|t| t.eq_ignore_ascii_case(id)) {
            continue;
        }
        let mut dmarc_fail = false;
        let mut spf_fail = false;
        let mut dkim_pass = false;
        for part in parts {
            let Some((method, result)) = part.trim().split_once('=') else {
                continue;
            };
            let method = method.trim().to_ascii_lowercase();
            let result = result
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            match (method.as_str(), result.as_str()) {
                ("dmarc", "fail") => dmarc_fail = true,
                ("spf", "fail") => spf_fail = true,
                ("dkim", "pass") => dkim_pass = true,
                _ => {}
            }
        }
        if dmarc_fail || (spf_fail && !dkim_pass) {
            return AuthVerdict::Fail;
        }
        verdict = AuthVerdict::Pass;
    }
    verdict
}

/// RFC 5322 comments `(…)`, which may hold any text, removed.
fn strip_comments(s: &str) -> String {
    let mut depth = 0usize;
    s.chars()
        .filter(|&c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect()
}

/// Whether the sender is someone we know: listed in the directory or
/// assigned by a coordinator before.
pub fn is_known(org: &OrgMatch) -> bool {
    matches!(org.matched_by, MatchedBy::Address | MatchedBy::Manual)
}

/// Where an ack would go: Reply-To when it is a usable address in From's
/// domain or itself `known`, else From; None when neither is usable.
pub fn ack_address(header: &Header, known: impl Fn(&str) -> bool) -> Option<MailAddress> {
    let from = header.from.as_deref().and_then(MailAddress::parse);
    let reply_to = header
        .reply_to
        .as_deref()
        .and_then(MailAddress::parse)
        .filter(|rt| {
            from.as_ref().is_some_and(|f| f.domain() == rt.domain())
                || known(&rt.as_str().to_lowercase())
        });
    reply_to.or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Vec<String> {
        vec!["mx.example.cn".into()]
    }

    #[test]
    fn dmarc_fail_from_a_trusted_server_fails() {
        let f = vec!["mx.example.cn; dkim=none; spf=pass smtp.mailfrom=a.cn; dmarc=fail (p=none) header.from=gov.cn".into()];
        assert_eq!(auth_verdict(&f, &trusted()), AuthVerdict::Fail);
    }

    #[test]
    fn spf_fail_is_forgiven_by_dkim_pass() {
        let f =
            vec!["MX.EXAMPLE.CN 1; spf=fail smtp.mailfrom=a.cn; dkim=pass header.d=a.cn".into()];
        assert_eq!(auth_verdict(&f, &trusted()), AuthVerdict::Pass);
        let f = vec!["mx.example.cn; spf=fail smtp.mailfrom=a.cn; dkim=fail".into()];
        assert_eq!(auth_verdict(&f, &trusted()), AuthVerdict::Fail);
    }

    #[test]
    fn results_from_servers_we_do_not_trust_are_ignored() {
        let f = vec!["evil.example; dmarc=pass".into()];
        assert_eq!(auth_verdict(&f, &trusted()), AuthVerdict::Unknown);
        let f = vec!["mx.example.cn (dmarc=fail in a comment); dkim=pass".into()];
        assert_eq!(auth_verdict(&f, &trusted()), AuthVerdict::Pass);
    }

    #[test]
    fn reply_to_elsewhere_is_not_used_unless_known() {
        let h = Header {
            from: Some("unit@nj.gov.cn".into()),
            reply_to: Some("victim@other.example".into()),
            ..Header::default()
        };
        assert_eq!(
            ack_address(&h, |_| false).unwrap().as_str(),
            "unit@nj.gov.cn"
        );
        assert_eq!(
            ack_address(&h, |a| a == "victim@other.example")
                .unwrap()
                .as_str(),
            "victim@other.example"
        );
        let h = Header {
            from: Some("a@nj.gov.cn".into()),
            reply_to: Some("b@nj.gov.cn".into()),
            ..Header::default()
        };
        assert_eq!(ack_address(&h, |_| false).unwrap().as_str(), "b@nj.gov.cn");
    }

    #[test]
    fn an_unusable_reply_to_falls_back_to_from() {
        for rt in ["undisclosed-recipients:;", "<<>>@@", "wang wu@nj.gov.cn"] {
            let h = Header {
                from: Some("unit@nj.gov.cn".into()),
                reply_to: Some(rt.into()),
                ..Header::default()
            };
            assert_eq!(
                ack_address(&h, |_| true).unwrap().as_str(),
                "unit@nj.gov.cn"
            );
        }
        let h = Header {
            from: Some("wang wu@example.com".into()),
            ..Header::default()
        };
        assert_eq!(ack_address(&h, |_| true), None);
    }
}

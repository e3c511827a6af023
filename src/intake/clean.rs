//! What intake hands on is safe to store and to show: sender text is
//! hostile input. Display names, subjects and file names lose control
//! characters (C0 with CR/LF/TAB, DEL, C1), terminal escape sequences and
//! bidi overrides, have their white space collapsed and are capped;
//! no stored string keeps a NUL (PostgreSQL rejects `\0` in text).

/// A display name is at most this many characters.
pub(crate) const NAME_MAX: usize = 200;
/// A subject is at most this many characters.
pub(crate) const SUBJECT_MAX: usize = 1000;
/// A file name is at most this many characters, as on every file system.
const FILE_NAME_MAX: usize = 255;
/// Longest extension kept whole when a file name is cut.
const EXTENSION_MAX: usize = 16;

/// Bidi embeddings, overrides and isolates: they reorder what a reader sees
/// (`exe.xlsx` shown for `xlsx.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// One line of sender text (display name, subject, file name): escape
/// sequences and bidi controls removed, other control characters and runs
/// of white space made one space, trimmed, cut to `max` characters.
pub(crate) fn line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut count = 0;
    let mut space = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1B}' || c == '\u{9B}' {
            skip_escape(c, &mut chars);
            continue;
        }
        if is_bidi_control(c) {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            space = true;
            continue;
        }
        if space && count > 0 {
            if count + 1 >= max {
                break;
            }
            out.push(' ');
            count += 1;
        }
        space = false;
        if count >= max {
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Skips the rest of a terminal escape sequence after ESC (or C1 CSI):
/// CSI `[` parameters, intermediates and a final byte; OSC `]` up to BEL or
/// ST; otherwise the one ASCII character after ESC. Anything else is text.
fn skip_escape(first: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let csi = first == '\u{9B}' || chars.next_if_eq(&'[').is_some();
    if csi {
        while chars
            .next_if(|c| ('\u{20}'..='\u{3F}').contains(c))
            .is_some()
        {}
        chars.next_if(|c| ('\u{40}'..='\u{7E}').contains(c));
    } else if chars.next_if_eq(&']').is_some() {
        while let Some(c) = chars.next() {
            if c == '\u{7}' || (c == '\u{1B}' && chars.next_if_eq(&'\\').is_some()) {
                break;
            }
        }
    } else {
        chars.next_if(|c| ('\u{20}'..='\u{7E}').contains(c));
    }
}

/// A file name (or one folder of a path): [`line`], cut to 255 characters
/// keeping a short extension, so the type still shows.
pub(crate) fn file_name(s: &str) -> String {
    let name = line(s, usize::MAX);
    if name.chars().count() <= FILE_NAME_MAX {
        return name;
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.chars().count() <= EXTENSION_MAX);
    match ext {
        Some(ext) => {
            let keep = FILE_NAME_MAX - ext.chars().count() - 1;
            let stem: String = name.chars().take(keep).collect();
            format!("{}.{ext}", stem.trim_end())
        }
        None => name.chars().take(FILE_NAME_MAX).collect(),
    }
}

/// An address, Message-ID or link: control characters (NUL, CR, LF…) removed.
pub(crate) fn token(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// Body text: lines and tabs stay, NUL goes.
pub(crate) fn text(s: &str) -> String {
    s.replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_one_space() {
        assert_eq!(line("张\n三", NAME_MAX), "张 三");
        assert_eq!(
            line("x\r\nBcc: evil@example.com", SUBJECT_MAX),
            "x Bcc: evil@example.com"
        );
        assert_eq!(line(" a\t\u{0}\u{7F}\u{85}b  \u{3000}c ", 50), "a b c");
    }

    #[test]
    fn escape_sequences_and_bidi_overrides_are_removed() {
        assert_eq!(file_name("推荐表\u{1B}[31m.xlsx\u{1B}[0m"), "推荐表.xlsx");
        assert_eq!(file_name("a\u{1B}]0;title\u{7}b"), "ab");
        assert_eq!(file_name("a\u{9B}1;2Hb"), "ab");
        assert_eq!(file_name("统计\u{202E}xslx.exe"), "统计xslx.exe");
        assert_eq!(line("a\u{2066}b\u{2069}", 10), "ab");
        assert_eq!(line("\u{1B}推荐\u{1B}[推", 10), "推荐推");
    }

    #[test]
    fn long_text_is_cut() {
        assert_eq!(line(&"名".repeat(300), NAME_MAX).chars().count(), 200);
        assert_eq!(line(&"a ".repeat(600), SUBJECT_MAX).chars().count(), 999);
        let long = format!("{}.xlsx", "表".repeat(400));
        let cut = file_name(&long);
        assert_eq!(cut.chars().count(), 255);
        assert!(cut.ends_with("表.xlsx"));
    }

    #[test]
    fn tokens_and_text_lose_nul() {
        assert_eq!(token("<a\0b@x>\r\n"), "<ab@x>");
        assert_eq!(text("a\0b\nc\td"), "ab\nc\td");
    }
}

//! Text folding: the one place that decides when two spellings are the same.
//! Unit names, form labels, keywords and file names are compared after
//! folding full width to half width, traditional to simplified characters,
//! case, whitespace and punctuation away; names also fold synonym pairs
//! (科学技术 → 科技), labels also drop bracketed notes.

/// Full-width ASCII (digits, letters, punctuation) and the ideographic space
/// to half width.
pub fn half_width_char(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// [`half_width_char`] over a string.
pub fn half_width(s: &str) -> String {
    s.chars().map(half_width_char).collect()
}

/// Punctuation that never tells two names or labels apart, ASCII and CJK.
pub fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '、' | '，'
                | '。'
                | '：'
                | '；'
                | '（'
                | '）'
                | '《'
                | '》'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '【'
                | '】'
                | '—'
                | '－'
                | '·'
                | '・'
                | '！'
                | '？'
                | '〔'
                | '〕'
                | '「'
                | '」'
                | '…'
                | '～'
                | '﹑'
        )
}

/// Traditional characters that occur in unit names and form titles, folded to
/// simplified ones so a 港澳台 unit's 推薦表 or 科學技術協會 is recognised. A
/// short table is enough here; full conversion crates carry megabytes of data.
pub fn simplified(c: char) -> char {
    const PAIRS: &[(char, char)] = &[
        ('薦', '荐'),
        ('統', '统'),
        ('計', '计'),
        ('總', '总'),
        ('結', '结'),
        ('報', '报'),
        ('單', '单'),
        ('學', '学'),
        ('協', '协'),
        ('會', '会'),
        ('術', '术'),
        ('館', '馆'),
        ('動', '动'),
        ('簡', '简'),
        ('稱', '称'),
        ('時', '时'),
        ('間', '间'),
        ('點', '点'),
        ('聯', '联'),
        ('繫', '系'),
        ('係', '系'),
        ('電', '电'),
        ('話', '话'),
        ('號', '号'),
        ('數', '数'),
        ('經', '经'),
        ('費', '费'),
        ('員', '员'),
        ('參', '参'),
        ('與', '与'),
        ('體', '体'),
        ('導', '导'),
        ('開', '开'),
        ('機', '机'),
        ('構', '构'),
        ('場', '场'),
        ('傳', '传'),
        ('區', '区'),
        ('縣', '县'),
        ('廳', '厅'),
        ('險', '险'),
        ('發', '发'),
        ('資', '资'),
        ('國', '国'),
        ('屆', '届'),
        ('週', '周'),
        ('際', '际'),
        ('圖', '图'),
        ('書', '书'),
        ('視', '视'),
        ('頻', '频'),
        ('紹', '绍'),
        ('詳', '详'),
        ('掃', '扫'),
        ('蓋', '盖'),
        ('這', '这'),
        ('樣', '样'),
    ];
    PAIRS
        .iter()
        .find(|(t, _)| *t == c)
        .map(|(_, s)| *s)
        .unwrap_or(c)
}

/// A name, keyword or file name folded for comparison: half width,
/// simplified, lower case, no whitespace or punctuation, and each synonym
/// pair (long, short) folded to the short spelling (科学技术 → 科技).
pub fn name_key(s: &str, synonyms: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = simplified(half_width_char(c));
        if c.is_whitespace() || is_punct(c) {
            continue;
        }
        out.extend(c.to_lowercase());
    }
    for (long, short) in synonyms {
        let l = name_key(long, &[]);
        let s = name_key(short, &[]);
        if !l.is_empty() && out.contains(&l) {
            out = out.replace(&l, &s);
        }
    }
    out
}

/// A form label reduced to what identifies it: like [`name_key`] without
/// synonyms, and without bracketed notes （100字以内，方案可附后）.
pub fn label_key(s: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in s.chars() {
        match simplified(half_width_char(c)) {
            '(' | '[' | '【' | '〔' | '<' | '《' => depth += 1,
            ')' | ']' | '】' | '〕' | '>' | '》' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            c if c.is_whitespace() || is_punct(c) => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Text that came from a sender, made safe for a mail header or a terminal: no control or
/// bidirectional-override characters (no CR or LF, so no injected header),
/// whitespace runs collapsed, at most `max` characters.
pub fn clean_line(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if is_unsafe(c) { ' ' } else { c })
        .collect();
    let mut out = String::new();
    for (i, word) in cleaned.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

/// Text for a terminal: control and bidirectional-override characters
/// (escape sequences included) shown as `\u{1b}`, so nothing a sender wrote
/// can drive the coordinator's terminal. Line breaks stay.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c != '\n' && is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_fold_long_names_to_short() {
        let syn = vec![("科学技术".to_string(), "科技".to_string())];
        assert_eq!(
            name_key("南京市 科学技术局", &syn),
            name_key("南京市科技局", &syn)
        );
        assert_eq!(name_key("ＡＢＣ１２", &[]), "abc12");
        assert_eq!(name_key("推薦表", &[]), "推荐表");
    }

    #[test]
    fn escape_codes_are_shown_not_obeyed() {
        assert_eq!(printable("a\x1b[31mb\nc"), "a\\u{1b}[31mb\nc");
        assert_eq!(clean_line("张\n三\r\nBcc: x", 60), "张 三 Bcc: x");
    }

    #[test]
    fn labels_lose_notes_width_and_punctuation() {
        assert_eq!(label_key("活动简介（100字以内）"), "活动简介");
        assert_eq!(label_key("联系人、电话"), "联系人电话");
        assert_eq!(label_key("活動名稱"), "活动名称");
    }
}

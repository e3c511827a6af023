//! China's county-level divisions (data/divisions.tsv, see data/README.md) and
//! the check that a place is written down to a county (区/县/县级市/旗).

use std::collections::HashSet;
use std::sync::OnceLock;

const DIVISIONS: &str = include_str!("../../data/divisions.tsv");

/// One county-level division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Division {
    pub code: &'static str,
    pub province: &'static str,
    pub city: &'static str,
    pub county: &'static str,
}

struct Index {
    all: Vec<Division>,
    /// Names without their suffix (玄武, 江阴), kept only where that stem is not
    /// also a province or city name and has at least two characters.
    stems: Vec<(&'static str, usize)>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let all: Vec<Division> = DIVISIONS
            .lines()
            .filter_map(|l| {
                let mut it = l.split('\t');
                Some(Division {
                    code: it.next()?,
                    province: it.next()?,
                    city: it.next()?,
                    county: it.next()?,
                })
            })
            .collect();
        let higher: HashSet<&str> = all
            .iter()
            .flat_map(|d| [stem(d.province), stem(d.city)])
            .collect();
        let stems = all
            .iter()
            .enumerate()
            .map(|(i, d)| (stem(d.county), i))
            .filter(|(s, i)| s.chars().count() >= 2 && *s != all[*i].county && !higher.contains(s))
            .collect();
        Index { all, stems }
    })
}

/// The name without 区/县/市/旗 (and 自治县, 自治旗, 新区…).
fn stem(name: &str) -> &str {
    for suffix in [
        "自治县",
        "自治旗",
        "新区",
        "林区",
        "特区",
        "区",
        "县",
        "市",
        "旗",
        "省",
    ] {
        if let Some(s) = name.strip_suffix(suffix) {
            return s;
        }
    }
    name
}

/// The first county-level division named in `text`, by full name (南京市玄武区,
/// 玄武区, 江阴市) or by its stem when that cannot be part of a longer name:
/// after its city (南京玄武) or before a non-Han character (玄武，…). So
/// 平江街道 is not read as 平江县.
pub fn find_county(text: &str) -> Option<&'static Division> {
    let idx = index();
    let full = idx
        .all
        .iter()
        .filter(|d| d.county != "市辖区" && text.contains(d.county))
        .max_by_key(|d| d.county.len());
    full.or_else(|| {
        idx.stems
            .iter()
            .filter(|&&(s, i)| {
                let d = &idx.all[i];
                text.match_indices(s).any(|(at, _)| {
                    let before = &text[..at];
                    let after = text[at + s.len()..].chars().next();
                    before.ends_with(d.city)
                        || before.ends_with(stem(d.city))
                        || after.is_none_or(|c| !is_han(c))
                })
            })
            .max_by_key(|(s, _)| s.len())
            .map(|&(_, i)| &idx.all[i])
    })
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// The place part of a "time, place" cell: the text after the date and time.
pub fn place_part(text: &str) -> &str {
    const DATE_CHARS: &str = "０１２３４５６７８９年月日号至到—-~～–:：.、，,；;（）()时分起";
    const DATE_WORDS: [&str; 7] = ["上午", "下午", "晚上", "全天", "期间", "周末", "每天"];
    let mut t = text.trim();
    loop {
        let before = t.len();
        t = t.trim_start_matches(|c: char| {
            c.is_ascii_digit() || c.is_whitespace() || DATE_CHARS.contains(c)
        });
        for w in DATE_WORDS {
            t = t.strip_prefix(w).unwrap_or(t);
        }
        if t.len() == before {
            break;
        }
    }
    t.trim_end_matches(['。', '；', ';'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn districts_and_county_level_cities_are_found() {
        assert_eq!(find_county("南京市玄武区科技馆").unwrap().code, "320102");
        assert_eq!(find_county("江阴市青少年活动中心").unwrap().city, "无锡市");
        assert_eq!(find_county("南京玄武科技馆").unwrap().county, "玄武区");
        assert_eq!(find_county("5月，江阴 科技馆").unwrap().county, "江阴市");
    }

    #[test]
    fn a_prefecture_city_is_not_county_level() {
        assert_eq!(find_county("南京市"), None);
        assert_eq!(find_county("苏州市平江街道"), None);
    }

    #[test]
    fn the_date_is_cut_off_the_place() {
        assert_eq!(place_part("2025年5月19日，南京市"), "南京市");
        assert_eq!(place_part("5月20日 下午 苏州市姑苏区"), "苏州市姑苏区");
    }
}

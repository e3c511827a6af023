//! China's county-level divisions (data/divisions.tsv, see data/README.md) and
//! the check that a place is written down to a county (区/县/县级市/旗).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

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
    /// Full county names (市辖区 aside).
    full: Names,
    /// Names without their suffix (玄武, 江阴), kept only where that stem is not
    /// also a province or city name and has at least two characters.
    stems: Names,
}

/// Names looked for in a text all at once: a table cell was compared with
/// each of ~2,900 full names and ~2,000 stems in turn, a string search set
/// up for each (2 % of the CPU of reading 1000 mails).
struct Names {
    finder: AhoCorasick,
    /// Per pattern: the name and the divisions (indices into `all`) it names.
    owners: Vec<(&'static str, Vec<usize>)>,
}

impl Names {
    fn new(names: impl Iterator<Item = (&'static str, usize)>) -> Names {
        let mut at: HashMap<&str, usize> = HashMap::new();
        let mut owners: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (name, division) in names {
            let i = *at.entry(name).or_insert_with(|| {
                owners.push((name, Vec::new()));
                owners.len() - 1
            });
            owners[i].1.push(division);
        }
        let finder = AhoCorasick::new(owners.iter().map(|(name, _)| name))
            .expect("the bundled division names make a small automaton (test districts_and_county_level_cities_are_found)");
        Names { finder, owners }
    }

    /// Of the divisions named in `text` where `fits` (the division, and
    /// where its name starts) holds for some occurrence: the one with the
    /// longest name, and of those the last in the table.
    fn longest(&self, text: &str, fits: impl Fn(usize, usize) -> bool) -> Option<usize> {
        let mut best = None;
        for m in self.finder.find_overlapping_iter(text) {
            let (name, divisions) = &self.owners[m.pattern().as_usize()];
            for &d in divisions {
                if fits(d, m.start()) {
                    best = best.max(Some((name.len(), d)));
                }
            }
        }
        best.map(|(_, d)| d)
    }
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
        let full = Names::new(
            all.iter()
                .enumerate()
                .filter(|(_, d)| d.county != "市辖区")
                .map(|(i, d)| (d.county, i)),
        );
        let stems = Names::new(
            all.iter()
                .enumerate()
                .map(|(i, d)| (stem(d.county), i))
                .filter(|(s, i)| {
                    s.chars().count() >= 2 && *s != all[*i].county && !higher.contains(s)
                }),
        );
        Index { all, full, stems }
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
    let found = idx.full.longest(text, |_, _| true).or_else(|| {
        idx.stems.longest(text, |i, at| {
            let d = &idx.all[i];
            let before = &text[..at];
            let after = text[at + stem(d.county).len()..].chars().next();
            before.ends_with(d.city)
                || before.ends_with(stem(d.city))
                || after.is_none_or(|c| !is_han(c))
        })
    });
    found.map(|i| &idx.all[i])
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

    /// What `find_county` must equal: each name searched for on its own,
    /// as it was before; `stemmed`: the divisions whose stem is looked for.
    fn one_by_one(text: &str, stemmed: &HashSet<usize>) -> Option<&'static Division> {
        let idx = index();
        let full = idx
            .all
            .iter()
            .filter(|d| d.county != "市辖区" && text.contains(d.county))
            .max_by_key(|d| d.county.len());
        full.or_else(|| {
            idx.all
                .iter()
                .enumerate()
                .filter(|(i, d)| {
                    let s = stem(d.county);
                    stemmed.contains(i)
                        && text.match_indices(s).any(|(at, _)| {
                            let before = &text[..at];
                            let after = text[at + s.len()..].chars().next();
                            before.ends_with(d.city)
                                || before.ends_with(stem(d.city))
                                || after.is_none_or(|c| !is_han(c))
                        })
                })
                .max_by_key(|(_, d)| stem(d.county).len())
                .map(|(_, d)| d)
        })
    }

    #[test]
    fn one_pass_finds_the_county_that_searching_each_name_finds() {
        let idx = index();
        let stemmed: HashSet<usize> = idx
            .stems
            .owners
            .iter()
            .flat_map(|(_, ds)| ds.iter().copied())
            .collect();
        let mut seed = 11u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let filler = ["", "，", "科技馆", "街道", "路1号", " ", "市"];
        for _ in 0..1000 {
            let mut text = String::new();
            for _ in 0..=next(3) {
                let d = &idx.all[next(idx.all.len())];
                let part = match next(5) {
                    0 => d.county,
                    1 => stem(d.county),
                    2 => d.city,
                    3 => stem(d.city),
                    _ => filler[next(filler.len())],
                };
                text.push_str(part);
                text.push_str(filler[next(filler.len())]);
            }
            assert_eq!(find_county(&text), one_by_one(&text, &stemmed), "{text}");
        }
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

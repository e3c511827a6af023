//! Values typed and checked against the form definition; every problem names
//! the file, the record (第N项) or field, and what to fix, in Chinese.

use std::collections::BTreeMap;

use super::places;
use super::values::{NumberIssue, number_json, parse_number};
use crate::config::{FieldDef, FieldType, FormDef};
use crate::model::FieldValue;
use crate::model::{Problem, ProblemCode};

/// Where a value sits, for messages: `第3项` in a rows form, nothing in a fields form.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub file: &'a str,
    /// 1-based record number in a rows form.
    pub item: Option<usize>,
}

impl At<'_> {
    fn prefix(&self) -> String {
        match self.item {
            Some(n) => format!("{}：第{n}项", self.file),
            None => format!("{}：", self.file),
        }
    }
}

/// Characters as a reader counts them: every CJK character, letter, digit and
/// punctuation mark is one; whitespace (spaces, line breaks) is not counted.
pub fn count_chars(s: &str) -> usize {
    s.chars().filter(|c| !c.is_whitespace()).count()
}

/// Whether the text holds a phone number: a mobile (1[3-9] + 9 digits), a
/// landline with area code (0xx-xxxxxxxx), or a 7–8 digit local number.
pub fn has_phone(text: &str) -> bool {
    let t = crate::fold::half_width(text);
    let mut runs: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if matches!(c, '-' | ' ' | '—' | '(' | ')' | '（' | '）')
            && !cur.is_empty()
            && chars.peek().is_some_and(|n| n.is_ascii_digit())
        {
            // Separators inside a number: 0510-86861234, 138 1234 5678.
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    runs.push(cur);
    runs.iter().any(|d| {
        let d = d.strip_prefix("86").filter(|r| r.len() == 11).unwrap_or(d);
        let b = d.as_bytes();
        (b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]))
            || (b.first() == Some(&b'0') && (10..=12).contains(&b.len()))
            || ((7..=8).contains(&b.len()) && b[0] != b'0')
            // 港澳台: 852/853 + 8 digits, 886 + 8 or 9 digits.
            || ((d.starts_with("852") || d.starts_with("853")) && b.len() == 11)
            || (d.starts_with("886") && (11..=12).contains(&b.len()))
    })
}

/// Types one cell's text for `field`, adding number problems.
pub fn read_value(field: &FieldDef, text: &str, at: At, problems: &mut Vec<Problem>) -> FieldValue {
    let text = text.trim().to_owned();
    let label = field.display_name();
    let value = match field.ty {
        FieldType::Integer | FieldType::Decimal => {
            let integer = field.ty == FieldType::Integer;
            let n = parse_number(&text, field.unit.as_deref(), integer);
            let p = at.prefix();
            let shown = n
                .value
                .map(|v| number_json(v).to_string())
                .unwrap_or_default();
            for issue in &n.issues {
                problems.push(match issue {
                    NumberIssue::NotNumber => Problem::new(
                        ProblemCode::ValueNotNumber,
                        format!("{p}{label}“{text}”不是数字，请填写数字"),
                    ),
                    NumberIssue::Approximate => Problem::new(
                        ProblemCode::ValueApproximate,
                        format!("{p}{label}“{text}”是约数，已按{shown}计，请填写准确数字"),
                    ),
                    NumberIssue::YuanConverted(_) => Problem::new(
                        ProblemCode::ValueUnitConverted,
                        format!(
                            "{p}{label}“{text}”按元填写，已换算为{shown}万元，请核实（本栏单位为万元）"
                        ),
                    ),
                    NumberIssue::NotInteger => Problem::new(
                        ProblemCode::ValueNotInteger,
                        format!("{p}{label}“{text}”应为整数，请核实"),
                    ),
                });
            }
            n.value.map_or(serde_json::Value::Null, number_json)
        }
        _ if text.is_empty() => serde_json::Value::Null,
        _ => serde_json::Value::String(text.clone()),
    };
    FieldValue { value, text }
}

fn is_empty(v: Option<&FieldValue>) -> bool {
    v.is_none_or(|v| v.value.is_null() && v.text.trim().is_empty())
}

/// Checks one record or the fields of a fields form: required, length, place,
/// phone. `given` lists keys the form states elsewhere (the unit in a
/// "推荐单位：X" line), which are then not required in the record.
pub fn check(
    form: &FormDef,
    values: &BTreeMap<String, FieldValue>,
    given: &[&str],
    at: At,
    problems: &mut Vec<Problem>,
) {
    let p = at.prefix();
    for field in &form.fields {
        let label = field.display_name();
        let v = values.get(&field.key);
        if is_empty(v) {
            if field.required && !given.contains(&field.key.as_str()) {
                let what = if at.item.is_some() { "" } else { &form.name };
                problems.push(Problem::new(
                    ProblemCode::FieldMissing,
                    format!("{p}{what}缺少{label}，请补充"),
                ));
            }
            continue;
        }
        let Some(v) = v else { continue };
        let text = v.text.as_str();
        if let Some(max) = field.max_chars {
            let n = count_chars(text);
            if n > max as usize {
                problems.push(Problem::new(
                    ProblemCode::SummaryTooLong,
                    format!("{p}{label}{n}字，超过{max}字，请压缩到{max}字以内"),
                ));
            }
        }
        if field.county_level {
            let place = places::place_part(text);
            if place.is_empty() {
                problems.push(Problem::new(
                    ProblemCode::PlaceNotCountyLevel,
                    format!("{p}未写明举办地点，请写明到区县"),
                ));
            } else if places::find_county(place).is_none() {
                problems.push(Problem::new(
                    ProblemCode::PlaceNotCountyLevel,
                    format!("{p}举办地点“{place}”未精确到县级（区、县），请写明到区县"),
                ));
            }
        }
        if field.ty == FieldType::Phone && !has_phone(text) {
            problems.push(Problem::new(
                ProblemCode::ContactNoPhone,
                format!("{p}{label}“{text}”中没有电话号码，请补充手机或座机号码"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_not_counted_as_characters() {
        assert_eq!(count_chars("科普 活动\n，AI 2025"), 11);
    }

    #[test]
    fn mobiles_landlines_and_local_numbers_are_phones() {
        assert!(has_phone("张明 13812345678"));
        assert!(has_phone("李华 0510-86861234"));
        assert!(has_phone("王芳，025-83236071"));
        assert!(has_phone("电话：85911893"));
        assert!(has_phone("138 1234 5678"));
        assert!(has_phone("陳志明 852-27323232"));
        assert!(!has_phone("赵强"));
        assert!(!has_phone("2025年5月"));
    }
}

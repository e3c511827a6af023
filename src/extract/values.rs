//! Numbers as units write them: "１２.５万元", "1,200人次", "约500", "无", "—".

/// Something doubtful about a number, for the caller to word as a problem.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberIssue {
    /// 约 / 余 / 多 / 左右 / 以上: the number is kept.
    Approximate,
    /// Written in 元 where the form asks for 万元; converted. Holds the amount in 元.
    YuanConverted(f64),
    /// Not a number at all.
    NotNumber,
    /// An integer field holds a fraction.
    NotInteger,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// None when the cell is empty or says there is nothing (无, /, —).
    pub value: Option<f64>,
    pub issues: Vec<NumberIssue>,
}

/// Words that mean "nothing here": read as null, never as zero.
const NULL_WORDS: &[&str] = &[
    "无",
    "/",
    "\\",
    "-",
    "--",
    "—",
    "——",
    "–",
    "－",
    "空",
    "暂无",
    "没有",
    "n/a",
    "na",
    "none",
    "不详",
    "未统计",
    "×",
    "x",
];
const APPROX_PREFIX: &[&str] = &["大约", "约", "近", "逾", "超过", "共计", "共", "合计", "计"];
const APPROX_SUFFIX: &[&str] = &["左右", "以上", "余", "多", "+"];

/// Reads a number written for a field whose unit is `unit` (万元, 人次, 个…).
pub fn parse_number(text: &str, unit: Option<&str>, integer: bool) -> Number {
    let s: String = crate::fold::half_width(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut issues = Vec::new();
    if s.is_empty() || NULL_WORDS.contains(&s.to_lowercase().as_str()) {
        return Number {
            value: None,
            issues,
        };
    }
    let mut rest = s.as_str();
    let mut approximate = false;
    for p in APPROX_PREFIX {
        if let Some(r) = rest.strip_prefix(p) {
            approximate |= !matches!(*p, "共计" | "共" | "合计" | "计");
            rest = r;
            break;
        }
    }
    let digits_end = rest
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map_or(rest.len(), |(i, _)| i);
    let (num, mut tail) = rest.split_at(digits_end);
    let Ok(mut value) = num.replace(',', "").parse::<f64>() else {
        return Number {
            value: None,
            issues: vec![NumberIssue::NotNumber],
        };
    };
    // "300余人", "5000多人次", "20个左右": approximation words sit on either side of the unit.
    loop {
        let before = tail;
        for a in APPROX_SUFFIX {
            if let Some(r) = tail.strip_prefix(a) {
                approximate = true;
                tail = r;
            }
            if let Some(r) = tail.strip_suffix(a) {
                approximate = true;
                tail = r;
            }
        }
        if tail == before {
            break;
        }
    }
    let wan = unit.is_some_and(|u| u.starts_with('万'));
    let factor = match tail {
        "" => Some(1.0),
        "万元" | "万" => Some(if wan { 1.0 } else { 10_000.0 }),
        "亿元" | "亿" => Some(if wan { 10_000.0 } else { 100_000_000.0 }),
        "元" if wan => {
            issues.push(NumberIssue::YuanConverted(value));
            Some(1.0 / 10_000.0)
        }
        "万人次" | "万人" | "万次" | "万篇" => Some(10_000.0),
        "元" | "人次" | "人" | "名" | "次" | "场" | "场次" | "个" | "家" | "篇" | "所" | "座"
        | "项" | "条" | "期" | "处" | "件" => Some(1.0),
        _ => None,
    };
    let Some(factor) = factor else {
        return Number {
            value: None,
            issues: vec![NumberIssue::NotNumber],
        };
    };
    value *= factor;
    // Round away binary noise from the unit conversion (0.1 元 steps are far below it).
    value = (value * 1e6).round() / 1e6;
    if approximate {
        issues.push(NumberIssue::Approximate);
    }
    if integer && value.fract() != 0.0 {
        issues.push(NumberIssue::NotInteger);
    }
    Number {
        value: Some(value),
        issues,
    }
}

/// A number as JSON: whole numbers as integers so `12` is not written `12.0`.
pub fn number_json(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        serde_json::Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str, unit: Option<&str>, integer: bool) -> Number {
        parse_number(text, unit, integer)
    }

    #[test]
    fn full_width_digits_are_normalised() {
        assert_eq!(n("１２.５", Some("万元"), false).value, Some(12.5));
        assert_eq!(n("１２次", Some("次"), true).value, Some(12.0));
    }

    #[test]
    fn thousands_separators_and_units_are_dropped() {
        let v = n("1,200人次", Some("人次"), true);
        assert_eq!(v.value, Some(1200.0));
        assert!(v.issues.is_empty());
        assert_eq!(n("12.5万元", Some("万元"), false).value, Some(12.5));
        assert_eq!(n("5.6万人次", Some("人次"), true).value, Some(56000.0));
    }

    #[test]
    fn yuan_in_wanyuan_field_is_converted_and_flagged() {
        let v = n("50000元", Some("万元"), false);
        assert_eq!(v.value, Some(5.0));
        assert_eq!(v.issues, vec![NumberIssue::YuanConverted(50000.0)]);
    }

    #[test]
    fn approximate_numbers_keep_the_number_and_are_flagged() {
        for t in ["约500", "500余", "500多人", "500人左右", "约5000人次"] {
            let v = n(t, Some("人次"), true);
            assert!(v.value.is_some(), "{t}");
            assert_eq!(v.issues, vec![NumberIssue::Approximate], "{t}");
        }
    }

    #[test]
    fn nothing_words_are_null_and_zero_is_zero() {
        for t in ["无", "/", "—", "-", "空", "", "  "] {
            let v = n(t, Some("万元"), false);
            assert_eq!(v.value, None, "{t}");
            assert!(v.issues.is_empty(), "{t}");
        }
        assert_eq!(n("0", Some("万元"), false).value, Some(0.0));
    }

    #[test]
    fn text_in_a_number_field_is_not_a_number() {
        assert_eq!(n("很多", None, true).issues, vec![NumberIssue::NotNumber]);
        assert_eq!(n("12斤", None, true).issues, vec![NumberIssue::NotNumber]);
    }

    #[test]
    fn fraction_in_an_integer_field_is_flagged() {
        assert_eq!(
            n("12.5", Some("人次"), true).issues,
            vec![NumberIssue::NotInteger]
        );
    }

    #[test]
    fn whole_numbers_are_json_integers() {
        assert_eq!(number_json(12.0).to_string(), "12");
        assert_eq!(number_json(12.5).to_string(), "12.5");
    }
}

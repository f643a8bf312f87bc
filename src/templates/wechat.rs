//! WeChat's limits on template / subscribe message fields, by the type prefix
//! of a field's key (`thing1` is a `thing`, `character_string2` a
//! `character_string`). WeChat rejects a bad value with `47003 argument
//! invalid` or silently truncates it, so values are checked after rendering.

/// The type of a data key: its leading letters before the digits
/// (`character_string12` → `character_string`).
pub(super) fn key_type(key: &str) -> &str {
    key.trim_end_matches(|c: char| c.is_ascii_digit())
}

/// Whether a data key looks like a WeChat field name (`thing1`, `time2`,
/// `character_string3`); `first` and `remark` are refused because WeChat has
/// not shown them since 2023-05-04.
pub(super) fn check_key(key: &str) -> Result<(), String> {
    if key == "first" || key == "remark" {
        return Err(format!(
            "data.{key}: WeChat no longer shows the `first` and `remark` fields (since 2023-05-04); remove it"
        ));
    }
    let kind = key_type(key);
    let ok = !kind.is_empty()
        && kind.len() < key.len()
        && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        && !kind.starts_with('_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "data key `{key}` is not a WeChat field name; use the keys of the template as shown in the WeChat backend, such as thing1, time2 or character_string3"
        ))
    }
}

/// Is `c` a Chinese character, CJK punctuation or a full-width form?
pub(super) fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x2E80..=0x2FDF      // radicals
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // kana
        | 0x3400..=0x4DBF    // extension A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x3134F) // extensions B–G
}

/// Check one rendered value against the limit of its key's type. The error
/// shows the value, what is wrong and what WeChat allows (the caller names
/// the key).
pub(super) fn check_value(key: &str, value: &str) -> Result<(), String> {
    let shown = shown(value);
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "{shown} contains a line break; WeChat shows no line breaks in template fields"
        ));
    }
    let kind = key_type(key);
    let chars = value.chars().count();
    let too_long = |max: usize, what: &str| {
        Err(format!(
            "{shown} is {chars} characters; WeChat allows at most {max} in `{what}` fields"
        ))
    };
    match kind {
        "thing" if chars > 20 => too_long(20, kind),
        "character_string" if chars > 32 => too_long(32, kind),
        "character_string" if value.chars().any(is_cjk) => Err(format!(
            "{shown} contains Chinese characters; `character_string` fields take only digits, letters and symbols"
        )),
        "number" if chars > 32 => too_long(32, kind),
        "number" if !value.chars().all(|c| c.is_ascii_digit()) => Err(format!(
            "{shown} is not all digits; `number` fields take digits only"
        )),
        "letter" if chars > 32 => too_long(32, kind),
        "letter" if !value.chars().all(|c| c.is_ascii_alphabetic()) => Err(format!(
            "{shown} is not all letters; `letter` fields take the letters a–z and A–Z only"
        )),
        "symbol" if chars > 5 => too_long(5, kind),
        "phrase" if chars > 5 => too_long(5, kind),
        "name" if value.chars().any(is_cjk) && chars > 10 => Err(format!(
            "{shown} is {chars} characters; WeChat allows at most 10 Chinese characters (or 20 Latin ones) in `name` fields"
        )),
        "name" if chars > 20 => too_long(20, kind),
        "amount" if !is_amount(value) => Err(format!(
            "{shown} is not an amount; `amount` fields take an optional currency symbol, at most 10 digits, optional decimals and an optional trailing 元, e.g. ¥12.50 or 10元"
        )),
        "phone_number" if chars > 17 => too_long(17, kind),
        "car_number" if chars > 8 => too_long(8, kind),
        "time" | "date" if value.trim().is_empty() => Err(format!(
            "the value is empty; `{kind}` fields need a value such as 12月21日 or 2026年12月21日 10:00"
        )),
        "thing" | "character_string" | "number" | "letter" | "symbol" | "phrase" | "name"
        | "amount" | "phone_number" | "car_number" | "time" | "date" => Ok(()),
        _ if chars > 20 => Err(format!(
            "{shown} is {chars} characters; WeChat allows at most 20 in a template field"
        )),
        _ => Ok(()),
    }
}

/// `¥12.50`, `12`, `10元`, `$3.5`: one optional currency symbol, 1–10
/// digits, optional decimals, an optional trailing 元.
fn is_amount(value: &str) -> bool {
    let v = value.trim();
    let v = v.strip_suffix('元').unwrap_or(v);
    let v = v.strip_prefix(['¥', '￥', '$', '€', '£']).unwrap_or(v);
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (v, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    digits(int) && int.len() <= 10 && frac.is_none_or(digits)
}

/// A value quoted for an error message, shortened when long.
fn shown(value: &str) -> String {
    const MAX: usize = 30;
    if value.chars().count() > MAX {
        let head: String = value.chars().take(MAX).collect();
        format!("\"{head}…\"")
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_is_at_most_twenty_characters() {
        let twenty = "一二三四五六七八九十一二三四五六七八九十";
        assert_eq!(twenty.chars().count(), 20);
        assert!(check_value("thing1", twenty).is_ok());
        let e = check_value("thing1", &format!("{twenty}多")).unwrap_err();
        assert_eq!(
            e,
            "\"一二三四五六七八九十一二三四五六七八九十多\" is 21 characters; WeChat allows at most 20 in `thing` fields"
        );
    }

    #[test]
    fn typed_fields() {
        assert!(check_value("character_string2", "BDAY-7K3M9Q").is_ok());
        let e = check_value("character_string2", "券码BDAY").unwrap_err();
        assert!(e.contains("contains Chinese characters"), "{e}");
        assert!(check_value("number3", "12345").is_ok());
        assert!(check_value("number3", "12a").is_err());
        assert!(check_value("letter4", "abcXYZ").is_ok());
        assert!(check_value("letter4", "abc1").is_err());
        assert!(check_value("symbol5", "+-*/%").is_ok());
        assert!(check_value("symbol5", "+-*/%=").is_err());
        assert!(check_value("phrase6", "已到账").is_ok());
        assert!(check_value("phrase6", "已经到账了啦").is_err());
        assert!(check_value("name7", "王小明").is_ok());
        assert!(check_value("name7", "一二三四五六七八九十一").is_err());
        assert!(check_value("name7", "Alexandra Featherstone").is_err());
        assert!(check_value("name7", "Alexandra Feather").is_ok());
        for ok in ["12", "¥12.50", "10元", "$3.5", "1234567890"] {
            assert!(check_value("amount8", ok).is_ok(), "{ok}");
        }
        for bad in ["", "12345678901", "十元", "1.2.3", "¥"] {
            assert!(check_value("amount8", bad).is_err(), "{bad}");
        }
        assert!(check_value("phone_number9", "+86 138 0013 8000").is_ok());
        assert!(check_value("phone_number9", "+86 138 0013 80000").is_err());
        assert!(check_value("car_number10", "沪A12345").is_ok());
        assert!(check_value("car_number10", "沪A1234567").is_err());
        assert!(check_value("time11", "12月21日").is_ok());
        assert!(check_value("date12", " ").is_err());
        assert!(check_value("keyword1", "一二三四五六七八九十一二三四五六七八九十").is_ok());
        assert!(check_value("keyword1", "一二三四五六七八九十一二三四五六七八九十一").is_err());
    }

    #[test]
    fn no_line_breaks_anywhere() {
        let e = check_value("time2", "12月21日\n10:00").unwrap_err();
        assert_eq!(
            e,
            "\"12月21日\\n10:00\" contains a line break; WeChat shows no line breaks in template fields"
        );
    }

    #[test]
    fn keys() {
        assert_eq!(key_type("character_string12"), "character_string");
        assert!(check_key("thing1").is_ok());
        assert!(check_key("number01").is_ok());
        assert!(check_key("thing").is_err());
        assert!(check_key("Thing1").is_err());
        assert!(check_key("1").is_err());
        assert!(check_key("remark").unwrap_err().contains("2023-05-04"));
    }
}

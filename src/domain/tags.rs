//! Customer tags, e.g. `vip;spicy;lunch`.

use std::collections::HashSet;
use std::fmt;

use thiserror::Error;

/// Most tags one customer may have.
const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
const MAX_TAG_CHARS: usize = 32;

/// Why a tag list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TagsError {
    /// One tag is longer than 32 characters.
    #[error("tag {tag} is {len} characters long; at most 32 are allowed (separate tags with ';')")]
    TooLong { tag: String, len: usize },
    /// A tag contains a control character (tab, newline …).
    #[error(
        "tag {tag} contains a control character; remove tabs and line breaks (separate tags with ';')"
    )]
    ControlChar { tag: String },
    /// A tag in a list contains `;`, which separates tags when stored.
    #[error("tag {tag} contains ';'; give each tag as its own list item")]
    Semicolon { tag: String },
    /// More than 32 distinct tags.
    #[error("there are {count} distinct tags; at most 32 are allowed per customer (drop some)")]
    TooMany { count: usize },
}

/// A customer's tags: trimmed, non-empty, distinct, in first-seen order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Tags(Vec<String>);

/// Trim, drop empties and de-duplicate, keeping first-seen order.
fn distinct<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty() && seen.insert(*t))
        .map(str::to_owned)
        .collect()
}

fn check(tags: Vec<String>) -> Result<Tags, TagsError> {
    for tag in &tags {
        let len = tag.chars().count();
        if len > MAX_TAG_CHARS {
            return Err(TagsError::TooLong {
                tag: super::shown(tag),
                len,
            });
        }
        if tag.chars().any(char::is_control) {
            return Err(TagsError::ControlChar {
                tag: super::shown(tag),
            });
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(TagsError::TooMany { count: tags.len() });
    }
    Ok(Tags(tags))
}

impl Tags {
    /// Parse a `;`-separated list: `"vip; spicy;;vip"` → `vip`, `spicy`.
    pub fn parse(input: &str) -> Result<Tags, TagsError> {
        check(distinct(input.split(';')))
    }

    /// Build from separate items (e.g. a JSON array), with the same rules as [`Tags::parse`].
    pub fn from_list(items: impl IntoIterator<Item = String>) -> Result<Tags, TagsError> {
        let items: Vec<String> = items.into_iter().collect();
        if let Some(bad) = items.iter().find(|t| t.contains(';')) {
            return Err(TagsError::Semicolon {
                tag: super::shown(bad.trim()),
            });
        }
        check(distinct(items.iter().map(String::as_str)))
    }

    /// The stored form: `;`-joined, empty string when there are no tags.
    pub fn to_db(&self) -> String {
        self.0.join(";")
    }

    /// From the stored form; lenient (no limits checked), never fails.
    pub fn from_db(value: &str) -> Tags {
        Tags(distinct(value.split(';')))
    }

    /// The tags in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(String::as_str)
    }

    /// True when there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if `tag` is one of the tags (exact match).
    pub fn contains(&self, tag: &str) -> bool {
        self.0.iter().any(|t| t == tag)
    }
}

/// The `;`-joined form, as in [`Tags::to_db`].
impl fmt::Display for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(t: &Tags) -> Vec<&str> {
        t.iter().collect()
    }

    #[test]
    fn parse_splits_trims_dedupes() {
        let t = Tags::parse(" vip; 辣; ;lunch;;vip ;辣").unwrap();
        assert_eq!(list(&t), ["vip", "辣", "lunch"]);
        assert_eq!(t.len(), 3);
        assert!(t.contains("辣"));
        assert!(!t.contains("VIP"));
        assert_eq!(t.to_db(), "vip;辣;lunch");
        assert_eq!(t.to_string(), "vip;辣;lunch");
    }

    #[test]
    fn dedupe_is_case_sensitive_and_keeps_first() {
        let t = Tags::parse("b;a;B;a;b").unwrap();
        assert_eq!(list(&t), ["b", "a", "B"]);
    }

    #[test]
    fn empty_inputs() {
        for s in ["", "  ", ";", " ; ;; "] {
            let t = Tags::parse(s).unwrap();
            assert!(t.is_empty(), "{s:?}");
            assert_eq!(t.to_db(), "");
        }
        assert_eq!(Tags::default(), Tags::parse("").unwrap());
    }

    #[test]
    fn tag_length_limit_counts_chars() {
        assert!(Tags::parse(&"辣".repeat(32)).is_ok());
        let e = Tags::parse(&format!("ok;{}", "辣".repeat(33))).unwrap_err();
        assert!(matches!(e, TagsError::TooLong { len: 33, .. }));
        assert!(e.to_string().contains("at most 32"));
    }

    #[test]
    fn control_chars_rejected() {
        for s in ["a\tb", "vip\nlunch", "x\u{7}"] {
            assert!(
                matches!(Tags::parse(s), Err(TagsError::ControlChar { .. })),
                "{s:?}"
            );
        }
        // Leading/trailing whitespace (including newlines) is trimmed, not an error.
        assert_eq!(list(&Tags::parse("vip\n").unwrap()), ["vip"]);
    }

    #[test]
    fn tag_count_limit_after_dedupe() {
        let ok: Vec<String> = (0..32).map(|i| format!("t{i}")).collect();
        assert_eq!(Tags::parse(&ok.join(";")).unwrap().len(), 32);
        let with_dupes = format!("{};t0;t1", ok.join(";"));
        assert_eq!(Tags::parse(&with_dupes).unwrap().len(), 32);
        let too_many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
        assert_eq!(
            Tags::parse(&too_many.join(";")).unwrap_err(),
            TagsError::TooMany { count: 33 }
        );
    }

    #[test]
    fn from_list_same_rules() {
        let t =
            Tags::from_list(vec![" vip ".into(), "".into(), "vip".into(), "辣".into()]).unwrap();
        assert_eq!(list(&t), ["vip", "辣"]);
        assert!(matches!(
            Tags::from_list(vec!["a;b".into()]),
            Err(TagsError::Semicolon { .. })
        ));
        assert!(matches!(
            Tags::from_list(vec!["x".repeat(33)]),
            Err(TagsError::TooLong { .. })
        ));
        assert!(matches!(
            Tags::from_list((0..40).map(|i| i.to_string())),
            Err(TagsError::TooMany { count: 40 })
        ));
        assert!(Tags::from_list(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn db_round_trip_and_lenient_read() {
        let t = Tags::parse("vip;辣;lunch").unwrap();
        assert_eq!(Tags::from_db(&t.to_db()), t);
        assert_eq!(Tags::from_db(""), Tags::default());
        let long = "x".repeat(100);
        assert_eq!(
            list(&Tags::from_db(&format!("{long};a;a"))),
            [long.as_str(), "a"]
        );
    }
}

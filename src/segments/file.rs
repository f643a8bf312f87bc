//! `campaigns/segments.yaml`: the lifecycle, value-tier and daypart rules and
//! the custom segments, each an expression over customer attributes.
//!
//! ```yaml
//! lifecycle:
//!   new:     { joined_within: 30d, max_orders: 1 }
//!   active:  { last_order_within: 30d }
//!   at_risk: { last_order_within: 60d }
//!   lapsed:  { last_order_within: 180d }   # beyond: churned
//! value_tiers:
//!   vip:  { top_percent: 10 }
//!   core: { next_percent: 30 }
//! dayparts: { morning: "05:00", noon: "11:00", afternoon: "14:00", evening: "17:00" }
//! segments:
//!   morning_regulars: "order_count_90d >= 8 and favorite_daypart == 'morning'"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::Spanned;

use super::rules::{Dayparts, STAGES, SegmentRules, TIERS};
use crate::expr::{CheckContext, Expr};
use crate::yaml_file::{FileError, YamlSource};

/// The file name inside the campaigns folder.
pub const FILE_NAME: &str = "segments.yaml";

/// A custom segment: a name and the expression that selects its members.
#[derive(Debug, Clone)]
pub struct CustomSegment {
    pub name: String,
    pub expr: Expr,
}

/// The rules and custom segments in force.
#[derive(Debug, Clone)]
pub struct SegmentsFile {
    /// Where they came from; `None` when the file does not exist and the
    /// defaults apply.
    pub path: Option<PathBuf>,
    pub rules: SegmentRules,
    pub custom: Vec<CustomSegment>,
}

impl SegmentsFile {
    /// The defaults, with no custom segments.
    pub fn defaults() -> SegmentsFile {
        SegmentsFile {
            path: None,
            rules: SegmentRules::default(),
            custom: Vec::new(),
        }
    }

    /// Load `DIR/segments.yaml`, or the defaults when it does not exist. Every
    /// problem found is returned, each with its place in the file.
    pub fn load(dir: &Path, ctx: &CheckContext) -> Result<SegmentsFile, Vec<FileError>> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(SegmentsFile::defaults());
        }
        let source = YamlSource::read(&path).map_err(|e| vec![e])?;
        Self::from_source(&source, ctx)
    }

    /// Parse and check the text of a segments file.
    pub fn from_source(
        source: &YamlSource,
        ctx: &CheckContext,
    ) -> Result<SegmentsFile, Vec<FileError>> {
        // An empty file (or one holding only comments) means "all defaults".
        let raw: RawFile = if source.text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "---"
        }) {
            RawFile::default()
        } else {
            source.parse().map_err(|e| vec![e])?
        };
        let mut errors = Vec::new();
        let rules = raw.rules(source, &mut errors);
        let mut custom = Vec::new();
        for (name, text) in raw.segments.unwrap_or_default() {
            if let Err(msg) = check_name(&name) {
                errors.push(source.error_at(text.referenced, msg));
                continue;
            }
            match Expr::parse(&text.value, ctx) {
                Ok(expr) => custom.push(CustomSegment { name, expr }),
                Err(e) => {
                    let (line, column) = source.column_in_scalar(&text, e.column());
                    errors.push(source.error_at_line(
                        line,
                        column,
                        match e.hint() {
                            Some(hint) => format!("segment {name}: {}; {hint}", e.message()),
                            None => format!("segment {name}: {}", e.message()),
                        },
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(SegmentsFile {
                path: Some(source.path.clone()),
                rules,
                custom,
            })
        } else {
            Err(errors)
        }
    }

    /// The custom segment of that name.
    pub fn custom(&self, name: &str) -> Option<&CustomSegment> {
        self.custom.iter().find(|s| s.name == name)
    }

    /// Every segment name a campaign may use: stages, tiers, custom segments.
    pub fn all_names(&self) -> Vec<String> {
        STAGES
            .iter()
            .chain(TIERS.iter())
            .map(|s| (*s).to_owned())
            .chain(self.custom.iter().map(|s| s.name.clone()))
            .collect()
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 40
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!(
            "segment name {name:?} must be lower-case letters, digits and '_' (at most 40, starting with a letter), e.g. morning_regulars"
        ));
    }
    if STAGES.contains(&name) || TIERS.contains(&name) {
        return Err(format!(
            "segment name {name:?} is a built-in segment (lifecycle stages: {}; value tiers: {}); pick another name",
            STAGES.join(", "),
            TIERS.join(", ")
        ));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    lifecycle: Option<RawLifecycle>,
    value_tiers: Option<RawTiers>,
    dayparts: Option<RawDayparts>,
    segments: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    new: Option<RawNew>,
    active: Option<RawWithin>,
    at_risk: Option<RawWithin>,
    lapsed: Option<RawWithin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNew {
    joined_within: Option<DaysValue>,
    max_orders: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWithin {
    last_order_within: Spanned<DaysValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiers {
    vip: Option<RawTop>,
    core: Option<RawNext>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    top_percent: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNext {
    next_percent: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDayparts {
    morning: Option<Spanned<String>>,
    noon: Option<Spanned<String>>,
    afternoon: Option<Spanned<String>>,
    evening: Option<Spanned<String>>,
}

impl RawFile {
    fn rules(&self, source: &YamlSource, errors: &mut Vec<FileError>) -> SegmentRules {
        let mut rules = SegmentRules::default();
        let mut lifecycle_at = None;
        if let Some(l) = &self.lifecycle {
            let d = &mut rules.lifecycle;
            if let Some(n) = &l.new {
                if let Some(v) = n.joined_within {
                    d.new_within_days = v.0;
                }
                if let Some(v) = n.max_orders {
                    d.new_max_orders = v;
                }
            }
            for (raw, slot) in [
                (&l.active, &mut d.active_within_days),
                (&l.at_risk, &mut d.at_risk_within_days),
                (&l.lapsed, &mut d.lapsed_within_days),
            ] {
                if let Some(r) = raw {
                    *slot = r.last_order_within.value.0;
                    lifecycle_at = Some(r.last_order_within.referenced);
                }
            }
            if let Err(e) = rules.lifecycle.validate() {
                errors.push(match lifecycle_at {
                    Some(at) => source.error_at(at, e.0),
                    None => source.error_at_line(0, 0, e.0),
                });
            }
        }
        if let Some(t) = &self.value_tiers {
            let mut at = None;
            if let Some(v) = &t.vip {
                rules.tiers.vip_top_percent = v.top_percent.value;
                at = Some(v.top_percent.referenced);
            }
            if let Some(c) = &t.core {
                rules.tiers.core_next_percent = c.next_percent.value;
                at = Some(c.next_percent.referenced);
            }
            if let Err(e) = rules.tiers.validate() {
                errors.push(match at {
                    Some(at) => source.error_at(at, e.0),
                    None => source.error_at_line(0, 0, e.0),
                });
            }
        }
        if let Some(d) = &self.dayparts {
            rules.dayparts = parse_dayparts(d, source, errors);
        }
        rules
    }
}

fn parse_dayparts(d: &RawDayparts, source: &YamlSource, errors: &mut Vec<FileError>) -> Dayparts {
    let mut out = Dayparts::default();
    let mut last_at = None;
    for (raw, slot, name) in [
        (&d.morning, &mut out.morning, "morning"),
        (&d.noon, &mut out.noon, "noon"),
        (&d.afternoon, &mut out.afternoon, "afternoon"),
        (&d.evening, &mut out.evening, "evening"),
    ] {
        let Some(raw) = raw else { continue };
        last_at = Some(raw.referenced);
        match parse_hhmm(&raw.value) {
            Some(m) => *slot = m,
            None => errors.push(source.error_at(
                raw.referenced,
                format!(
                    "dayparts.{name}: {:?} is not a time of day; write it as \"HH:MM\", e.g. \"05:00\"",
                    raw.value
                ),
            )),
        }
    }
    if let Err(e) = out.validate() {
        errors.push(match last_at {
            Some(at) => source.error_at(at, e.0),
            None => source.error_at_line(0, 0, e.0),
        });
    }
    out
}

/// Minutes after midnight of `HH:MM`.
fn parse_hhmm(s: &str) -> Option<u16> {
    use chrono::Timelike;
    crate::yaml_file::parse_hhmm(s).and_then(|t| u16::try_from(t.hour() * 60 + t.minute()).ok())
}

/// A number of days: `30`, `30d` or `4w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DaysValue(u32);

impl<'de> Deserialize<'de> for DaysValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DaysValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of days such as 30, 30d or 4w")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DaysValue, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|d| *d <= 36_500)
                    .map(DaysValue)
                    .ok_or_else(|| E::custom(format!("{v} days is too long; at most 36500")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DaysValue, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "{v} is negative; write a number of days such as 30d"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DaysValue, E> {
                let t = s.trim();
                let (num, unit) = match t.char_indices().last() {
                    Some((i, 'd')) => (&t[..i], 1),
                    Some((i, 'w')) => (&t[..i], 7),
                    _ => (t, 1),
                };
                let n: u64 = num.trim().parse().map_err(|_| {
                    E::custom(format!(
                        "{s:?} is not a number of days; write e.g. 30d (days) or 4w (weeks)"
                    ))
                })?;
                self.visit_u64(n * unit)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<SegmentsFile, Vec<FileError>> {
        let src = YamlSource {
            path: PathBuf::from("campaigns/segments.yaml"),
            text: text.into(),
        };
        SegmentsFile::from_source(
            &src,
            &CheckContext {
                stores: Some(vec!["SH-001".into(), "SH-002".into()]),
            },
        )
    }

    #[test]
    fn empty_or_comment_only_file_is_the_defaults() {
        let f = load("# nothing yet\n").unwrap();
        assert_eq!(f.rules, SegmentRules::default());
        assert!(f.custom.is_empty());
    }

    #[test]
    fn rules_and_segments_are_read() {
        let f = load(
            "lifecycle:\n  new: { joined_within: 2w, max_orders: 2 }\n  active: { last_order_within: 14d }\n  at_risk: { last_order_within: 45 }\n\
             value_tiers:\n  vip: { top_percent: 5 }\n  core: { next_percent: 20 }\n\
             dayparts: { morning: \"06:00\" }\n\
             segments:\n  morning_regulars: \"order_count_90d >= 8 and favorite_daypart == 'morning'\"\n  sh: store in ['SH-001']\n",
        )
        .unwrap();
        assert_eq!(f.rules.lifecycle.new_within_days, 14);
        assert_eq!(f.rules.lifecycle.new_max_orders, 2);
        assert_eq!(f.rules.lifecycle.active_within_days, 14);
        assert_eq!(f.rules.lifecycle.at_risk_within_days, 45);
        assert_eq!(f.rules.lifecycle.lapsed_within_days, 180);
        assert_eq!(f.rules.tiers.vip_top_percent, 5);
        assert_eq!(f.rules.dayparts.morning, 360);
        assert_eq!(f.custom.len(), 2);
        assert!(f.custom("morning_regulars").is_some());
        assert!(f.all_names().contains(&"sh".to_owned()));
    }

    #[test]
    fn expression_errors_point_into_the_file() {
        let errs =
            load("segments:\n  a: \"order_cnt >= 3\"\n  b: order_count >= 'x'\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].column), (2, 7), "{}", errs[0]);
        assert!(errs[0].message.contains("order_count"), "{}", errs[0]);
        assert_eq!(errs[1].line, 3);
        assert!(
            errs[1]
                .to_string()
                .starts_with("campaigns/segments.yaml:3:")
        );
    }

    #[test]
    fn structural_and_rule_errors_are_specific() {
        let e = load("lifecycle:\n  activ: { last_order_within: 30d }\n").unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 3));
        assert!(e[0].message.contains("activ"));
        let e = load("lifecycle:\n  at_risk: { last_order_within: 20d }\n").unwrap_err();
        assert!(e[0].message.contains("longer than"), "{}", e[0]);
        assert_eq!(e[0].line, 2);
        let e = load("lifecycle:\n  active: { last_order_within: soon }\n").unwrap_err();
        assert!(e[0].message.contains("not a number of days"), "{}", e[0]);
        let e = load("dayparts: { noon: \"25:00\" }\n").unwrap_err();
        assert!(e[0].message.contains("HH:MM"), "{}", e[0]);
        let e = load("segments:\n  VIP2: \"order_count > 1\"\n  vip: \"order_count > 1\"\n")
            .unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0].message.contains("lower-case"));
        assert!(e[1].message.contains("built-in"));
    }

    #[test]
    fn hhmm_parsing() {
        assert_eq!(parse_hhmm("05:00"), Some(300));
        assert_eq!(parse_hhmm("5:30"), Some(330));
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("12:60"), None);
        assert_eq!(parse_hhmm("noon"), None);
    }
}

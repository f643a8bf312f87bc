//! Type checking: resolves attribute names, checks operators against the
//! attribute's type, and converts each literal to the stored unit.

use chrono::NaiveDate;

use super::catalog::{self, Attr, AttrType};
use super::error::{ErrorKind, ExprError, Span};
use super::lexer::CmpOp;
use super::parser::{Cond, Lit, LitKind, SynTest, Syntax, shorten, span_text};
use super::sql::SqlParam;
use super::tree::{Leaf, Node, Test};
use super::value::day_number;
use crate::domain::{Money, MoneyError};

/// What the checker knows beyond the expression itself.
#[derive(Debug, Clone, Default)]
pub struct CheckContext {
    /// Known store codes. When `Some`, `store == 'XX'` with a code not in the
    /// list is an error that lists the known codes.
    pub stores: Option<Vec<String>>,
}

/// Most known store codes listed in an error message.
const STORES_LISTED: usize = 30;
/// Smallest similarity for a "did you mean".
const SIMILAR: f64 = 0.8;

/// Check a syntax tree; `chars` is the source, to quote literals in messages.
pub(crate) fn check(tree: &Syntax, ctx: &CheckContext, chars: &[char]) -> Result<Node, ExprError> {
    let checker = Checker { ctx, chars };
    checker.node(tree)
}

struct Checker<'a> {
    ctx: &'a CheckContext,
    chars: &'a [char],
}

impl Checker<'_> {
    fn node(&self, tree: &Syntax) -> Result<Node, ExprError> {
        Ok(match tree {
            Syntax::And(items) => Node::And(self.nodes(items)?),
            Syntax::Or(items) => Node::Or(self.nodes(items)?),
            Syntax::Not(inner) => Node::Not(Box::new(self.node(inner)?)),
            Syntax::Cond(cond) => Node::Leaf(self.leaf(cond)?),
        })
    }

    fn nodes(&self, items: &[Syntax]) -> Result<Vec<Node>, ExprError> {
        items.iter().map(|i| self.node(i)).collect()
    }

    /// The source text of a span, shortened for a message.
    fn text(&self, span: Span) -> String {
        span_text(self.chars, span)
    }

    fn leaf(&self, cond: &Cond) -> Result<Leaf, ExprError> {
        let attr = resolve(&cond.name, cond.name_span)?;
        let test = match &cond.test {
            SynTest::Cmp(op, lit) => {
                self.check_op(attr, *op, cond.op_span)?;
                Test::Cmp(*op, self.value(attr, lit)?)
            }
            SynTest::In { negated, items } => {
                self.check_set_op(attr, cond.op_span)?;
                let values = items
                    .iter()
                    .map(|lit| self.value(attr, lit))
                    .collect::<Result<_, _>>()?;
                Test::In {
                    negated: *negated,
                    values,
                }
            }
            SynTest::Contains { negated, value } => {
                self.check_contains(attr, cond.op_span)?;
                Test::Contains {
                    negated: *negated,
                    tag: self.tag(value)?,
                }
            }
        };
        Ok(Leaf { attr, test })
    }

    /// `<`, `>` … only on numbers, days, money and dates; nothing but `contains` on tags.
    fn check_op(&self, attr: Attr, op: CmpOp, span: Span) -> Result<(), ExprError> {
        match attr.ty() {
            AttrType::Tags => Err(self.tags_need_contains(attr, span)),
            AttrType::Enum(_) | AttrType::Text if !matches!(op, CmpOp::Eq | CmpOp::Ne) => Err(self
                .not_allowed(attr, span)
                .with_hint(format!("{attr} has no order; use == or != (or in [...])"))),
            _ => Ok(()),
        }
    }

    fn check_set_op(&self, attr: Attr, span: Span) -> Result<(), ExprError> {
        match attr.ty() {
            AttrType::Tags => Err(self.not_allowed(attr, span).with_hint(
                "test each tag with contains: (tags contains 'a' or tags contains 'b')",
            )),
            _ => Ok(()),
        }
    }

    fn check_contains(&self, attr: Attr, span: Span) -> Result<(), ExprError> {
        match attr.ty() {
            AttrType::Tags => Ok(()),
            _ => Err(self.not_allowed(attr, span).with_hint(format!(
                "'contains' only works with tags; use == to compare {attr}"
            ))),
        }
    }

    fn tags_need_contains(&self, attr: Attr, span: Span) -> ExprError {
        self.not_allowed(attr, span)
            .with_hint("test a tag with contains, e.g. tags contains 'vegetarian'")
    }

    fn not_allowed(&self, attr: Attr, span: Span) -> ExprError {
        ExprError::new(
            span,
            ErrorKind::OperatorNotAllowed {
                attr,
                op: self.text(span),
                what: what(attr),
            },
        )
    }

    /// Convert a literal to the attribute's stored unit.
    fn value(&self, attr: Attr, lit: &Lit) -> Result<SqlParam, ExprError> {
        let span = lit.span;
        match (attr.ty(), &lit.kind) {
            (AttrType::Int, LitKind::Number(n)) if !n.contains('.') => {
                self.in_range(attr, whole(n, span)?, span)
            }
            (AttrType::Days, LitKind::Number(n)) if !n.contains('.') => {
                whole(n, span).map(SqlParam::Int)
            }
            (AttrType::Days, LitKind::Duration(days)) => Ok(SqlParam::Int(*days)),
            (AttrType::Money, LitKind::Number(n)) => money(n, span),
            (AttrType::Date, LitKind::Str(s)) => date(s, span),
            (AttrType::Enum(values), LitKind::Str(s)) => enum_value(attr, values, s, span),
            (AttrType::Text, LitKind::Str(s)) => self.text_value(attr, s, span),
            _ => Err(self.mismatch(attr, lit)),
        }
    }

    fn in_range(&self, attr: Attr, n: i64, span: Span) -> Result<SqlParam, ExprError> {
        match attr.int_range() {
            Some((min, max)) if n < min || n > max => Err(ExprError::new(
                span,
                ErrorKind::OutOfRange {
                    attr,
                    text: self.text(span),
                    min,
                    max,
                },
            )),
            _ => Ok(SqlParam::Int(n)),
        }
    }

    fn mismatch(&self, attr: Attr, lit: &Lit) -> ExprError {
        let message = format!(
            "{attr} is {}; compare it with {}, not {}",
            what(attr),
            example(attr),
            self.text(lit.span)
        );
        let err = ExprError::new(lit.span, ErrorKind::TypeMismatch { attr, message });
        match (attr.ty(), &lit.kind) {
            (AttrType::Date, LitKind::Number(_) | LitKind::Duration(_)) => err.with_hint(
                "for a number of days use recency_days, days_since_joined or days_to_birthday",
            ),
            (_, LitKind::Duration(_)) => err.with_hint(
                "durations such as 30d are for recency_days, days_since_joined and days_to_birthday",
            ),
            (_, LitKind::Str(s)) if is_number(s) => err.with_hint("remove the quotes"),
            (_, LitKind::Number(n)) if !matches!(attr.ty(), AttrType::Int | AttrType::Days) => {
                err.with_hint(format!("put it in quotes: '{n}'"))
            }
            _ => err,
        }
    }

    fn text_value(&self, attr: Attr, s: &str, span: Span) -> Result<SqlParam, ExprError> {
        match attr {
            Attr::Rfm if !is_rfm(s) => Err(ExprError::new(
                span,
                ErrorKind::BadRfm {
                    text: self.text(span),
                },
            )),
            Attr::Store => self.store(s, span),
            _ => Ok(SqlParam::Text(s.to_owned())),
        }
    }

    fn store(&self, code: &str, span: Span) -> Result<SqlParam, ExprError> {
        let Some(known) = &self.ctx.stores else {
            return Ok(SqlParam::Text(code.to_owned()));
        };
        if known.iter().any(|k| k == code) {
            return Ok(SqlParam::Text(code.to_owned()));
        }
        let err = ExprError::new(
            span,
            ErrorKind::UnknownStore {
                code: shorten(code),
            },
        );
        Err(err.with_hint(with_suggestion(
            suggest(code, known.iter().map(String::as_str)),
            &format!("known stores: {}", list_stores(known)),
        )))
    }

    /// The tag after `contains`: text that a stored tag could equal.
    fn tag(&self, lit: &Lit) -> Result<String, ExprError> {
        let LitKind::Str(tag) = &lit.kind else {
            let message = format!(
                "tags contains needs a tag in quotes, such as 'vegetarian', not {}",
                self.text(lit.span)
            );
            let err = ExprError::new(
                lit.span,
                ErrorKind::TypeMismatch {
                    attr: Attr::Tags,
                    message,
                },
            );
            return Err(err);
        };
        let reason = if tag.is_empty() {
            "tags are never empty"
        } else if tag.contains(';') {
            "tags never contain ';'"
        } else if tag.trim() != tag {
            "tags never start or end with spaces"
        } else {
            return Ok(tag.clone());
        };
        Err(ExprError::new(
            lit.span,
            ErrorKind::BadTag {
                tag: self.text(lit.span),
                reason,
            },
        ))
    }
}

/// Look an attribute up by name, or say which names exist.
fn resolve(name: &str, span: Span) -> Result<Attr, ExprError> {
    Attr::from_name(name).ok_or_else(|| {
        let valid = format!("valid attributes: {}", catalog::all_names());
        let suggestion = suggest(name, Attr::ALL.map(Attr::name));
        ExprError::new(
            span,
            ErrorKind::UnknownAttribute {
                name: shorten(name),
            },
        )
        .with_hint(with_suggestion(suggestion, &valid))
    })
}

/// `did you mean 'x'? <rest>` or just `<rest>`.
fn with_suggestion(suggestion: Option<&str>, rest: &str) -> String {
    match suggestion {
        Some(s) => format!("did you mean '{s}'? {rest}"),
        None => rest.to_owned(),
    }
}

/// The candidate most like `word`, if one is close enough and closer than all others.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    let mut tied = false;
    for c in candidates {
        let score = similarity(&lower, &c.to_lowercase());
        match best {
            Some((top, _)) if score < top => {}
            Some((top, _)) if score == top => tied = true,
            _ if score >= SIMILAR => {
                best = Some((score, c));
                tied = false;
            }
            _ => {}
        }
    }
    best.filter(|_| !tied).map(|(_, c)| c)
}

/// Jaro-Winkler, raised for a word that is part of the candidate (`birthday`).
fn similarity(word: &str, candidate: &str) -> f64 {
    let score = strsim::jaro_winkler(word, candidate);
    if word.chars().count() >= 4 && candidate.contains(word) {
        score.max(SIMILAR)
    } else {
        score
    }
}

fn list_stores(known: &[String]) -> String {
    if known.is_empty() {
        return "none".to_owned();
    }
    let shown: Vec<&str> = known
        .iter()
        .take(STORES_LISTED)
        .map(String::as_str)
        .collect();
    match known.len().saturating_sub(STORES_LISTED) {
        0 => shown.join(", "),
        more => format!("{}, … ({more} more)", shown.join(", ")),
    }
}

/// What kind of thing the attribute is, after "is".
fn what(attr: Attr) -> &'static str {
    match (attr, attr.ty()) {
        (_, AttrType::Int) if attr.int_range().is_some() => "a score from 1 to 5",
        (_, AttrType::Int) => "a whole number",
        (_, AttrType::Days) => "a number of days",
        (_, AttrType::Money) => "an amount in yuan",
        (_, AttrType::Date) => "a date",
        (_, AttrType::Enum(_)) => "a category",
        (Attr::Rfm, _) => "an RFM code",
        (Attr::Store, _) => "a store code",
        (_, AttrType::Text) => "text",
        (_, AttrType::Tags) => "a list of tags",
    }
}

/// A valid right-hand side, after "compare it with".
fn example(attr: Attr) -> String {
    match (attr, attr.ty()) {
        (_, AttrType::Int) if attr.int_range().is_some() => "a whole number such as 4".into(),
        (_, AttrType::Int) => "a whole number such as 2".into(),
        (_, AttrType::Days) => {
            "a number of days such as 30, or a duration such as 30d or 4w".into()
        }
        (_, AttrType::Money) => "a number such as 100 or 99.50".into(),
        (_, AttrType::Date) => "a date in quotes such as '2024-03-15'".into(),
        (_, AttrType::Enum(values)) => format!("one of {} in quotes", quoted(values)),
        (Attr::Rfm, _) => "a code in quotes such as '545'".into(),
        (Attr::Store, _) => "a store code in quotes such as 'SH-001'".into(),
        (_, AttrType::Text) => "text in quotes".into(),
        (_, AttrType::Tags) => "contains and a tag in quotes".into(),
    }
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_number(s: &str) -> bool {
    let body = s.trim().strip_prefix('-').unwrap_or(s.trim());
    !body.is_empty() && body.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn is_rfm(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| (b'1'..=b'5').contains(&b))
}

/// A whole number that fits in 64 bits.
fn whole(text: &str, span: Span) -> Result<i64, ExprError> {
    text.parse::<i64>().map_err(|_| {
        ExprError::new(
            span,
            ErrorKind::NumberTooLarge {
                text: shorten(text),
            },
        )
    })
}

/// Yuan to fen.
fn money(text: &str, span: Span) -> Result<SqlParam, ExprError> {
    match Money::parse_yuan(text) {
        Ok(m) => Ok(SqlParam::Int(m.fen())),
        Err(MoneyError::TooManyDecimals { places, .. }) => Err(ExprError::new(
            span,
            ErrorKind::TooManyDecimals {
                text: shorten(text),
                places,
            },
        )
        .with_hint("round it to the fen, e.g. 12.35")),
        Err(MoneyError::TooLarge { .. }) => Err(ExprError::new(
            span,
            ErrorKind::NumberTooLarge {
                text: shorten(text),
            },
        )
        .with_hint("amounts are within ±100000000 yuan")),
        Err(_) => Err(ExprError::new(
            span,
            ErrorKind::BadNumber {
                text: shorten(text),
            },
        )),
    }
}

/// `'YYYY-MM-DD'` to a day number.
fn date(text: &str, span: Span) -> Result<SqlParam, ExprError> {
    parse_date(text)
        .map(|d| SqlParam::Int(day_number(d)))
        .ok_or_else(|| {
            ExprError::new(
                span,
                ErrorKind::BadDate {
                    text: format!("'{}'", shorten(text)),
                },
            )
            .with_hint("write a date that exists as 'YYYY-MM-DD', e.g. '2024-03-15'")
        })
}

/// Strictly `YYYY-MM-DD` and a real date.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return None;
    }
    let year = text[0..4].parse().ok()?;
    let month = text[5..7].parse().ok()?;
    let day = text[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

fn enum_value(
    attr: Attr,
    values: &'static [&'static str],
    s: &str,
    span: Span,
) -> Result<SqlParam, ExprError> {
    if values.contains(&s) {
        return Ok(SqlParam::Text(s.to_owned()));
    }
    let valid = format!("valid values: {}", quoted(values));
    let suggestion = suggest(s, values.iter().copied());
    Err(ExprError::new(
        span,
        ErrorKind::UnknownEnumValue {
            attr,
            value: shorten(s),
        },
    )
    .with_hint(with_suggestion(suggestion, &valid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let names = Attr::ALL.map(Attr::name);
        assert_eq!(suggest("order_cnt", names), Some("order_count"));
        assert_eq!(suggest("Order_Count", names), Some("order_count"));
        assert_eq!(suggest("spend_90d", names), Some("spent_90d"));
        assert_eq!(suggest("birthday", names), Some("days_to_birthday"));
        assert_eq!(suggest("tag", names), Some("tags"));
        assert_eq!(suggest("zzz", names), None);
        assert_eq!(
            suggest("atrisk", catalog::LIFECYCLES.iter().copied()),
            Some("at_risk")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01").map(day_number), Some(0));
        assert_eq!(parse_date("2024-02-29").map(day_number), Some(19782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-3-01"), None);
        assert_eq!(parse_date("2024/03/01"), None);
        assert_eq!(parse_date("+2024-03-0"), None);
    }

    #[test]
    fn rfm_codes() {
        assert!(is_rfm("545"));
        assert!(!is_rfm("546"));
        assert!(!is_rfm("54"));
        assert!(!is_rfm("０４５"));
    }
}

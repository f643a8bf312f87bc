//! Errors a marketer reads: where (column and length), what, and how to fix it.

use thiserror::Error;

use super::catalog::Attr;

/// A stretch of the expression: first character (0-based) and length, both in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    /// Offset of the first character.
    pub start: usize,
    /// Number of characters (at least 1 when reported).
    pub len: usize,
}

impl Span {
    pub(crate) fn new(start: usize, len: usize) -> Span {
        Span { start, len }
    }

    /// From the start of `self` to the end of `other`.
    pub(crate) fn to(self, other: Span) -> Span {
        let end = (other.start + other.len).max(self.start + self.len);
        Span::new(self.start, end - self.start)
    }
}

/// What is wrong with an expression; its `Display` is the message without hint or column.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    /// Nothing but whitespace.
    #[error("the expression is empty")]
    Empty,
    /// More than [`super::MAX_CHARS`] characters.
    #[error("the expression is {chars} characters long; at most {max} are allowed")]
    TooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// Parentheses and `not` nested more than [`super::MAX_DEPTH`] levels.
    #[error("the expression is nested more than {max} levels deep")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A character that starts no token.
    #[error("unexpected character '{ch}'")]
    UnexpectedChar {
        /// The character.
        ch: char,
    },
    /// `&&`, `||`, `!` and friends from programming languages.
    #[error("'{op}' is not an operator here")]
    SymbolOperator {
        /// What was written.
        op: String,
    },
    /// A quote with no closing quote.
    #[error("the text starting here is not closed")]
    UnclosedString,
    /// A backslash followed by something other than a quote or backslash.
    #[error("unknown escape '\\{ch}' in text")]
    BadEscape {
        /// The character after the backslash.
        ch: char,
    },
    /// Digits mixed with letters or dots in a way that is no number.
    #[error("{text} is not a number")]
    BadNumber {
        /// As written.
        text: String,
    },
    /// A number that does not fit.
    #[error("{text} is too large")]
    NumberTooLarge {
        /// As written.
        text: String,
    },
    /// Some token where another was needed.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What would have been valid.
        expected: String,
        /// What was there, quoted.
        found: String,
    },
    /// `(` without `)`.
    #[error("'(' is never closed")]
    UnclosedParen,
    /// `[` without `]`.
    #[error("'[' is never closed")]
    UnclosedList,
    /// `)` without `(`.
    #[error("')' has no matching '('")]
    UnmatchedParen,
    /// An operator with no value after it.
    #[error("missing value after '{op}'")]
    MissingValue {
        /// The operator.
        op: String,
    },
    /// More after a complete expression.
    #[error("unexpected {found} after a complete condition")]
    TrailingInput {
        /// What was there, quoted.
        found: String,
    },
    /// `8 <= order_count`.
    #[error("the attribute must come first and the value after the operator")]
    LiteralOnLeft,
    /// A name that is no attribute.
    #[error("unknown attribute '{name}'")]
    UnknownAttribute {
        /// As written.
        name: String,
    },
    /// A value of the wrong kind for the attribute; the message says which kind is right.
    #[error("{message}")]
    TypeMismatch {
        /// The attribute.
        attr: Attr,
        /// The full sentence.
        message: String,
    },
    /// `<` on a category, `contains` on a number, `==` on tags …
    #[error("'{op}' cannot be used with {attr}, which is {what}")]
    OperatorNotAllowed {
        /// The attribute.
        attr: Attr,
        /// The operator as written.
        op: String,
        /// What kind of attribute it is.
        what: &'static str,
    },
    /// A word that is none of the attribute's values.
    #[error("'{value}' is not a valid {attr} value")]
    UnknownEnumValue {
        /// The attribute.
        attr: Attr,
        /// As written (unquoted).
        value: String,
    },
    /// `1.234` for an amount.
    #[error("{text} has {places} decimal places; amounts in yuan have at most 2 (fen)")]
    TooManyDecimals {
        /// As written.
        text: String,
        /// How many decimals it has.
        places: usize,
    },
    /// A date that is not `YYYY-MM-DD` or does not exist.
    #[error("{text} is not a valid date")]
    BadDate {
        /// As written.
        text: String,
    },
    /// A number outside the attribute's range (`m_score >= 6`).
    #[error("{text} is out of range: {attr} is between {min} and {max}")]
    OutOfRange {
        /// The attribute.
        attr: Attr,
        /// As written.
        text: String,
        /// Smallest valid value.
        min: i64,
        /// Largest valid value.
        max: i64,
    },
    /// `in []`.
    #[error("the list is empty")]
    EmptyList,
    /// A store code not in the configured list.
    #[error("unknown store '{code}'")]
    UnknownStore {
        /// As written (unquoted).
        code: String,
    },
    /// A tag no customer can have (empty, with `;`, or padded with spaces).
    #[error("{tag} can never be a tag: {reason}")]
    BadTag {
        /// As written.
        tag: String,
        /// Why.
        reason: &'static str,
    },
    /// An RFM code that is not three digits 1–5.
    #[error("{text} is not an RFM code: rfm is three digits from 1 to 5, such as '545'")]
    BadRfm {
        /// As written.
        text: String,
    },
}

/// A rejected expression: where, what, and usually how to fix it.
///
/// `Display` gives `col 17: <message>; <hint>`. The column counts characters
/// from 1 within the expression text (a line break counts as one character);
/// use [`ExprError::line_column`] for multi-line expressions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("col {column}: {kind}{}", .hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
pub struct ExprError {
    column: usize,
    len: usize,
    kind: ErrorKind,
    hint: Option<String>,
}

impl ExprError {
    pub(crate) fn new(span: Span, kind: ErrorKind) -> ExprError {
        ExprError {
            column: span.start + 1,
            len: span.len.max(1),
            kind,
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> ExprError {
        self.hint = Some(hint.into());
        self
    }

    /// 1-based column of the first character at fault, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// How many characters are at fault (at least 1).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an error covers at least one character.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message without column or hint.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }

    /// How to fix it, when there is advice.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// 1-based line and column within `source` (the text that was parsed),
    /// for expressions that span several lines.
    pub fn line_column(&self, source: &str) -> (usize, usize) {
        let before: Vec<char> = source.chars().take(self.column - 1).collect();
        let line = 1 + before.iter().filter(|c| **c == '\n').count();
        let col = 1 + before.iter().rev().take_while(|c| **c != '\n').count();
        (line, col)
    }

    /// The message, then the offending line of `source` with `^^^` under the
    /// characters at fault:
    ///
    /// ```text
    /// col 26: unknown attribute 'order_cnt'; did you mean 'order_count'? …
    ///     order_count_90d >= 8 and order_cnt > 2
    ///                              ^^^^^^^^^
    /// ```
    pub fn render(&self, source: &str) -> String {
        let (line_no, col) = self.line_column(source);
        let line = source.lines().nth(line_no - 1).unwrap_or("");
        let chars: Vec<char> = line.chars().collect();
        let pad: usize = chars.iter().take(col - 1).map(|c| display_width(*c)).sum();
        let carets: usize = chars
            .iter()
            .skip(col - 1)
            .take(self.len)
            .map(|c| display_width(*c))
            .sum::<usize>()
            .max(1);
        let shown: String = chars
            .iter()
            .map(|c| if c.is_control() { ' ' } else { *c })
            .collect();
        let code = format!("    {shown}");
        format!(
            "{self}\n{}\n    {}{}",
            code.trim_end(),
            " ".repeat(pad),
            "^".repeat(carets)
        )
    }
}

/// Terminal columns a character takes: 2 for CJK and full-width forms, else 1.
fn display_width(c: char) -> usize {
    let wide = matches!(u32::from(c),
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_hint() {
        let e = ExprError::new(Span::new(4, 2), ErrorKind::EmptyList);
        assert_eq!(e.to_string(), "col 5: the list is empty");
        let e = e.with_hint("put at least one value");
        assert_eq!(
            e.to_string(),
            "col 5: the list is empty; put at least one value"
        );
        assert_eq!((e.column(), e.len()), (5, 2));
    }

    #[test]
    fn render_puts_carets_under_span() {
        let e = ExprError::new(Span::new(3, 3), ErrorKind::EmptyList);
        let r = e.render("ab cde f");
        assert_eq!(r, "col 4: the list is empty\n    ab cde f\n       ^^^");
    }

    #[test]
    fn render_counts_wide_characters_twice() {
        let src = "tags contains '素食' x";
        let e = ExprError::new(Span::new(19, 1), ErrorKind::EmptyList);
        let r = e.render(src);
        let last = r.lines().last().unwrap_or_default();
        assert_eq!(last, format!("    {}^", " ".repeat(21)));
    }

    #[test]
    fn render_on_second_line_and_past_end() {
        let src = "order_count > 1\nand (";
        let e = ExprError::new(Span::new(21, 1), ErrorKind::UnclosedParen);
        assert_eq!(e.line_column(src), (2, 6));
        let r = e.render(src);
        assert!(r.ends_with("    and (\n         ^"), "{r}");
    }
}

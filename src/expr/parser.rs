//! Recursive-descent parser from tokens to an untyped syntax tree with spans.
//!
//! Grammar (keywords case-insensitive, `not` binds tighter than `and`, which
//! binds tighter than `or`):
//!
//! ```text
//! expr      := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" expr ")" | condition
//! condition := NAME op value
//!            | NAME ["not"] "in" "[" value ("," value)* [","] "]"
//!            | NAME ["not"] "contains" value
//! value     := NUMBER | DURATION | STRING
//! ```

use super::MAX_DEPTH;
use super::error::{ErrorKind, ExprError, Span};
use super::lexer::{CmpOp, Keyword, Tok, Token};

/// A literal as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LitKind {
    /// `12`, `-3`, `99.50`.
    Number(String),
    /// `30d`, `4w`, in days.
    Duration(i64),
    /// Quoted text.
    Str(String),
}

/// A literal and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lit {
    pub kind: LitKind,
    pub span: Span,
}

/// What a condition tests, before type checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SynTest {
    Cmp(CmpOp, Lit),
    In { negated: bool, items: Vec<Lit> },
    Contains { negated: bool, value: Lit },
}

/// One `attribute <test>` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cond {
    pub name: String,
    pub name_span: Span,
    /// The operator (`>=`, `in`, `not in`, `contains` …) as written.
    pub op_span: Span,
    pub test: SynTest,
}

/// The syntax tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Syntax {
    And(Vec<Syntax>),
    Or(Vec<Syntax>),
    Not(Box<Syntax>),
    Cond(Cond),
}

/// Parse a token list ending in [`Tok::End`]; `chars` is the source, for messages.
pub(crate) fn parse(tokens: &[Token], chars: &[char]) -> Result<Syntax, ExprError> {
    let mut p = Parser {
        tokens,
        chars,
        pos: 0,
        depth: 0,
    };
    let tree = p.or()?;
    p.finish()?;
    Ok(tree)
}

struct Parser<'a> {
    tokens: &'a [Token],
    chars: &'a [char],
    pos: usize,
    depth: usize,
}

/// Longest piece of source quoted in a message, in characters.
const QUOTE_MAX: usize = 40;

impl Parser<'_> {
    fn current(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn tok(&self) -> &Tok {
        &self.current().tok
    }

    fn span(&self) -> Span {
        self.current().span
    }

    fn advance(&mut self) {
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, keyword: Keyword) -> bool {
        if *self.tok() == Tok::Keyword(keyword) {
            self.advance();
            return true;
        }
        false
    }

    /// The source text of `span`, shortened.
    fn text(&self, span: Span) -> String {
        span_text(self.chars, span)
    }

    /// The current token for a message: `'>='`, `'abc'`, or `the end of the expression`.
    fn found(&self) -> String {
        match self.tok() {
            Tok::End => "the end of the expression".to_owned(),
            Tok::Str(_) => self.text(self.span()),
            _ => format!("'{}'", self.text(self.span())),
        }
    }

    fn unexpected(&self, expected: &str) -> ExprError {
        ExprError::new(
            self.span(),
            ErrorKind::Unexpected {
                expected: expected.to_owned(),
                found: self.found(),
            },
        )
    }

    fn enter(&mut self, span: Span) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::new(span, ErrorKind::TooDeep { max: MAX_DEPTH })
                .with_hint("remove parentheses or 'not's that are not needed"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// After the whole expression: only the end may follow.
    fn finish(&self) -> Result<(), ExprError> {
        match self.tok() {
            Tok::End => Ok(()),
            Tok::RParen => Err(ExprError::new(self.span(), ErrorKind::UnmatchedParen)
                .with_hint("remove it, or add the '(' it should close")),
            _ => Err(ExprError::new(
                self.span(),
                ErrorKind::TrailingInput {
                    found: self.found(),
                },
            )
            .with_hint(self.trailing_hint())),
        }
    }

    /// `30 days` is a duration with a space; anything else is a missing `and`/`or`.
    fn trailing_hint(&self) -> &'static str {
        let previous = self.pos.checked_sub(1).map(|i| &self.tokens[i].tok);
        let unit = match self.tok() {
            Tok::Ident(word) => word.to_ascii_lowercase(),
            _ => String::new(),
        };
        let is_unit = ["d", "day", "days", "w", "week", "weeks"].contains(&unit.as_str());
        match previous {
            Some(Tok::Number(_)) if is_unit => {
                "write a duration without a space: 30d for days, 4w for weeks"
            }
            _ => "join conditions with 'and' or 'or'",
        }
    }

    fn or(&mut self) -> Result<Syntax, ExprError> {
        let mut items = vec![self.and()?];
        while self.eat(Keyword::Or) {
            items.push(self.and()?);
        }
        Ok(collapse(items, Syntax::Or))
    }

    fn and(&mut self) -> Result<Syntax, ExprError> {
        let mut items = vec![self.unary()?];
        while self.eat(Keyword::And) {
            items.push(self.unary()?);
        }
        Ok(collapse(items, Syntax::And))
    }

    fn unary(&mut self) -> Result<Syntax, ExprError> {
        let span = self.span();
        match self.tok() {
            Tok::Keyword(Keyword::Not) => {
                self.enter(span)?;
                self.advance();
                let inner = self.unary()?;
                self.leave();
                Ok(Syntax::Not(Box::new(inner)))
            }
            Tok::LParen => self.group(span),
            Tok::Ident(name) => {
                let name = name.clone();
                self.advance();
                self.condition(name, span).map(Syntax::Cond)
            }
            Tok::Number(_) | Tok::Duration(_) | Tok::Str(_) => Err(self.literal_first()),
            _ => Err(self.missing_condition()),
        }
    }

    /// `( expr )`.
    fn group(&mut self, open: Span) -> Result<Syntax, ExprError> {
        self.enter(open)?;
        self.advance();
        let inner = self.or()?;
        match self.tok() {
            Tok::RParen => self.advance(),
            Tok::End => {
                return Err(
                    ExprError::new(open, ErrorKind::UnclosedParen).with_hint("add the missing ')'")
                );
            }
            _ => return Err(self.unexpected("'and', 'or' or ')'")),
        }
        self.leave();
        Ok(inner)
    }

    /// No condition where one must start.
    fn missing_condition(&self) -> ExprError {
        let previous = self.pos.checked_sub(1).map(|i| &self.tokens[i].tok);
        let err = self.unexpected("a condition such as order_count >= 2");
        match (previous, self.tok()) {
            (Some(Tok::LParen), Tok::RParen) => err.with_hint("the parentheses are empty"),
            (Some(Tok::Keyword(k)), _) => err.with_hint(format!(
                "a condition is missing after '{}'",
                keyword_name(*k)
            )),
            (None, Tok::Keyword(k)) => err.with_hint(format!(
                "a condition is missing before '{}'",
                keyword_name(*k)
            )),
            (_, Tok::Op(_)) => err.with_hint("put the attribute name before the operator"),
            _ => err,
        }
    }

    /// `8 <= order_count`: say how to write it.
    fn literal_first(&self) -> ExprError {
        let lit = self.span();
        let err = ExprError::new(lit, ErrorKind::LiteralOnLeft);
        let op = self.tokens.get(self.pos + 1);
        let name = self.tokens.get(self.pos + 2);
        match (op.map(|t| &t.tok), name.map(|t| &t.tok)) {
            (Some(Tok::Op(op)), Some(Tok::Ident(name))) => err.with_hint(format!(
                "write it as: {name} {} {}",
                op.flipped().symbol(),
                self.text(lit)
            )),
            _ => err.with_hint("start with the attribute name, e.g. order_count >= 2"),
        }
    }

    /// After the attribute name.
    fn condition(&mut self, name: String, name_span: Span) -> Result<Cond, ExprError> {
        let op_span = self.span();
        let cond = |op_span: Span, test: SynTest| Cond {
            name: name.clone(),
            name_span,
            op_span,
            test,
        };
        match self.tok().clone() {
            Tok::Op(op) => {
                self.advance();
                let value = self.value(op_span, &name)?;
                Ok(cond(op_span, SynTest::Cmp(op, value)))
            }
            Tok::Keyword(Keyword::In) => {
                self.advance();
                let items = self.list(op_span, &name)?;
                let negated = false;
                Ok(cond(op_span, SynTest::In { negated, items }))
            }
            Tok::Keyword(Keyword::Contains) => {
                self.advance();
                let value = self.value(op_span, &name)?;
                let negated = false;
                Ok(cond(op_span, SynTest::Contains { negated, value }))
            }
            Tok::Keyword(Keyword::Not) => {
                self.advance();
                self.negated(op_span, &name)
                    .map(|(span, test)| cond(span, test))
            }
            _ => Err(self.missing_operator(&name)),
        }
    }

    /// After `name not`: `in [...]` or `contains value`.
    fn negated(&mut self, not_span: Span, name: &str) -> Result<(Span, SynTest), ExprError> {
        let op_span = not_span.to(self.span());
        match self.tok() {
            Tok::Keyword(Keyword::In) => {
                self.advance();
                let items = self.list(op_span, name)?;
                Ok((
                    op_span,
                    SynTest::In {
                        negated: true,
                        items,
                    },
                ))
            }
            Tok::Keyword(Keyword::Contains) => {
                self.advance();
                let value = self.value(op_span, name)?;
                Ok((
                    op_span,
                    SynTest::Contains {
                        negated: true,
                        value,
                    },
                ))
            }
            _ => Err(self
                .unexpected("'in' or 'contains' after 'not'")
                .with_hint(format!(
                    "to negate a comparison put 'not' before it: not ({name} == ...)"
                ))),
        }
    }

    fn missing_operator(&self, name: &str) -> ExprError {
        self.unexpected(&format!("a comparison after '{name}'"))
            .with_hint(format!(
                "use ==, !=, <, <=, >, >=, in [...] or contains, e.g. {name} == ..."
            ))
    }

    /// The value after an operator.
    fn value(&mut self, op_span: Span, name: &str) -> Result<Lit, ExprError> {
        let span = self.span();
        let kind = match self.tok() {
            Tok::Number(n) => LitKind::Number(n.clone()),
            Tok::Duration(d) => LitKind::Duration(*d),
            Tok::Str(s) => LitKind::Str(s.clone()),
            Tok::LBracket => {
                return Err(self
                    .unexpected("a single value")
                    .with_hint(format!("to test several values write: {name} in [...]")));
            }
            Tok::Ident(word) => return Err(self.bare_word(word)),
            _ => return Err(self.missing_value(op_span, name)),
        };
        self.advance();
        Ok(Lit { kind, span })
    }

    fn missing_value(&self, op_span: Span, name: &str) -> ExprError {
        let op = self.text(op_span);
        ExprError::new(op_span, ErrorKind::MissingValue { op: op.clone() }).with_hint(format!(
            "put a value after it, e.g. {name} {op} {}",
            if op.contains("contains") {
                "'vip'"
            } else {
                "2"
            }
        ))
    }

    /// An unquoted word where a value belongs.
    fn bare_word(&self, word: &str) -> ExprError {
        let err = self.unexpected("a value");
        if super::catalog::Attr::from_name(word).is_some() {
            err.with_hint("comparing two attributes is not supported; compare with a value")
        } else {
            err.with_hint(format!("write text in quotes: '{word}'"))
        }
    }

    /// `[ value, ... ]` after `in` / `not in`.
    fn list(&mut self, op_span: Span, name: &str) -> Result<Vec<Lit>, ExprError> {
        let open = self.span();
        if *self.tok() != Tok::LBracket {
            if *self.tok() == Tok::End {
                return Err(self.missing_value(op_span, name));
            }
            return Err(self
                .unexpected("'[' after 'in'")
                .with_hint(format!("put the values in brackets: {name} in ['a', 'b']")));
        }
        self.advance();
        let mut items = Vec::new();
        loop {
            match self.tok() {
                Tok::RBracket => break,
                Tok::End => return Err(unclosed_list(open)),
                Tok::LBracket => {
                    return Err(self
                        .unexpected("a value")
                        .with_hint("lists cannot be nested"));
                }
                _ => items.push(self.value(op_span, name)?),
            }
            match self.tok() {
                Tok::Comma => self.advance(),
                Tok::RBracket => break,
                Tok::End => return Err(unclosed_list(open)),
                _ => return Err(self.unexpected("',' or ']'")),
            }
        }
        let close = self.span();
        self.advance();
        if items.is_empty() {
            return Err(ExprError::new(open.to(close), ErrorKind::EmptyList)
                .with_hint("put at least one value between [ and ]"));
        }
        Ok(items)
    }
}

fn unclosed_list(open: Span) -> ExprError {
    ExprError::new(open, ErrorKind::UnclosedList).with_hint("add the missing ']'")
}

fn keyword_name(k: Keyword) -> &'static str {
    match k {
        Keyword::And => "and",
        Keyword::Or => "or",
        Keyword::Not => "not",
        Keyword::In => "in",
        Keyword::Contains => "contains",
    }
}

/// One item stays itself; several are joined with `join`.
fn collapse(mut items: Vec<Syntax>, join: fn(Vec<Syntax>) -> Syntax) -> Syntax {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    join(items)
}

/// The source text of `span`, shortened for a message.
pub(crate) fn span_text(chars: &[char], span: Span) -> String {
    let end = (span.start + span.len).min(chars.len());
    let text: String = chars[span.start.min(end)..end].iter().collect();
    shorten(&text)
}

/// At most [`QUOTE_MAX`] characters, with `…` when cut.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::lexer::lex;

    fn tree(src: &str) -> Syntax {
        let chars: Vec<char> = src.chars().collect();
        let tokens = lex(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        parse(&tokens, &chars).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    /// The tree with every condition replaced by its attribute name.
    fn shape(s: &Syntax) -> String {
        let join = |items: &[Syntax], sep: &str| {
            let parts: Vec<String> = items.iter().map(shape).collect();
            format!("({})", parts.join(sep))
        };
        match s {
            Syntax::And(items) => join(items, " & "),
            Syntax::Or(items) => join(items, " | "),
            Syntax::Not(inner) => format!("!{}", shape(inner)),
            Syntax::Cond(c) => c.name.clone(),
        }
    }

    #[test]
    fn precedence_not_and_or() {
        assert_eq!(shape(&tree("a==1 or b==1 and c==1")), "(a | (b & c))");
        assert_eq!(shape(&tree("a==1 and b==1 or c==1")), "((a & b) | c)");
        assert_eq!(shape(&tree("not a==1 and b==1")), "(!a & b)");
        assert_eq!(shape(&tree("not (a==1 and b==1)")), "!(a & b)");
        assert_eq!(shape(&tree("(a==1 or b==1) and c==1")), "((a | b) & c)");
        assert_eq!(shape(&tree("a==1 and b==1 and c==1")), "(a & b & c)");
        assert_eq!(shape(&tree("NOT not a==1")), "!!a");
        assert_eq!(shape(&tree("((a==1))")), "a");
    }

    #[test]
    fn condition_forms() {
        let Syntax::Cond(c) = tree("store not in ['a', 'b',]") else {
            panic!("not a condition")
        };
        assert_eq!(c.op_span, Span::new(6, 6));
        let SynTest::In {
            negated: true,
            items,
        } = c.test
        else {
            panic!("not 'not in'")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].span, Span::new(19, 3));
        let Syntax::Cond(c) = tree("tags NOT CONTAINS 'x'") else {
            panic!("not a condition")
        };
        assert!(matches!(c.test, SynTest::Contains { negated: true, .. }));
        let Syntax::Cond(c) = tree("x = -2.5") else {
            panic!("not a condition")
        };
        let want = SynTest::Cmp(
            CmpOp::Eq,
            Lit {
                kind: LitKind::Number("-2.5".into()),
                span: Span::new(4, 4),
            },
        );
        assert_eq!(c.test, want);
    }
}

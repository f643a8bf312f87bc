//! Splits an expression into tokens, each with its span in characters.

use super::error::{ErrorKind, ExprError, Span};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` (or `=`).
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl CmpOp {
    /// As written in expressions (`==` for equality).
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// The same test with the operands swapped (`8 <= x` is `x >= 8`).
    pub(crate) fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            same => same,
        }
    }
}

/// A keyword; matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    In,
    Contains,
}

impl Keyword {
    fn parse(word: &str) -> Option<Keyword> {
        let lower = word.to_ascii_lowercase();
        Some(match lower.as_str() {
            "and" => Keyword::And,
            "or" => Keyword::Or,
            "not" => Keyword::Not,
            "in" => Keyword::In,
            "contains" => Keyword::Contains,
            _ => return None,
        })
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A name (attribute, or a misplaced bare word).
    Ident(String),
    Keyword(Keyword),
    /// `12`, `-3`, `99.50` as written.
    Number(String),
    /// `30d`, `4w` in days.
    Duration(i64),
    /// Quoted text, escapes resolved.
    Str(String),
    Op(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Tokenise `src`; the last token is always [`Tok::End`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut lexer = Lexer { chars, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let end = token.tok == Tok::End;
        tokens.push(token);
        if end {
            return Ok(tokens);
        }
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn text(&self, start: usize) -> String {
        self.chars[start..self.pos].iter().collect()
    }

    fn token(&self, tok: Tok, start: usize) -> Token {
        Token {
            tok,
            span: Span::new(start, self.pos - start),
        }
    }

    fn next_token(&mut self) -> Result<Token, ExprError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(self.token(Tok::End, start));
        };
        if is_ident_start(c) {
            return Ok(self.word(start));
        }
        if c.is_ascii_digit() || (c == '-' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) {
            return self.number(start);
        }
        if c == '\'' || c == '"' {
            return self.string(start, c);
        }
        self.symbol(start, c)
    }

    fn word(&mut self, start: usize) -> Token {
        while self.peek().is_some_and(is_ident_char) {
            self.pos += 1;
        }
        let text = self.text(start);
        let tok = match Keyword::parse(&text) {
            Some(k) => Tok::Keyword(k),
            None => Tok::Ident(text),
        };
        self.token(tok, start)
    }

    /// `-?digits(.digits)?` optionally followed by `d` or `w`.
    fn number(&mut self, start: usize) -> Result<Token, ExprError> {
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_')
        {
            self.pos += 1;
        }
        let text = self.text(start);
        let span = Span::new(start, self.pos - start);
        if let Some(days) = duration(&text, span)? {
            return Ok(self.token(Tok::Duration(days), start));
        }
        if !is_decimal(&text) {
            return Err(bad_number(&text, span));
        }
        Ok(self.token(Tok::Number(text), start))
    }

    fn string(&mut self, start: usize, quote: char) -> Result<Token, ExprError> {
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        ExprError::new(Span::new(start, 1), ErrorKind::UnclosedString)
                            .with_hint(format!("add the closing {quote} at the end of the text")),
                    );
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(self.token(Tok::Str(value), start));
                }
                Some('\\') => value.push(self.escape()?),
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// At a backslash: the escaped character.
    fn escape(&mut self) -> Result<char, ExprError> {
        let at = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(c @ ('\'' | '"' | '\\')) => {
                self.pos += 1;
                Ok(c)
            }
            Some(c) => Err(
                ExprError::new(Span::new(at, 2), ErrorKind::BadEscape { ch: c })
                    .with_hint("only \\' \\\" and \\\\ may follow a backslash"),
            ),
            None => Err(ExprError::new(Span::new(at, 1), ErrorKind::UnclosedString)
                .with_hint("the text ends with a lone backslash; write \\\\ for a backslash")),
        }
    }

    fn symbol(&mut self, start: usize, c: char) -> Result<Token, ExprError> {
        let next = self.peek_at(1);
        let (tok, len) = match (c, next) {
            ('=', Some('=')) => (Tok::Op(CmpOp::Eq), 2),
            ('=', _) => (Tok::Op(CmpOp::Eq), 1),
            ('!', Some('=')) => (Tok::Op(CmpOp::Ne), 2),
            ('<', Some('=')) => (Tok::Op(CmpOp::Le), 2),
            ('<', Some('>')) => (Tok::Op(CmpOp::Ne), 2),
            ('<', _) => (Tok::Op(CmpOp::Lt), 1),
            ('>', Some('=')) => (Tok::Op(CmpOp::Ge), 2),
            ('>', _) => (Tok::Op(CmpOp::Gt), 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            (',', _) => (Tok::Comma, 1),
            _ => return Err(self.bad_symbol(start, c, next)),
        };
        self.pos += len;
        Ok(self.token(tok, start))
    }

    fn bad_symbol(&self, start: usize, c: char, next: Option<char>) -> ExprError {
        let symbol = |op: &str, hint: &str| {
            let len = op.chars().count();
            ExprError::new(
                Span::new(start, len),
                ErrorKind::SymbolOperator { op: op.to_owned() },
            )
            .with_hint(hint.to_owned())
        };
        match (c, next) {
            ('&', Some('&')) => symbol("&&", "write 'and'"),
            ('|', Some('|')) => symbol("||", "write 'or'"),
            ('&', _) => symbol("&", "write 'and'"),
            ('|', _) => symbol("|", "write 'or'"),
            ('!', _) => symbol(
                "!",
                "write 'not' before a condition, or '!=' for 'not equal'",
            ),
            ('.', Some(d)) if d.is_ascii_digit() => {
                ExprError::new(Span::new(start, 1), ErrorKind::UnexpectedChar { ch: '.' })
                    .with_hint("put a 0 before the decimal point, e.g. 0.50")
            }
            ('‘' | '’' | '“' | '”', _) => {
                ExprError::new(Span::new(start, 1), ErrorKind::UnexpectedChar { ch: c })
                    .with_hint("use straight quotes ' or \" around text")
            }
            ('¥' | '￥' | '$', _) => {
                ExprError::new(Span::new(start, 1), ErrorKind::UnexpectedChar { ch: c })
                    .with_hint("write amounts in yuan without a currency sign, e.g. 100 or 99.50")
            }
            _ => {
                let err = ExprError::new(Span::new(start, 1), ErrorKind::UnexpectedChar { ch: c });
                match half_width(c) {
                    Some(ascii) => err.with_hint(format!(
                        "type the half-width '{ascii}' instead of the full-width '{c}' \
                         (switch the input method to English)"
                    )),
                    None => err,
                }
            }
        }
    }
}

/// The ASCII character a full-width (Chinese input method) symbol stands for.
fn half_width(c: char) -> Option<char> {
    match c {
        '【' => Some('['),
        '】' => Some(']'),
        '、' => Some(','),
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0),
        _ => None,
    }
}

/// Whether `text` is `-?digits(.digits)?`.
fn is_decimal(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// `30d` / `4w` as days; `None` if `text` has no duration suffix.
fn duration(text: &str, span: Span) -> Result<Option<i64>, ExprError> {
    let (number, per_unit) = if let Some(n) = text.strip_suffix('d') {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('w') {
        (n, 7)
    } else {
        return Ok(None);
    };
    if !is_decimal(number) {
        return Err(bad_number(text, span));
    }
    if number.contains('.') {
        return Err(
            ExprError::new(span, ErrorKind::BadNumber { text: text.into() })
                .with_hint("durations are whole days or weeks, e.g. 10d or 2w"),
        );
    }
    number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .map(Some)
        .ok_or_else(|| ExprError::new(span, ErrorKind::NumberTooLarge { text: text.into() }))
}

fn bad_number(text: &str, span: Span) -> ExprError {
    let hint = if text.ends_with(['元', '块']) || text.to_ascii_lowercase().contains("yuan") {
        "write amounts in yuan without a unit, e.g. 100 or 99.50"
    } else {
        "write a number such as 8 or 99.50, or a duration such as 30d or 4w"
    };
    ExprError::new(span, ErrorKind::BadNumber { text: text.into() }).with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    fn err(src: &str) -> ExprError {
        match lex(src) {
            Ok(t) => panic!("{src}: lexed as {t:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn tokens_and_spans() {
        let t = lex("order_count>=8 AND x").unwrap();
        assert_eq!(t[0].tok, Tok::Ident("order_count".into()));
        assert_eq!(t[0].span, Span::new(0, 11));
        assert_eq!(t[1].tok, Tok::Op(CmpOp::Ge));
        assert_eq!(t[1].span, Span::new(11, 2));
        assert_eq!(t[2].tok, Tok::Number("8".into()));
        assert_eq!(t[3].tok, Tok::Keyword(Keyword::And));
        assert_eq!(t[5].tok, Tok::End);
        assert_eq!(t[5].span, Span::new(20, 0));
    }

    #[test]
    fn operators() {
        let ops = toks("= == != <> < <= > >=");
        use CmpOp::*;
        let want = [Eq, Eq, Ne, Ne, Lt, Le, Gt, Ge].map(Tok::Op);
        assert_eq!(&ops[..8], &want);
    }

    #[test]
    fn numbers_durations_negative() {
        assert_eq!(
            toks("-3 99.50 30d 4w -2d"),
            [
                Tok::Number("-3".into()),
                Tok::Number("99.50".into()),
                Tok::Duration(30),
                Tok::Duration(28),
                Tok::Duration(-2),
                Tok::End
            ]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#"'it\'s' "say \"hi\"" 'a\\b' "x'y" '素食'"#),
            [
                Tok::Str("it's".into()),
                Tok::Str("say \"hi\"".into()),
                Tok::Str("a\\b".into()),
                Tok::Str("x'y".into()),
                Tok::Str("素食".into()),
                Tok::End
            ]
        );
    }

    #[test]
    fn keywords_case_insensitive() {
        assert_eq!(
            toks("AND Or nOt IN Contains"),
            [
                Tok::Keyword(Keyword::And),
                Tok::Keyword(Keyword::Or),
                Tok::Keyword(Keyword::Not),
                Tok::Keyword(Keyword::In),
                Tok::Keyword(Keyword::Contains),
                Tok::End
            ]
        );
    }

    #[test]
    fn errors_with_columns() {
        let e = err("a == 1 && b == 2");
        assert_eq!((e.column(), e.len()), (8, 2));
        assert_eq!(e.hint(), Some("write 'and'"));
        let e = err("a == 1 || b == 2");
        assert_eq!(e.hint(), Some("write 'or'"));
        let e = err("store == 'SH-001");
        assert_eq!((e.column(), e.kind()), (10, &ErrorKind::UnclosedString));
        let e = err("x == 12abc");
        assert_eq!((e.column(), e.len()), (6, 5));
        assert!(matches!(e.kind(), ErrorKind::BadNumber { .. }));
        let e = err("x == 1.5d");
        assert!(e.to_string().contains("whole days"), "{e}");
        let e = err("x == 1.2.3");
        assert!(matches!(e.kind(), ErrorKind::BadNumber { .. }));
        let e = err("x == .5");
        assert_eq!(e.column(), 6);
        assert!(e.to_string().contains("put a 0"), "{e}");
        let e = err("x == 'a\\nb'");
        assert_eq!((e.column(), e.len()), (8, 2));
        let e = err("x == 99999999999999999999d");
        assert!(matches!(e.kind(), ErrorKind::NumberTooLarge { .. }));
        let e = err("素食 == #");
        assert_eq!(e.column(), 7);
        let e = err("total_spent >= 100元");
        assert_eq!((e.column(), e.len()), (16, 4));
        assert!(
            e.to_string().ends_with("without a unit, e.g. 100 or 99.50"),
            "{e}"
        );
        let e = err("total_spent >= ¥100");
        assert!(e.to_string().contains("without a currency sign"), "{e}");
    }

    #[test]
    fn full_width_symbols_get_a_hint() {
        let e = err("（order_count > 1)");
        assert_eq!(e.column(), 1);
        assert_eq!(
            e.to_string(),
            "col 1: unexpected character '（'; type the half-width '(' instead of the \
             full-width '（' (switch the input method to English)"
        );
        assert!(
            err("store in ['a'，'b']")
                .to_string()
                .contains("half-width ','")
        );
        assert!(
            err("store in 【'a']")
                .to_string()
                .contains("half-width '['")
        );
        assert!(
            err("order_count ＞ 1")
                .to_string()
                .contains("half-width '>'")
        );
    }
}

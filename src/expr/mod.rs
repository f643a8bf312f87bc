//! The segment / audience expression language.
//!
//! Marketers write boolean conditions over per-customer attributes, e.g.
//! `order_count_90d >= 8 and favorite_daypart == 'morning'` or
//! `recency_days > 30d and not (value_tier == 'regular')`. An [`Expr`] is
//! parsed and type-checked once, then either compiled to a parameterised SQL
//! fragment ([`Expr::to_sql`]) or evaluated for one customer ([`Expr::eval`]);
//! both give the same answer for every customer.
//!
//! The SQL fragment belongs in the `WHERE` clause of
//!
//! ```sql
//! FROM customers c
//! JOIN customer_attributes a ON a.customer_id = c.id
//! JOIN seg_today t ON t.store_key = a.store_key
//! ```
//!
//! where the caller provides the CTEs `seg_today(store_key, today)` and
//! `seg_birthdays(today, month, day, days)`; day numbers count days since
//! 1970-01-01 in the store's local calendar ([`day_number`]).

mod catalog;
mod check;
mod error;
mod eval;
mod lexer;
mod parser;
mod sql;
mod tree;
mod value;

use std::fmt;

pub use catalog::{Attr, AttrType, DAYPARTS, LIFECYCLES, VALUE_TIERS};
pub use check::CheckContext;
pub(crate) use check::suggest;
pub use error::{ErrorKind, ExprError};
pub use eval::Clause;
pub use sql::{BindParams, Dialect, Placeholders, SqlParam};
pub use value::{AttrLookup, Value, date_of_day_number, day_number};

use error::Span;
use tree::Node;

/// Longest accepted expression, in characters.
pub const MAX_CHARS: usize = 4_000;
/// Deepest accepted nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 64;

/// A parsed, type-checked expression. Keeps its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    source: String,
    root: Node,
    attrs: Vec<Attr>,
}

impl Expr {
    /// Lex, parse and type-check `src`.
    ///
    /// Error columns count characters from 1 within `src`.
    pub fn parse(src: &str, ctx: &CheckContext) -> Result<Expr, ExprError> {
        let chars: Vec<char> = src.chars().collect();
        if chars.len() > MAX_CHARS {
            return Err(too_long(chars.len()));
        }
        let tokens = lexer::lex(src)?;
        if tokens.len() == 1 {
            return Err(ExprError::new(Span::new(0, 1), ErrorKind::Empty)
                .with_hint("write a condition such as order_count >= 2"));
        }
        let syntax = parser::parse(&tokens, &chars)?;
        let root = check::check(&syntax, ctx, &chars)?;
        let mut attrs: Vec<Attr> = Vec::new();
        for leaf in root.leaves() {
            if !attrs.contains(&leaf.attr) {
                attrs.push(leaf.attr);
            }
        }
        Ok(Expr {
            source: src.to_owned(),
            root,
            attrs,
        })
    }

    /// A SQL boolean expression (parenthesised), with every literal as a bind
    /// parameter pushed onto `placeholders` in the order they appear.
    pub fn to_sql(&self, dialect: Dialect, placeholders: &mut Placeholders) -> String {
        sql::compile(&self.root, dialect, placeholders)
    }

    /// Whether the customer whose attributes `values` gives is matched.
    pub fn eval(&self, values: &dyn AttrLookup) -> bool {
        eval::eval(&self.root, values)
    }

    /// Each comparison, left to right, with the customer's actual value and
    /// whether the comparison held (ignoring any enclosing `not`).
    pub fn explain(&self, values: &dyn AttrLookup) -> Vec<Clause> {
        eval::explain(&self.root, values)
    }

    /// The attributes read, each once, in order of first use.
    pub fn attributes(&self) -> impl Iterator<Item = Attr> + '_ {
        self.attrs.iter().copied()
    }

    /// Whether the result can change from one day to the next without new data.
    pub fn depends_on_today(&self) -> bool {
        self.attributes().any(Attr::depends_on_today)
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn too_long(chars: usize) -> ExprError {
    ExprError::new(
        Span::new(MAX_CHARS, chars - MAX_CHARS),
        ErrorKind::TooLong {
            chars,
            max: MAX_CHARS,
        },
    )
    .with_hint("split it into smaller segments")
}

#[cfg(test)]
mod tests;

//! The checked, typed tree that SQL generation and evaluation walk.

use super::catalog::Attr;
use super::lexer::CmpOp;
use super::sql::SqlParam;

/// A checked expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// All must hold (two or more items).
    And(Vec<Node>),
    /// At least one must hold (two or more items).
    Or(Vec<Node>),
    /// The inner node must not hold.
    Not(Box<Node>),
    /// One comparison on one attribute.
    Leaf(Leaf),
}

/// One comparison on one attribute, with its value already converted to the
/// stored unit (fen, days, day number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub attr: Attr,
    pub test: Test,
}

/// What a leaf tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Test {
    /// `attr <op> value`.
    Cmp(CmpOp, SqlParam),
    /// `attr in [...]` / `attr not in [...]` (never empty).
    In {
        negated: bool,
        values: Vec<SqlParam>,
    },
    /// `tags contains 'x'` / `tags not contains 'x'`.
    Contains { negated: bool, tag: String },
}

impl Node {
    /// Every leaf, left to right.
    pub(crate) fn leaves(&self) -> Vec<&Leaf> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, out: &mut Vec<&'a Leaf>) {
        match self {
            Node::And(items) | Node::Or(items) => {
                for item in items {
                    item.collect_leaves(out);
                }
            }
            Node::Not(inner) => inner.collect_leaves(out),
            Node::Leaf(leaf) => out.push(leaf),
        }
    }
}

//! Evaluating a checked expression for one customer, and explaining the result.
//!
//! Evaluation agrees with the compiled SQL: a comparison on a missing value
//! (`Value::Null`) is false, whatever the operator, and `not` then makes it true.

use std::cmp::Ordering;

use super::catalog::Attr;
use super::lexer::CmpOp;
use super::sql::SqlParam;
use super::tree::{Leaf, Node, Test};
use super::value::{AttrLookup, Value, show_int, show_value};

/// One comparison of an expression, as evaluated for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The comparison, e.g. `order_count_90d >= 8` or `total_spent >= ¥100.00`.
    pub text: String,
    /// The customer's value, e.g. `12`, `¥123.50`, `2024-03-15`, `none`.
    pub actual: String,
    /// Whether the comparison itself held (before any enclosing `not`).
    pub held: bool,
}

/// Whether `node` holds for the customer behind `values`.
pub(crate) fn eval(node: &Node, values: &dyn AttrLookup) -> bool {
    match node {
        Node::And(items) => items.iter().all(|i| eval(i, values)),
        Node::Or(items) => items.iter().any(|i| eval(i, values)),
        Node::Not(inner) => !eval(inner, values),
        Node::Leaf(leaf) => leaf_holds(leaf, &values.get(leaf.attr)),
    }
}

/// Each leaf, left to right, with the customer's value and its result.
pub(crate) fn explain(node: &Node, values: &dyn AttrLookup) -> Vec<Clause> {
    node.leaves()
        .into_iter()
        .map(|leaf| {
            let value = values.get(leaf.attr);
            Clause {
                text: leaf_text(leaf),
                actual: show_value(leaf.attr, &value),
                held: leaf_holds(leaf, &value),
            }
        })
        .collect()
}

/// One comparison; false on a missing value or a value of the wrong kind.
fn leaf_holds(leaf: &Leaf, value: &Value) -> bool {
    match (&leaf.test, value) {
        (_, Value::Null) => false,
        (Test::Cmp(op, param), v) => compare(v, param).is_some_and(|o| op_holds(*op, o)),
        (Test::In { negated, values }, v) => {
            let mut results = values.iter().map(|p| compare(v, p));
            if results.clone().any(|r| r.is_none()) {
                return false;
            }
            results.any(|r| r == Some(Ordering::Equal)) != *negated
        }
        (Test::Contains { negated, tag }, Value::Tags(tags)) => {
            tags.iter().any(|t| t == tag) != *negated
        }
        (Test::Contains { .. }, _) => false,
    }
}

/// Order of a value against a parameter of the same kind.
fn compare(value: &Value, param: &SqlParam) -> Option<Ordering> {
    match (value, param) {
        (Value::Int(v), SqlParam::Int(p)) => Some(v.cmp(p)),
        (Value::Text(v), SqlParam::Text(p)) => Some(v.as_str().cmp(p.as_str())),
        _ => None,
    }
}

fn op_holds(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Eq => ord.is_eq(),
        CmpOp::Ne => ord.is_ne(),
        CmpOp::Lt => ord.is_lt(),
        CmpOp::Le => ord.is_le(),
        CmpOp::Gt => ord.is_gt(),
        CmpOp::Ge => ord.is_ge(),
    }
}

/// `order_count_90d >= 8`, `store in ['SH-001', 'SH-002']`, `tags contains 'x'`.
fn leaf_text(leaf: &Leaf) -> String {
    let attr = leaf.attr;
    match &leaf.test {
        Test::Cmp(op, param) => format!("{attr} {} {}", op.symbol(), show_param(attr, param)),
        Test::In { negated, values } => {
            let items: Vec<String> = values.iter().map(|p| show_param(attr, p)).collect();
            let not = if *negated { "not " } else { "" };
            format!("{attr} {not}in [{}]", items.join(", "))
        }
        Test::Contains { negated, tag } => {
            let not = if *negated { "not " } else { "" };
            format!("{attr} {not}contains {}", quote(tag))
        }
    }
}

fn show_param(attr: Attr, param: &SqlParam) -> String {
    match param {
        SqlParam::Int(n) => show_int(attr, *n),
        SqlParam::Text(s) => quote(s),
    }
}

/// In single quotes, with `'` and `\` escaped as in the expression language.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

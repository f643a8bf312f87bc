//! Identifiers: customer ids, order ids and store codes.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// Why an identifier was rejected. `kind` is "customer id", "order id" or "store code".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// Nothing but whitespace.
    #[error("{kind} is empty; write a value such as {example}")]
    Empty {
        kind: &'static str,
        example: &'static str,
    },
    /// More characters than allowed.
    #[error("{kind} is {len} characters long; at most {max} are allowed (shorten it)")]
    TooLong {
        kind: &'static str,
        max: usize,
        len: usize,
    },
    /// A character that may not appear in this kind of identifier.
    #[error("{kind} {input} contains {ch:?}; {allowed}")]
    BadChar {
        kind: &'static str,
        input: String,
        ch: char,
        allowed: &'static str,
    },
}

/// What a kind of identifier may look like.
struct Rules {
    kind: &'static str,
    max: usize,
    allowed: fn(char) -> bool,
    allowed_msg: &'static str,
    example: &'static str,
}

fn id_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control()
}

fn code_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

const CUSTOMER_ID: Rules = Rules {
    kind: "customer id",
    max: 64,
    allowed: id_char,
    allowed_msg: "ids may not contain spaces or control characters (remove them)",
    example: "C10023",
};

const ORDER_ID: Rules = Rules {
    kind: "order id",
    max: 64,
    allowed: id_char,
    allowed_msg: "ids may not contain spaces or control characters (remove them)",
    example: "O-20260301-0001",
};

const STORE_CODE: Rules = Rules {
    kind: "store code",
    max: 32,
    allowed: code_char,
    allowed_msg: "store codes use only letters A-Z, digits, '_' and '-' (e.g. BJ-001)",
    example: "BJ-001",
};

fn check(input: &str, rules: &Rules) -> Result<String, IdError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(IdError::Empty {
            kind: rules.kind,
            example: rules.example,
        });
    }
    let len = s.chars().count();
    if len > rules.max {
        return Err(IdError::TooLong {
            kind: rules.kind,
            max: rules.max,
            len,
        });
    }
    if let Some(ch) = s.chars().find(|&c| !(rules.allowed)(c)) {
        return Err(IdError::BadChar {
            kind: rules.kind,
            input: super::shown(s),
            ch,
            allowed: rules.allowed_msg,
        });
    }
    Ok(s.to_owned())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $rules:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parse user input (trimmed first).
            pub fn parse(input: &str) -> Result<Self, IdError> {
                check(input, &$rules).map(Self)
            }

            /// For values read back from our own database: not checked again.
            pub fn from_trusted(value: String) -> Self {
                Self(value)
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A customer's id in the chain's own system: 1-64 characters, no whitespace or control characters.
    CustomerId,
    CUSTOMER_ID
);

id_type!(
    /// An order's id: 1-64 characters, no whitespace or control characters.
    OrderId,
    ORDER_ID
);

id_type!(
    /// A store's code: 1-32 characters of `[A-Za-z0-9_-]`, case kept.
    StoreCode,
    STORE_CODE
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_id_valid_and_trimmed() {
        let id = CustomerId::parse("  C10023 ").unwrap();
        assert_eq!(id.as_str(), "C10023");
        assert_eq!(id.to_string(), "C10023");
        assert_eq!(CustomerId::parse("客户-001").unwrap().as_str(), "客户-001");
        assert!(CustomerId::parse(&"x".repeat(64)).is_ok());
        assert!(CustomerId::parse(&"客".repeat(64)).is_ok());
    }

    #[test]
    fn customer_id_empty() {
        for s in ["", "   ", "\t\u{3000}"] {
            let e = CustomerId::parse(s).unwrap_err();
            assert!(
                matches!(
                    e,
                    IdError::Empty {
                        kind: "customer id",
                        ..
                    }
                ),
                "{s:?}"
            );
            assert!(e.to_string().starts_with("customer id is empty"));
        }
    }

    #[test]
    fn customer_id_too_long_counts_chars() {
        let e = CustomerId::parse(&"客".repeat(65)).unwrap_err();
        assert_eq!(
            e,
            IdError::TooLong {
                kind: "customer id",
                max: 64,
                len: 65
            }
        );
        assert_eq!(
            e.to_string(),
            "customer id is 65 characters long; at most 64 are allowed (shorten it)"
        );
    }

    #[test]
    fn customer_id_rejects_inner_whitespace_and_control() {
        let e = CustomerId::parse("C 1").unwrap_err();
        assert!(matches!(e, IdError::BadChar { ch: ' ', .. }));
        assert!(e.to_string().contains("customer id \"C 1\" contains ' '"));
        assert!(matches!(
            CustomerId::parse("C\u{7}1").unwrap_err(),
            IdError::BadChar { ch: '\u{7}', .. }
        ));
        assert!(matches!(
            CustomerId::parse("C\u{3000}1").unwrap_err(),
            IdError::BadChar { ch: '\u{3000}', .. }
        ));
    }

    #[test]
    fn order_id_names_its_kind() {
        assert_eq!(OrderId::parse("O-1").unwrap().as_str(), "O-1");
        let e = OrderId::parse("").unwrap_err();
        assert!(e.to_string().starts_with("order id is empty"));
        let e = OrderId::parse("a b").unwrap_err();
        assert!(e.to_string().starts_with("order id "));
        assert!(OrderId::parse(&"9".repeat(65)).is_err());
    }

    #[test]
    fn store_code_rules() {
        let c = StoreCode::parse(" bj_Chaoyang-01 ").unwrap();
        assert_eq!(c.as_str(), "bj_Chaoyang-01");
        assert!(StoreCode::parse(&"A".repeat(32)).is_ok());
        assert_eq!(
            StoreCode::parse(&"A".repeat(33)).unwrap_err(),
            IdError::TooLong {
                kind: "store code",
                max: 32,
                len: 33
            }
        );
        let e = StoreCode::parse("北京1").unwrap_err();
        assert!(matches!(e, IdError::BadChar { ch: '北', .. }));
        assert!(e.to_string().contains("store codes use only letters"));
        assert!(StoreCode::parse("BJ.01").is_err());
        assert!(StoreCode::parse("BJ 01").is_err());
        assert!(
            StoreCode::parse("")
                .unwrap_err()
                .to_string()
                .starts_with("store code is empty")
        );
    }

    #[test]
    fn error_echo_is_truncated() {
        let long = format!("{} x", "客".repeat(50));
        let e = StoreCode::parse(&long).unwrap_err();
        assert!(matches!(e, IdError::TooLong { .. }));
        let e = CustomerId::parse(&format!("{} x", "客".repeat(50))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains('…'), "{msg}");
    }

    #[test]
    fn from_trusted_keeps_value_and_ordering() {
        let a = CustomerId::from_trusted("A".into());
        let b = CustomerId::from_trusted("B".into());
        assert!(a < b);
        assert_eq!(a, CustomerId::parse("A").unwrap());
        assert_eq!(StoreCode::from_trusted("x y".into()).as_str(), "x y");
    }
}

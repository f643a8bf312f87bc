//! Email addresses.

use std::fmt;

use email_address::{EmailAddress, Error as AddrError, Options};
use thiserror::Error;

/// Longest accepted address, in characters (RFC 5321 path limit).
const MAX_CHARS: usize = 254;

/// Why an email address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EmailError {
    /// Nothing but whitespace.
    #[error("email address is empty; write one such as name@example.com, or leave the cell blank")]
    Empty,
    /// Longer than 254 characters.
    #[error("email address is {len} characters long; at most 254 are allowed (check the cell)")]
    TooLong { len: usize },
    /// Whitespace inside the address (often two addresses in one cell).
    #[error(
        "{input} is not a valid email address: it contains a space; write a single address such as name@example.com"
    )]
    Whitespace { input: String },
    /// The domain has no dot (`name@localhost`).
    #[error(
        "{input} is not a valid email address: the domain {domain:?} has no dot (write the full domain, e.g. name@example.com)"
    )]
    NoDotInDomain { input: String, domain: String },
    /// Rejected by the address syntax check.
    #[error("{input} is not a valid email address: {reason} (write it like name@example.com)")]
    Invalid { input: String, reason: &'static str },
}

fn reason(e: &AddrError) -> &'static str {
    match e {
        AddrError::InvalidCharacter => "it contains a character not allowed in an email address",
        AddrError::MissingSeparator => "the @ is missing",
        AddrError::LocalPartEmpty => "there is nothing before the @",
        AddrError::LocalPartTooLong => "the part before the @ is longer than 64 characters",
        AddrError::DomainEmpty => "there is nothing after the @",
        AddrError::DomainTooLong => "the domain is too long",
        AddrError::SubDomainEmpty => {
            "the domain has an empty part (two dots in a row, or a dot at the start or end)"
        }
        AddrError::SubDomainTooLong => "a part of the domain is longer than 63 characters",
        AddrError::DomainTooFew => "the domain has no dot",
        AddrError::DomainInvalidSeparator => "the domain has a misplaced dot",
        AddrError::UnbalancedQuotes => "its quotes are unbalanced",
        AddrError::InvalidComment => "it contains a malformed comment",
        AddrError::InvalidIPAddress | AddrError::UnsupportedDomainLiteral => {
            "IP-address domains are not accepted"
        }
        AddrError::UnsupportedDisplayName
        | AddrError::MissingDisplayName
        | AddrError::MissingEndBracket => {
            "it has a name or angle brackets around it; write only the address itself"
        }
    }
}

/// An email address: syntax-checked, domain lower-cased, local part kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Parse user input (trimmed first).
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        let len = s.chars().count();
        if len > MAX_CHARS {
            return Err(EmailError::TooLong { len });
        }
        if s.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace {
                input: super::shown_masked(s),
            });
        }
        let options = Options::default()
            .without_display_text()
            .without_domain_literal();
        EmailAddress::parse_with_options(s, options).map_err(|e| EmailError::Invalid {
            input: super::shown_masked(s),
            reason: reason(&e),
        })?;
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(EmailError::Invalid {
                input: super::shown_masked(s),
                reason: reason(&AddrError::MissingSeparator),
            });
        };
        if !domain.contains('.') {
            return Err(EmailError::NoDotInDomain {
                input: super::shown_masked(s),
                domain: domain.to_owned(),
            });
        }
        Ok(Email(format!("{local}@{}", domain.to_lowercase())))
    }

    /// For values read back from our own database: not checked again.
    pub fn from_trusted(value: String) -> Email {
        Email(value)
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs and screens: `z***@example.com`.
    pub fn masked(&self) -> String {
        match self.0.rsplit_once('@') {
            Some((local, domain)) => match local.chars().next() {
                Some(first) => format!("{first}***@{domain}"),
                None => format!("***@{domain}"),
            },
            None => "***".to_owned(),
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        Email::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn valid_addresses() {
        assert_eq!(ok("zhang.wei@example.com"), "zhang.wei@example.com");
        assert_eq!(
            ok("  li+promo@mail.example.cn \t"),
            "li+promo@mail.example.cn"
        );
        assert_eq!(ok("a@b.co"), "a@b.co");
        assert_eq!(ok("用户@例子.中国"), "用户@例子.中国");
    }

    #[test]
    fn domain_lowercased_local_kept() {
        assert_eq!(ok("Zhang.Wei@Example.COM"), "Zhang.Wei@example.com");
        assert_eq!(Email::parse("X@QQ.COM").unwrap().to_string(), "X@qq.com");
    }

    #[test]
    fn empty() {
        assert_eq!(Email::parse("").unwrap_err(), EmailError::Empty);
        assert_eq!(Email::parse("  \u{3000}").unwrap_err(), EmailError::Empty);
    }

    #[test]
    fn too_long() {
        let s = format!("a@{}.com", "b".repeat(250));
        assert_eq!(
            Email::parse(&s).unwrap_err(),
            EmailError::TooLong { len: 256 }
        );
        let e = Email::parse(&"邮".repeat(300)).unwrap_err();
        assert_eq!(e, EmailError::TooLong { len: 300 });
        assert!(e.to_string().contains("at most 254"));
    }

    #[test]
    fn whitespace_inside() {
        for s in [
            "a b@example.com",
            "a@example.com b@example.com",
            "a@exa\tmple.com",
        ] {
            assert!(
                matches!(Email::parse(s).unwrap_err(), EmailError::Whitespace { .. }),
                "{s:?}"
            );
        }
    }

    #[test]
    fn no_dot_in_domain() {
        let e = Email::parse("user@localhost").unwrap_err();
        assert_eq!(
            e,
            EmailError::NoDotInDomain {
                input: "\"use********ost\"".into(),
                domain: "localhost".into()
            }
        );
        assert!(e.to_string().contains("has no dot"));
    }

    #[test]
    fn syntax_errors() {
        for s in [
            "plainaddress",
            "@example.com",
            "user@",
            "user@@example.com",
            "user@example..com",
            "user@.example.com",
            "user@example.com.",
            "Zhang<zhang@example.com>",
            "<zhang@example.com>",
            "user@[127.0.0.1]",
            "user,name@example.com",
            "user＠example.com",
            "\"unbalanced@example.com",
        ] {
            let e = Email::parse(s).unwrap_err();
            assert!(matches!(e, EmailError::Invalid { .. }), "{s:?}: {e:?}");
            assert!(e.to_string().contains("name@example.com"));
        }
        let e = Email::parse("plainaddress").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"pla******ess\" is not a valid email address: the @ is missing (write it like name@example.com)"
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "\"",
            "\"\"",
            "@",
            "<>",
            "a<@b.c>",
            "\"@\"@b.c",
            "中@文",
            "中文@",
            ">",
            "\u{0}@a.b",
        ] {
            let _ = Email::parse(s);
        }
    }

    #[test]
    fn masking() {
        assert_eq!(
            Email::parse("zhang@example.com").unwrap().masked(),
            "z***@example.com"
        );
        assert_eq!(
            Email::parse("张伟@example.com").unwrap().masked(),
            "张***@example.com"
        );
        assert_eq!(Email::from_trusted("@x.com".into()).masked(), "***@x.com");
        assert_eq!(Email::from_trusted("garbage".into()).masked(), "***");
    }
}

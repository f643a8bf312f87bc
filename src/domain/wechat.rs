//! WeChat OpenIDs.

use std::fmt;

use thiserror::Error;

const MIN_CHARS: usize = 6;
const MAX_CHARS: usize = 64;
/// Ids shorter than this are masked completely.
const MASK_SHOW_MIN_CHARS: usize = 12;

/// Why a WeChat OpenID was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WeChatOpenIdError {
    /// Nothing but whitespace.
    #[error(
        "WeChat OpenID is empty; copy it from the WeChat export (e.g. oAbC1234_xyz-5678), or leave the cell blank"
    )]
    Empty,
    /// Fewer than 6 characters.
    #[error(
        "WeChat OpenID {input} is {len} characters long; OpenIDs have 6-64 characters (copy it in full from the WeChat export)"
    )]
    TooShort { input: String, len: usize },
    /// More than 64 characters.
    #[error(
        "WeChat OpenID is {len} characters long; OpenIDs have 6-64 characters (check that the cell holds a single id)"
    )]
    TooLong { len: usize },
    /// A character outside `[A-Za-z0-9_-]`.
    #[error(
        "WeChat OpenID {input} contains {ch:?}; OpenIDs use only letters A-Z, digits, '_' and '-' (copy it exactly from the WeChat export)"
    )]
    BadChar { input: String, ch: char },
}

/// A WeChat OpenID: 6-64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeChatOpenId(String);

impl WeChatOpenId {
    /// Parse user input (trimmed first).
    pub fn parse(input: &str) -> Result<WeChatOpenId, WeChatOpenIdError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(WeChatOpenIdError::Empty);
        }
        if let Some(ch) = s
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Err(WeChatOpenIdError::BadChar {
                input: super::shown_masked(s),
                ch,
            });
        }
        let len = s.len();
        if len < MIN_CHARS {
            return Err(WeChatOpenIdError::TooShort {
                input: super::shown_masked(s),
                len,
            });
        }
        if len > MAX_CHARS {
            return Err(WeChatOpenIdError::TooLong { len });
        }
        Ok(WeChatOpenId(s.to_owned()))
    }

    /// For values read back from our own database: not checked again.
    pub fn from_trusted(value: String) -> WeChatOpenId {
        WeChatOpenId(value)
    }

    /// The OpenID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs and screens: first 4 + `****` + last 4; just `****` for ids under 12 characters.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < MASK_SHOW_MIN_CHARS {
            return "****".to_owned();
        }
        let head: String = chars.iter().take(4).collect();
        let tail: String = chars.iter().skip(chars.len() - 4).collect();
        format!("{head}****{tail}")
    }
}

impl fmt::Display for WeChatOpenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPICAL: &str = "oAbCdEfGhIjKlMnOpQrStUvW_x-1";

    #[test]
    fn valid() {
        assert_eq!(WeChatOpenId::parse(TYPICAL).unwrap().as_str(), TYPICAL);
        assert_eq!(WeChatOpenId::parse("  abc123 ").unwrap().as_str(), "abc123");
        assert!(WeChatOpenId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(WeChatOpenId::parse("a_b-c1").unwrap().to_string(), "a_b-c1");
    }

    #[test]
    fn empty() {
        assert_eq!(
            WeChatOpenId::parse(" ").unwrap_err(),
            WeChatOpenIdError::Empty
        );
    }

    #[test]
    fn length_limits() {
        assert_eq!(
            WeChatOpenId::parse("abc12").unwrap_err(),
            WeChatOpenIdError::TooShort {
                input: "\"ab*12\"".into(),
                len: 5
            }
        );
        let e = WeChatOpenId::parse(&"a".repeat(65)).unwrap_err();
        assert_eq!(e, WeChatOpenIdError::TooLong { len: 65 });
        assert!(e.to_string().contains("6-64 characters"));
    }

    #[test]
    fn bad_chars() {
        for (s, ch) in [
            ("oAbC 1234", ' '),
            ("oAbC.1234", '.'),
            ("微信用户123456", '微'),
            ("oAbC1234=", '='),
        ] {
            assert_eq!(
                WeChatOpenId::parse(s).unwrap_err(),
                WeChatOpenIdError::BadChar {
                    input: super::super::shown_masked(s),
                    ch
                },
                "{s:?}"
            );
        }
        // A short id with a bad character reports the character, not the length.
        assert!(matches!(
            WeChatOpenId::parse("微").unwrap_err(),
            WeChatOpenIdError::BadChar { ch: '微', .. }
        ));
    }

    #[test]
    fn masking() {
        assert_eq!(
            WeChatOpenId::parse(TYPICAL).unwrap().masked(),
            "oAbC****_x-1"
        );
        assert_eq!(
            WeChatOpenId::parse("abcdefghijkl").unwrap().masked(),
            "abcd****ijkl"
        );
        assert_eq!(WeChatOpenId::parse("abcdefghijk").unwrap().masked(), "****");
        assert_eq!(WeChatOpenId::parse("abc123").unwrap().masked(), "****");
        assert_eq!(WeChatOpenId::from_trusted(String::new()).masked(), "****");
        assert_eq!(
            WeChatOpenId::from_trusted("微信微信微信微信微信微信".into()).masked(),
            "微信微信****微信微信"
        );
    }
}

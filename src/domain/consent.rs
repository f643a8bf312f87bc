//! Marketing consent per channel.

use std::fmt;

use thiserror::Error;

/// Why a consent value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsentError {
    /// Not one of the accepted words.
    #[error(
        "{input} is not a consent value: write yes/no, y/n, true/false or 1/0 (leave the cell empty if unknown)"
    )]
    Invalid { input: String },
}

/// Whether a customer agreed to marketing on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Consent {
    /// Opted in.
    Yes,
    /// Opted out.
    No,
    /// Never asked, or not recorded.
    #[default]
    Unknown,
}

impl Consent {
    /// Parse `yes/no/y/n/true/false/1/0` (any case, trimmed); empty is `Unknown`.
    pub fn parse(input: &str) -> Result<Consent, ConsentError> {
        let s = input.trim();
        if s.is_empty() {
            return Ok(Consent::Unknown);
        }
        match s.to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "1" => Ok(Consent::Yes),
            "no" | "n" | "false" | "0" => Ok(Consent::No),
            _ => Err(ConsentError::Invalid {
                input: super::shown(s),
            }),
        }
    }

    /// From a nullable database column.
    pub fn from_db(value: Option<bool>) -> Consent {
        match value {
            Some(true) => Consent::Yes,
            Some(false) => Consent::No,
            None => Consent::Unknown,
        }
    }

    /// To a nullable database column.
    pub fn to_db(self) -> Option<bool> {
        match self {
            Consent::Yes => Some(true),
            Consent::No => Some(false),
            Consent::Unknown => None,
        }
    }
}

/// `yes`, `no` or `unknown`.
impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consent::Yes => "yes",
            Consent::No => "no",
            Consent::Unknown => "unknown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_values() {
        for s in [
            "yes", "YES", "Yes", "y", "Y", "true", "TRUE", "True", "1", " yes ",
        ] {
            assert_eq!(Consent::parse(s).unwrap(), Consent::Yes, "{s:?}");
        }
    }

    #[test]
    fn no_values() {
        for s in ["no", "NO", "n", "N", "false", "False", "0", "\tno\t"] {
            assert_eq!(Consent::parse(s).unwrap(), Consent::No, "{s:?}");
        }
    }

    #[test]
    fn empty_is_unknown() {
        assert_eq!(Consent::parse("").unwrap(), Consent::Unknown);
        assert_eq!(Consent::parse("   ").unwrap(), Consent::Unknown);
        assert_eq!(Consent::default(), Consent::Unknown);
    }

    #[test]
    fn invalid_values_list_accepted_ones() {
        for s in [
            "maybe",
            "unknown",
            "2",
            "yes!",
            "是",
            "否",
            "t",
            "f",
            "on",
            "off",
            "ｙｅｓ",
        ] {
            let e = Consent::parse(s).unwrap_err();
            assert_eq!(
                e,
                ConsentError::Invalid {
                    input: format!("{:?}", s.trim())
                }
            );
            assert!(e.to_string().contains("yes/no, y/n, true/false or 1/0"));
        }
    }

    #[test]
    fn db_round_trip() {
        for c in [Consent::Yes, Consent::No, Consent::Unknown] {
            assert_eq!(Consent::from_db(c.to_db()), c);
        }
        assert_eq!(Consent::Yes.to_db(), Some(true));
        assert_eq!(Consent::No.to_db(), Some(false));
        assert_eq!(Consent::Unknown.to_db(), None);
    }

    #[test]
    fn display() {
        assert_eq!(Consent::Yes.to_string(), "yes");
        assert_eq!(Consent::No.to_string(), "no");
        assert_eq!(Consent::Unknown.to_string(), "unknown");
        for c in [Consent::Yes, Consent::No] {
            assert_eq!(Consent::parse(&c.to_string()).unwrap(), c);
        }
    }
}

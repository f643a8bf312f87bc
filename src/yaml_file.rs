//! Reading the YAML files marketers write (`campaigns/*.yaml`,
//! `campaigns/segments.yaml`) with errors that point at `file:line:col`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

/// One problem in a file, at a place in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the whole file.
    pub line: u64,
    /// 1-based; 0 when the problem is the whole file.
    pub column: u64,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// A parsed YAML file, kept with its text so later checks can point into it.
pub struct YamlSource {
    pub path: PathBuf,
    pub text: String,
}

impl YamlSource {
    /// Read a file; a read failure is reported against the whole file.
    pub fn read(path: &Path) -> Result<YamlSource, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the file: {e}"),
        })?;
        Ok(YamlSource {
            path: path.to_owned(),
            text,
        })
    }

    /// Deserialize the whole file; the first structural error is returned
    /// with its place.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FileError> {
        serde_saphyr::from_str::<T>(&self.text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            self.error_at_line(
                line,
                column,
                plain_message(&e.without_snippet().to_string()),
            )
        })
    }

    /// An error at a line and column of this file.
    pub fn error_at_line(&self, line: u64, column: u64, message: impl Into<String>) -> FileError {
        FileError {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error at a YAML node.
    pub fn error_at(&self, at: Location, message: impl Into<String>) -> FileError {
        self.error_at_line(at.line(), at.column(), message)
    }

    /// Where character `col` (1-based) of a string scalar's value sits in the
    /// file: one further right when the scalar is quoted. Block scalars (`|`,
    /// `>`) are reported at their indicator.
    pub fn column_in_scalar<T>(&self, scalar: &Spanned<T>, col: usize) -> (u64, u64) {
        let at = scalar.referenced;
        let quoted = at
            .span()
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| self.text.get(o..))
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c == '"' || c == '\'');
        let block = at
            .span()
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| self.text.get(o..))
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c == '|' || c == '>');
        if block {
            return (at.line(), at.column());
        }
        let shift = u64::try_from(col.saturating_sub(1)).unwrap_or(0) + u64::from(quoted);
        (at.line(), at.column() + shift)
    }
}

/// A time of day written `HH:MM` (or `H:MM`), as marketers write send
/// windows and dayparts.
pub fn parse_hhmm(s: &str) -> Option<chrono::NaiveTime> {
    let (h, m) = s.trim().split_once(':')?;
    if !(1..=2).contains(&h.len()) || m.len() != 2 {
        return None;
    }
    chrono::NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// serde-saphyr appends " at line L, column C" and sometimes advice about its
/// own options; the place is printed in front instead, and the advice does not
/// apply to people writing the file.
fn plain_message(raw: &str) -> String {
    let mut msg = raw.trim();
    if let Some(i) = msg.rfind(" at line ") {
        msg = &msg[..i];
    }
    let msg = msg.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    if msg.starts_with("duplicate mapping key") {
        format!("{msg}: each key may appear only once")
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        expr: Option<Spanned<String>>,
    }

    fn src(text: &str) -> YamlSource {
        YamlSource {
            path: PathBuf::from("campaigns/x.yaml"),
            text: text.into(),
        }
    }

    #[test]
    fn unknown_field_has_file_line_and_column() {
        let e = src("name: a\nnmae: b\n").parse::<Doc>().unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
        assert!(e.message.starts_with("unknown field `nmae`"), "{e}");
        assert!(!e.message.contains("at line"), "{e}");
        assert!(e.to_string().starts_with("campaigns/x.yaml:2:1: "), "{e}");
    }

    #[test]
    fn duplicate_keys_are_errors_without_library_advice() {
        let e = src("name: a\nname: b\n").parse::<Doc>().unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
        assert!(!e.message.contains("DuplicateKeyPolicy"), "{e}");
    }

    #[test]
    fn columns_inside_quoted_and_plain_scalars() {
        let s = src("name: a\nexpr: \"ab cd\"\n");
        let d: Doc = s.parse().unwrap();
        let e = d.expr.unwrap();
        assert_eq!(s.column_in_scalar(&e, 4), (2, 11));
        let s = src("name: a\nexpr: ab cd\n");
        let d: Doc = s.parse().unwrap();
        let e = d.expr.unwrap();
        assert_eq!(s.column_in_scalar(&e, 4), (2, 10));
    }
}

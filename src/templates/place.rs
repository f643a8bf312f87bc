//! Where a position inside a template string sits in its YAML file.
//!
//! Handlebars reports `line:col` inside the template text; the marketer needs
//! `line:col` in the file. A template line is mapped exactly when it appears
//! verbatim in the file: a single-line plain or quoted scalar (`text: "…"`),
//! and every line of a literal block scalar (`html: |`). Anything else — a
//! folded block (`>`), a quoted string with escapes (`"\n"`) or a plain
//! scalar wrapped over several lines — is reported at the scalar's start.

use serde_saphyr::Spanned;

use crate::yaml_file::YamlSource;

/// The file position of each line of one template string.
#[derive(Debug, Clone)]
pub(super) struct Place {
    /// Where the scalar starts (its first character, after any quote).
    line: u64,
    column: u64,
    /// For each template line: the file line and the column of its first
    /// character, when the line appears verbatim there.
    lines: Vec<Option<(u64, u64)>>,
}

impl Place {
    /// Map `value` (the scalar's text, possibly trimmed at the end) onto the
    /// file it came from.
    pub(super) fn of(source: &YamlSource, scalar: &Spanned<String>, value: &str) -> Place {
        let at = scalar.referenced;
        let rest = at
            .span()
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| source.text.get(o..))
            .unwrap_or("");
        let quoted = rest.starts_with(['"', '\'']);
        let column = at.column() + u64::from(quoted);
        // A literal block starting with empty lines is located at its first
        // non-empty line.
        let leading_empty = if quoted {
            0
        } else {
            value.chars().take_while(|c| *c == '\n').count() as u64
        };
        let first_line = at.line().saturating_sub(leading_empty).max(1);
        let file_lines: Vec<&str> = source.text.lines().collect();
        let lines = value
            .split('\n')
            .enumerate()
            .map(|(k, text)| {
                let line = first_line + k as u64;
                let col = if (k as u64) < leading_empty {
                    1
                } else {
                    column
                };
                let found = file_lines
                    .get(usize::try_from(line).ok()?.checked_sub(1)?)
                    .is_some_and(|l| {
                        let skip = usize::try_from(col.saturating_sub(1)).unwrap_or(usize::MAX);
                        let start: usize = l.chars().take(skip).map(char::len_utf8).sum();
                        l.chars().count() >= skip && l[start..].starts_with(text)
                    });
                found.then_some((line, col))
            })
            .collect();
        Place {
            line: at.line(),
            column,
            lines,
        }
    }

    /// Where the scalar starts.
    pub(super) fn start(&self) -> (u64, u64) {
        (self.line, self.column)
    }

    /// The file position of 1-based `line`:`col` inside the template; the
    /// scalar's start when that line cannot be located exactly.
    pub(super) fn at(&self, line: usize, col: usize) -> (u64, u64) {
        match line
            .checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .copied()
            .flatten()
        {
            Some((l, c)) => (l, c + col.saturating_sub(1) as u64),
            None => self.start(),
        }
    }

    /// The file position of the character at `byte` in `template`.
    pub(super) fn at_byte(&self, template: &str, byte: usize) -> (u64, u64) {
        let before = template.get(..byte).unwrap_or(template);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        self.at(line, col)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;

    fn places(text: &str) -> BTreeMap<String, (String, Place)> {
        let source = YamlSource {
            path: PathBuf::from("t.yaml"),
            text: text.to_owned(),
        };
        let map: BTreeMap<String, Spanned<String>> = source.parse().unwrap();
        map.into_iter()
            .map(|(k, v)| {
                let place = Place::of(&source, &v, &v.value);
                (k, (v.value, place))
            })
            .collect()
    }

    #[test]
    fn single_line_plain_and_quoted() {
        let p = places("a: 生日{{x}}\nb: \"生日{{x}}\"\nc: '生日{{x}}'\n");
        assert_eq!(p["a"].1.at(1, 3), (1, 6));
        assert_eq!(p["b"].1.at(1, 3), (2, 7));
        assert_eq!(p["c"].1.at(1, 3), (3, 7));
        assert_eq!(p["b"].1.at_byte("生日{{x}}", "生日".len()), (2, 7));
    }

    #[test]
    fn literal_blocks_map_every_line() {
        let p = places("a: |\n  <p>\n    {{x}}\n  </p>\nb: |\n\n  x\n  y {{z}}\n");
        assert_eq!(p["a"].1.at(2, 3), (3, 5));
        assert_eq!(p["a"].1.at(1, 1), (2, 3));
        assert_eq!(p["b"].0, "\nx\ny {{z}}\n");
        assert_eq!(p["b"].1.at(3, 3), (8, 5));
    }

    #[test]
    fn folded_and_escaped_scalars_fall_back_to_the_start() {
        let p = places("a: >\n  x\n  y {{z}}\nb: \"a\\\"b {{z}}\"\n");
        assert_eq!(p["a"].1.at(1, 5), (2, 3));
        assert_eq!(p["b"].1.at(1, 6), (4, 5));
    }
}

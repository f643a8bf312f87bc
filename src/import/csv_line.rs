//! A strict RFC 4180 splitter for one line of CSV.
//!
//! Import files hold one record per line (customer and order fields never
//! contain line breaks), so a broken quote costs exactly one line: it is
//! reported with its column and every following line is still read.

/// Why a line is not valid CSV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvLineError {
    /// A quoted field has no closing quote before the end of the line.
    #[error(
        "broken quote: the quoted field starting at column {column} is never closed (double any quote inside a quoted field: \"\")"
    )]
    Unterminated { column: usize },
    /// Text follows the closing quote of a field.
    #[error(
        "broken quote: unexpected text after the closing quote at column {column} (a quote inside a quoted field is written \"\")"
    )]
    TextAfterQuote { column: usize },
    /// A quote appears in the middle of an unquoted field.
    #[error(
        "broken quote: stray quote at column {column} inside an unquoted field (quote the whole field and double the inner quote)"
    )]
    StrayQuote { column: usize },
}

/// Split `line` (without its line terminator) into fields, appending them to
/// `out` (which is cleared first). Columns in errors are 1-based characters.
pub fn split_into(line: &str, out: &mut Vec<String>) -> Result<(), CsvLineError> {
    out.clear();
    let mut scratch = String::new();
    split_each(line, &mut scratch, |_, field| out.push(field.to_owned()))?;
    Ok(())
}

/// Split `line` (without its line terminator), calling `f` with each field's
/// position and text, and return the number of fields. Nothing is allocated
/// for a field that needs no unescaping: it is handed over as a slice of the
/// line; a quoted field with doubled quotes is unescaped into `scratch`. On an
/// error the fields before it have been handed over. Columns in errors are
/// 1-based characters.
pub fn split_each(
    line: &str,
    scratch: &mut String,
    mut f: impl FnMut(usize, &str),
) -> Result<usize, CsvLineError> {
    let bytes = line.as_bytes();
    // 1-based character column of a byte offset, for error messages only.
    let column = |at: usize| line[..at].chars().count() + 1;
    let mut pos = 0;
    let mut n = 0;
    loop {
        if bytes.get(pos) == Some(&b'"') {
            let open = pos;
            let mut i = pos + 1;
            let mut doubled = false;
            let close = loop {
                match bytes[i..].iter().position(|&b| b == b'"') {
                    None => {
                        return Err(CsvLineError::Unterminated {
                            column: column(open),
                        });
                    }
                    Some(k) if bytes.get(i + k + 1) == Some(&b'"') => {
                        doubled = true;
                        i += k + 2;
                    }
                    Some(k) => break i + k,
                }
            };
            let inner = &line[open + 1..close];
            if doubled {
                scratch.clear();
                for (k, part) in inner.split("\"\"").enumerate() {
                    if k > 0 {
                        scratch.push('"');
                    }
                    scratch.push_str(part);
                }
                f(n, scratch);
            } else {
                f(n, inner);
            }
            n += 1;
            match bytes.get(close + 1) {
                None => return Ok(n),
                Some(b',') => pos = close + 2,
                Some(_) => {
                    return Err(CsvLineError::TextAfterQuote {
                        column: column(close + 1),
                    });
                }
            }
        } else {
            let rest = &bytes[pos..];
            let end = rest
                .iter()
                .position(|&b| b == b',' || b == b'"')
                .map_or(bytes.len(), |k| pos + k);
            match bytes.get(end) {
                Some(b'"') => {
                    return Err(CsvLineError::StrayQuote {
                        column: column(end),
                    });
                }
                Some(_) => {
                    f(n, &line[pos..end]);
                    n += 1;
                    pos = end + 1;
                }
                None => {
                    f(n, &line[pos..]);
                    return Ok(n + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Result<Vec<String>, CsvLineError> {
        let mut v = Vec::new();
        split_into(s, &mut v).map(|_| v)
    }

    #[test]
    fn plain_and_quoted_fields() {
        assert_eq!(split("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(split("\"张, 三\",x").unwrap(), ["张, 三", "x"]);
        assert_eq!(split("\"say \"\"hi\"\"\",2").unwrap(), ["say \"hi\"", "2"]);
        assert_eq!(split("").unwrap(), [""]);
        assert_eq!(split("a,").unwrap(), ["a", ""]);
        assert_eq!(split("\"\",b").unwrap(), ["", "b"]);
    }

    #[test]
    fn broken_quotes_are_located() {
        assert_eq!(
            split("C1,\"王小明,138").unwrap_err(),
            CsvLineError::Unterminated { column: 4 }
        );
        assert_eq!(
            split("C1,\"王\"x,1").unwrap_err(),
            CsvLineError::TextAfterQuote { column: 7 }
        );
        assert_eq!(
            split("C1,王\"x,1").unwrap_err(),
            CsvLineError::StrayQuote { column: 5 }
        );
    }

    /// The splitter before it handed fields over as slices: one character at
    /// a time, every field its own string.
    fn reference_split(line: &str) -> Result<Vec<String>, CsvLineError> {
        let mut out = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars().enumerate().peekable();
        loop {
            match chars.peek().copied() {
                Some((start, '"')) => {
                    chars.next();
                    loop {
                        match chars.next() {
                            None => return Err(CsvLineError::Unterminated { column: start + 1 }),
                            Some((_, '"')) if chars.peek().map(|c| c.1) == Some('"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some((_, '"')) => break,
                            Some((_, c)) => field.push(c),
                        }
                    }
                    match chars.next() {
                        None => {
                            out.push(field);
                            return Ok(out);
                        }
                        Some((_, ',')) => out.push(std::mem::take(&mut field)),
                        Some((i, _)) => return Err(CsvLineError::TextAfterQuote { column: i + 1 }),
                    }
                }
                _ => loop {
                    match chars.next() {
                        None => {
                            out.push(field);
                            return Ok(out);
                        }
                        Some((_, ',')) => {
                            out.push(std::mem::take(&mut field));
                            break;
                        }
                        Some((i, '"')) => return Err(CsvLineError::StrayQuote { column: i + 1 }),
                        Some((_, c)) => field.push(c),
                    }
                },
            }
        }
    }

    #[test]
    fn any_line_splits_as_one_character_at_a_time_would() {
        use rand::{Rng, SeedableRng};
        let alphabet = ['a', '王', ',', '"', ' ', '1'];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut scratch = String::new();
        for _ in 0..20_000 {
            let len = rng.random_range(0..12);
            let line: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut fields = Vec::new();
            let got = split_each(&line, &mut scratch, |i, f| {
                assert_eq!(i, fields.len(), "{line:?}");
                fields.push(f.to_owned());
            })
            .map(|n| {
                assert_eq!(n, fields.len(), "{line:?}");
                fields
            });
            assert_eq!(got, reference_split(&line), "{line:?}");
        }
    }
}

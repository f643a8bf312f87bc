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
    let mut field = String::new();
    let mut chars = line.chars().enumerate().peekable();
    loop {
        // start of a field
        match chars.peek().copied() {
            Some((start, '"')) => {
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err(CsvLineError::Unterminated { column: start + 1 }),
                        Some((_, '"')) => {
                            if let Some((_, '"')) = chars.peek() {
                                chars.next();
                                field.push('"');
                            } else {
                                break;
                            }
                        }
                        Some((_, c)) => field.push(c),
                    }
                }
                match chars.next() {
                    None => {
                        out.push(std::mem::take(&mut field));
                        return Ok(());
                    }
                    Some((_, ',')) => out.push(std::mem::take(&mut field)),
                    Some((i, _)) => return Err(CsvLineError::TextAfterQuote { column: i + 1 }),
                }
            }
            _ => loop {
                match chars.next() {
                    None => {
                        out.push(std::mem::take(&mut field));
                        return Ok(());
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
}

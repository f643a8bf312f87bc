//! Domain types: every value is parsed and checked at the edge, so the rest of
//! the program only ever sees valid customers, orders and stores.

pub mod birthday;
pub mod consent;
pub mod customer;
pub mod email;
pub mod ids;
pub mod money;
pub mod order;
pub mod phone;
pub mod store_info;
pub mod tags;
pub mod wechat;

pub use birthday::{Birthday, BirthdayError};
pub use consent::{Consent, ConsentError};
pub use customer::Customer;
pub use email::{Email, EmailError};
pub use ids::{CustomerId, IdError, OrderId, StoreCode};
pub use money::{Money, MoneyError};
pub use order::Order;
pub use phone::{Phone, PhoneError};
pub use store_info::StoreInfo;
pub use tags::{Tags, TagsError};
pub use wechat::{WeChatOpenId, WeChatOpenIdError};

/// Longest piece of user input echoed back in an error message, in characters.
const SHOWN_MAX_CHARS: usize = 40;

/// Quote user input for an error message (escaping control characters),
/// shortened to [`SHOWN_MAX_CHARS`] characters.
fn shown(input: &str) -> String {
    match input.char_indices().nth(SHOWN_MAX_CHARS) {
        Some((cut, _)) => format!("{:?}", format!("{}…", &input[..cut])),
        None => format!("{input:?}"),
    }
}

/// Like [`shown`], for contact details (phone, e-mail, OpenID): the middle is
/// replaced by `*`, so a rejected address is never printed or logged in full.
/// The first and last few characters are enough to find the cell.
fn shown_masked(input: &str) -> String {
    let chars: Vec<char> = input.chars().collect();
    let keep = match chars.len() {
        0..=4 => 0,
        5..=8 => 2,
        _ => 3,
    };
    let masked: String = chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep || i >= chars.len() - keep {
                *c
            } else {
                '*'
            }
        })
        .collect();
    shown(&masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_details_are_masked_in_errors() {
        assert_eq!(shown_masked("010-12345678"), "\"010******678\"");
        assert_eq!(shown_masked("not-an-email"), "\"not******ail\"");
        assert_eq!(shown_masked("abc"), "\"***\"");
        assert_eq!(shown_masked("北京市朝阳区电话"), "\"北京****电话\"");
    }

    #[test]
    fn shown_quotes_short_input() {
        assert_eq!(shown("abc"), "\"abc\"");
        assert_eq!(shown("北京"), "\"北京\"");
        assert_eq!(shown("a\tb"), "\"a\\tb\"");
    }

    #[test]
    fn shown_truncates_on_char_boundary() {
        let long = "北".repeat(100);
        let s = shown(&long);
        assert_eq!(s, format!("\"{}…\"", "北".repeat(40)));
        assert_eq!(shown(&"x".repeat(40)), format!("\"{}\"", "x".repeat(40)));
    }

    #[test]
    fn no_parser_panics_on_odd_input() {
        let long = "北".repeat(1000);
        let nines = "9".repeat(40);
        let inputs = [
            "",
            " ",
            "\u{3000}",
            "-",
            ".",
            "+",
            "00",
            "@",
            ";",
            "\"",
            "北京",
            "😀😀😀",
            "\u{0}",
            "\n\t",
            "-.-",
            "1-2-3-4",
            "+86",
            "0086",
            "¥",
            "0x1F",
            nines.as_str(),
            long.as_str(),
        ];
        for s in inputs {
            let _ = CustomerId::parse(s);
            let _ = OrderId::parse(s);
            let _ = StoreCode::parse(s);
            let _ = Phone::parse(s).map(|p| p.masked());
            let _ = Email::parse(s).map(|e| e.masked());
            let _ = WeChatOpenId::parse(s).map(|w| w.masked());
            let _ = Birthday::parse(s);
            let _ = Money::parse_yuan(s);
            let _ = Consent::parse(s);
            let _ = Tags::parse(s);
            let _ = Tags::from_db(s);
            let _ = Phone::from_trusted(s.to_owned()).masked();
            let _ = Email::from_trusted(s.to_owned()).masked();
            let _ = WeChatOpenId::from_trusted(s.to_owned()).masked();
        }
    }
}

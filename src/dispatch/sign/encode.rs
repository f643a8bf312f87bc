//! Percent-encoding as Aliyun signs it (RFC 3986, strict).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but the RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~`.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// RFC 3986 percent-encoding of the UTF-8 bytes of `s`: unreserved characters
/// stay, every other byte becomes `%XX` with upper-case hex. So a space is
/// `%20` (never `+`), `*` is `%2A` and `~` stays `~`.
pub fn rfc3986(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// `k1=v1&k2=v2…` with keys and values encoded by [`rfc3986`], in the order
/// given (callers sort: a `BTreeMap<String, String>` iterates byte-wise,
/// which is the order both Aliyun signatures want).
pub fn query<'a>(params: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut out = String::new();
    for (k, v) in params {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&rfc3986(k));
        out.push('=');
        out.push_str(&rfc3986(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_stay() {
        assert_eq!(rfc3986("AZaz09-_.~"), "AZaz09-_.~");
    }

    #[test]
    fn space_star_and_reserved_are_encoded_upper_case() {
        assert_eq!(rfc3986("a b"), "a%20b");
        assert_eq!(rfc3986("*"), "%2A");
        assert_eq!(rfc3986("+/=:&,"), "%2B%2F%3D%3A%26%2C");
        assert_eq!(rfc3986("{\"k\":\"v\"}"), "%7B%22k%22%3A%22v%22%7D");
    }

    #[test]
    fn chinese_is_encoded_as_utf8_bytes() {
        assert_eq!(rfc3986("小馆咖啡"), "%E5%B0%8F%E9%A6%86%E5%92%96%E5%95%A1");
        assert_eq!(rfc3986("8折"), "8%E6%8A%98");
    }
}

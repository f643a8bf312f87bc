//! Twilio's `X-Twilio-Signature` on webhooks (status callbacks, inbound SMS).
//!
//! The string to sign is the full URL Twilio called, followed by every POST
//! parameter as `name` + `value`, sorted by name (a repeated name's values
//! sorted too, duplicates kept); the signature is Base64 HMAC-SHA1 under the
//! auth token. Twilio is inconsistent about writing the default port, so a
//! signature is accepted for the URL with and without an explicit `:443`
//! (`:80` for http). JSON-bodied webhooks (`bodySHA256` in the query) and the
//! HMAC-SHA256 "SharedKey" variant are not handled.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// The URL followed by the sorted `name` + `value` pairs.
pub fn string_to_sign(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut s = url.to_owned();
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

/// `Base64(HMAC-SHA1(auth_token, string_to_sign(url, params)))`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(super::hmac_sha1(
        auth_token.as_bytes(),
        string_to_sign(url, params).as_bytes(),
    ))
}

/// True when `header` (the `X-Twilio-Signature` value) signs this request,
/// for the URL as given, with the default port written out, or without it.
/// The comparison is constant-time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = STANDARD.decode(header.trim()) else {
        return false;
    };
    let mut ok = false;
    for candidate in url_variants(url) {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(string_to_sign(&candidate, params).as_bytes());
        // No early exit: every variant is checked.
        ok |= mac.verify_slice(&given).is_ok();
    }
    ok
}

/// The URL as given, with its scheme's default port written out, and without
/// it (only the default port is ever added or removed; other ports stay).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    // The port separator: the last ':' after any IPv6 literal `[…]`.
    let after_host = hostport.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match hostport[after_host..].rfind(':') {
        Some(i) => {
            let (h, p) = hostport.split_at(after_host + i);
            (h, Some(&p[1..]))
        }
        None => (hostport, None),
    };
    let variant = match port {
        None => format!("{scheme}://{userinfo}{host}:{default_port}{tail}"),
        Some(p) if p == default_port => format!("{scheme}://{userinfo}{host}{tail}"),
        Some(_) => return out,
    };
    out.push(variant);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn tw1_params() -> Vec<(String, String)> {
        params(&[
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("From", "+12349013030"),
            ("Digits", "1234"),
        ])
    }

    fn tw2_params() -> Vec<(String, String)> {
        params(&[
            ("MessageStatus", "delivered"),
            ("AccountSid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
            ("ApiVersion", "2010-04-01"),
            ("From", "+15017122661"),
            ("MessageSid", "SM1234567890abcdef1234567890abcdef"),
            ("SmsSid", "SM1234567890abcdef1234567890abcdef"),
            ("SmsStatus", "delivered"),
            ("To", "+15558675310"),
        ])
    }

    /// Vector TW1 [DOC].
    #[test]
    fn tw1_doc_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, &tw1_params()),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify(
            "12345",
            url,
            &tw1_params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    /// Vector TW2 [SDK]: an SMS status callback, with and without `:443`.
    #[test]
    fn tw2_status_callback_with_and_without_port() {
        let url = "https://hooks.example.com/twilio/status?tenant=cafe-42";
        let with_port = "https://hooks.example.com:443/twilio/status?tenant=cafe-42";
        assert_eq!(
            string_to_sign(url, &tw2_params()),
            "https://hooks.example.com/twilio/status?tenant=cafe-42AccountSidACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXApiVersion2010-04-01From+15017122661MessageSidSM1234567890abcdef1234567890abcdefMessageStatusdeliveredSmsSidSM1234567890abcdef1234567890abcdefSmsStatusdeliveredTo+15558675310"
        );
        assert_eq!(
            signature("12345", url, &tw2_params()),
            "v6wly/RajvIvfh/iap9I/uiKbzQ="
        );
        assert_eq!(
            signature("12345", with_port, &tw2_params()),
            "iS4dE2POR2ZlEx1vt/AEgJunwJw="
        );
        // Either signature is accepted for either spelling of the URL.
        for u in [url, with_port] {
            assert!(verify(
                "12345",
                u,
                &tw2_params(),
                "v6wly/RajvIvfh/iap9I/uiKbzQ="
            ));
            assert!(verify(
                "12345",
                u,
                &tw2_params(),
                "iS4dE2POR2ZlEx1vt/AEgJunwJw="
            ));
        }
    }

    #[test]
    fn tampering_fails() {
        let url = "https://hooks.example.com/twilio/status?tenant=cafe-42";
        let good = "v6wly/RajvIvfh/iap9I/uiKbzQ=";
        let mut p = tw2_params();
        p[0].1 = "failed".to_owned();
        assert!(!verify("12345", url, &p, good));
        assert!(!verify("54321", url, &tw2_params(), good));
        assert!(!verify(
            "12345",
            "https://hooks.example.com/twilio/status",
            &tw2_params(),
            good
        ));
        assert!(!verify("12345", url, &tw2_params(), "not base64!"));
        assert!(!verify("12345", url, &tw2_params(), ""));
        // A truncated tag is not accepted.
        assert!(!verify(
            "12345",
            url,
            &tw2_params(),
            "v6wly/RajvIvfh/iap9I/g=="
        ));
    }

    #[test]
    fn repeated_names_sort_their_values() {
        let p = params(&[("MediaUrl", "b"), ("Body", "x"), ("MediaUrl", "a")]);
        assert_eq!(string_to_sign("u", &p), "uBodyxMediaUrlaMediaUrlb");
    }

    #[test]
    fn only_the_default_port_is_toggled() {
        assert_eq!(
            url_variants("https://h.example/p?q=1"),
            ["https://h.example/p?q=1", "https://h.example:443/p?q=1"]
        );
        assert_eq!(
            url_variants("http://u:pw@h.example:80"),
            ["http://u:pw@h.example:80", "http://u:pw@h.example"]
        );
        assert_eq!(
            url_variants("https://h.example:8443/p"),
            ["https://h.example:8443/p"]
        );
        assert_eq!(
            url_variants("https://[::1]/p"),
            ["https://[::1]/p", "https://[::1]:443/p"]
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }
}

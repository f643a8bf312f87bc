//! Aliyun legacy RPC signature ("SignatureVersion 1.0", HMAC-SHA1).
//!
//! All parameters (common and business, query and form body together) but
//! `Signature` are sorted byte-wise, RFC 3986-encoded and joined; that string
//! is encoded a second time inside the string to sign; the key is the secret
//! followed by `&`; the result is Base64.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::encode;

/// The RPC `Timestamp` form: ISO-8601 UTC to the second, `2017-07-12T02:42:19Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The common parameters of a call (`Format=JSON`, `RegionId=cn-hangzhou`).
/// Add the business parameters, then sign the whole map.
pub fn common_params(
    access_key_id: &str,
    action: &str,
    version: &str,
    at: DateTime<Utc>,
    nonce: &str,
) -> BTreeMap<String, String> {
    [
        ("AccessKeyId", access_key_id),
        ("Action", action),
        ("Format", "JSON"),
        ("RegionId", "cn-hangzhou"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce),
        ("SignatureVersion", "1.0"),
        ("Timestamp", &timestamp(at)),
        ("Version", version),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `CanonicalizedQueryString`: every parameter but `Signature`, sorted and encoded.
pub fn canonicalized_query(params: &BTreeMap<String, String>) -> String {
    encode::query(params.iter().filter(|(k, _)| k.as_str() != "Signature"))
}

/// `METHOD&%2F&<the canonicalized query, encoded again>`.
pub fn string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode::rfc3986("/"),
        encode::rfc3986(&canonicalized_query(params))
    )
}

/// `Base64(HMAC-SHA1(secret + "&", string_to_sign))`.
pub fn signature(secret: &str, method: &str, params: &BTreeMap<String, String>) -> String {
    let key = format!("{secret}&");
    STANDARD.encode(super::hmac_sha1(
        key.as_bytes(),
        string_to_sign(method, params).as_bytes(),
    ))
}

/// The parameters with `Signature` added, encoded as a query string or form
/// body (`application/x-www-form-urlencoded`).
pub fn signed_form(secret: &str, method: &str, params: &BTreeMap<String, String>) -> String {
    let mut all = params.clone();
    all.insert("Signature".to_owned(), signature(secret, method, params));
    encode::query(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Vector A1 [DOC]: Dysmsapi SendSms, "HTTP协议及签名".
    #[test]
    fn a1_sendsms_doc_example() {
        let p = params(&[
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]);
        assert_eq!(
            string_to_sign("GET", &p),
            "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
        );
        assert_eq!(
            signature("testSecret", "GET", &p),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
        // The secret is case-sensitive.
        assert_ne!(
            signature("testsecret", "GET", &p),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
        // The signed form carries the signature percent-encoded.
        assert!(
            signed_form("testSecret", "GET", &p)
                .contains("Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D")
        );
    }

    /// Vector A2 [DOC]: ECS DescribeRegions, RPC signature doc.
    #[test]
    fn a2_describe_regions_doc_example() {
        let p = params(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]);
        assert_eq!(
            string_to_sign("GET", &p),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            signature("testsecret", "GET", &p),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    /// Vector A3 [SDK]: POST with Chinese, space, `*` and `~`.
    #[test]
    fn a3_post_with_chinese_space_star_tilde() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut p = common_params(
            "testId",
            "SendSms",
            "2017-05-25",
            at,
            "d7b6b1f8-0c7c-4d1e-9d5c-7f3a2b1e4c00",
        );
        for (k, v) in [
            ("PhoneNumbers", "13800138000"),
            ("SignName", "小馆咖啡"),
            ("TemplateCode", "SMS_123456789"),
            (
                "TemplateParam",
                "{\"name\":\"张三 *VIP~\",\"coupon\":\"8折\"}",
            ),
        ] {
            p.insert(k.to_owned(), v.to_owned());
        }
        assert_eq!(
            canonicalized_query(&p),
            "AccessKeyId=testId&Action=SendSms&Format=JSON&PhoneNumbers=13800138000&RegionId=cn-hangzhou&SignName=%E5%B0%8F%E9%A6%86%E5%92%96%E5%95%A1&SignatureMethod=HMAC-SHA1&SignatureNonce=d7b6b1f8-0c7c-4d1e-9d5c-7f3a2b1e4c00&SignatureVersion=1.0&TemplateCode=SMS_123456789&TemplateParam=%7B%22name%22%3A%22%E5%BC%A0%E4%B8%89%20%2AVIP~%22%2C%22coupon%22%3A%228%E6%8A%98%22%7D&Timestamp=2024-03-01T08%3A00%3A00Z&Version=2017-05-25"
        );
        assert!(string_to_sign("POST", &p).starts_with("POST&%2F&AccessKeyId%3DtestId%26"));
        assert_eq!(
            signature("testSecret", "POST", &p),
            "Wd5mgTv/A/VbKLtMbKIn12jmxrM="
        );
    }

    #[test]
    fn a_signature_param_is_never_signed() {
        let mut p = params(&[("Action", "SendSms")]);
        let plain = signature("s", "POST", &p);
        p.insert("Signature".to_owned(), "whatever".to_owned());
        assert_eq!(signature("s", "POST", &p), plain);
    }

    #[test]
    fn keys_sort_byte_wise() {
        // Upper-case sorts before lower-case in ASCII.
        let p = params(&[("b", "1"), ("B", "2"), ("a", "3")]);
        assert_eq!(canonicalized_query(&p), "B=2&a=3&b=1");
    }
}

//! Aliyun ACS3-HMAC-SHA256 (the V3 signature of the current SDKs).
//!
//! `CanonicalRequest = METHOD \n / \n query \n headers \n signed-names \n
//! hex(sha256(body))`; the string to sign is `ACS3-HMAC-SHA256\n` and the
//! hex SHA-256 of that; the signature is hex HMAC-SHA256 under the raw
//! secret (no `&`, unlike the RPC signature).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{encode, hmac_sha256, sha256_hex};

/// The algorithm name, first word of `Authorization`.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// One request to sign. Only the canonical URI `/` (RPC-style APIs) is supported.
#[derive(Debug, Clone, Copy)]
pub struct Acs3Request<'a> {
    /// `POST` or `GET`.
    pub method: &'a str,
    /// The `Host` header exactly as sent (with a non-default port).
    pub host: &'a str,
    /// `x-acs-action`, e.g. `SendSms`.
    pub action: &'a str,
    /// `x-acs-version`, e.g. `2017-05-25`.
    pub version: &'a str,
    /// `x-acs-date`.
    pub date: DateTime<Utc>,
    /// `x-acs-signature-nonce`, unique per request.
    pub nonce: &'a str,
    /// The query parameters (unencoded).
    pub query: &'a BTreeMap<String, String>,
    /// `content-type`, when there is a body.
    pub content_type: Option<&'a str>,
    /// The exact body bytes sent.
    pub body: &'a [u8],
}

/// The headers to send and the `Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Every signed header (lower-case name → value), `host` included:
    /// send them all, exactly so.
    pub headers: BTreeMap<String, String>,
    /// The `Authorization` header.
    pub authorization: String,
}

/// The `x-acs-date` form: `2024-03-01T08:00:00Z`.
pub fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Sorted, RFC 3986-encoded `k=v&…`; empty without parameters.
pub fn canonical_query(query: &BTreeMap<String, String>) -> String {
    encode::query(query)
}

/// `name;name;…` of the signed headers, sorted (`BTreeMap` order).
pub fn signed_header_names(headers: &BTreeMap<String, String>) -> String {
    headers
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(";")
}

/// The canonical request over lower-case `headers` (name → value).
pub fn canonical_request(
    method: &str,
    query: &BTreeMap<String, String>,
    headers: &BTreeMap<String, String>,
    payload_hash: &str,
) -> String {
    let mut canonical_headers = String::new();
    for (name, value) in headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value.trim());
        canonical_headers.push('\n');
    }
    format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        canonical_query(query),
        canonical_headers,
        signed_header_names(headers),
        payload_hash
    )
}

/// `ACS3-HMAC-SHA256\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Hex HMAC-SHA256 of the string to sign, keyed by the raw secret.
pub fn signature(secret: &str, canonical_request: &str) -> String {
    hex::encode(hmac_sha256(
        secret.as_bytes(),
        string_to_sign(canonical_request).as_bytes(),
    ))
}

/// `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<names>,Signature=<sig>`
/// (no spaces after the commas).
pub fn authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// Sign `req`: the `host`, `x-acs-*` and (with a body) `content-type` headers,
/// and the `Authorization` over them.
pub fn sign(req: &Acs3Request<'_>, access_key_id: &str, secret: &str) -> Signed {
    let payload_hash = sha256_hex(req.body);
    let mut headers = BTreeMap::new();
    headers.insert("host".to_owned(), req.host.to_owned());
    headers.insert("x-acs-action".to_owned(), req.action.to_owned());
    headers.insert("x-acs-content-sha256".to_owned(), payload_hash.clone());
    headers.insert("x-acs-date".to_owned(), date(req.date));
    headers.insert("x-acs-signature-nonce".to_owned(), req.nonce.to_owned());
    headers.insert("x-acs-version".to_owned(), req.version.to_owned());
    if let Some(ct) = req.content_type {
        headers.insert("content-type".to_owned(), ct.to_owned());
    }
    let canonical = canonical_request(req.method, req.query, &headers, &payload_hash);
    let authorization = authorization(
        access_key_id,
        &signed_header_names(&headers),
        &signature(secret, &canonical),
    );
    Signed {
        headers,
        authorization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Vector B1 [DOC]: ECS RunInstances.
    #[test]
    fn b1_doc_example() {
        let query = params(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let req = Acs3Request {
            method: "POST",
            host: "ecs.cn-shanghai.aliyuncs.com",
            action: "RunInstances",
            version: "2014-05-26",
            date: at("2023-10-26T10:22:32Z"),
            nonce: "3156853299f313e23d1673dc12e1703d",
            query: &query,
            content_type: None,
            body: b"",
        };
        let signed = sign(&req, "YourAccessKeyId", "YourAccessKeySecret");
        let canonical = canonical_request(
            "POST",
            &query,
            &signed.headers,
            &signed.headers["x-acs-content-sha256"],
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            signed.authorization,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    /// Vector B2 [SDK]: Dysmsapi SendSms, parameters in the query, empty body.
    #[test]
    fn b2_sendsms_query_params() {
        let query = params(&[
            ("PhoneNumbers", "13800138000"),
            ("SignName", "小馆咖啡"),
            ("TemplateCode", "SMS_123456789"),
            ("TemplateParam", "{\"name\":\"张三\",\"coupon\":\"8折\"}"),
            ("OutId", "campaign-42"),
        ]);
        let req = Acs3Request {
            method: "POST",
            host: "dysmsapi.aliyuncs.com",
            action: "SendSms",
            version: "2017-05-25",
            date: at("2024-03-01T08:00:00Z"),
            nonce: "c0ffee00c0ffee00c0ffee00c0ffee00",
            query: &query,
            content_type: None,
            body: b"",
        };
        let signed = sign(&req, "testId", "testSecret");
        let expected_canonical = "POST\n/\nOutId=campaign-42&PhoneNumbers=13800138000&SignName=%E5%B0%8F%E9%A6%86%E5%92%96%E5%95%A1&TemplateCode=SMS_123456789&TemplateParam=%7B%22name%22%3A%22%E5%BC%A0%E4%B8%89%22%2C%22coupon%22%3A%228%E6%8A%98%22%7D\nhost:dysmsapi.aliyuncs.com\nx-acs-action:SendSms\nx-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-acs-date:2024-03-01T08:00:00Z\nx-acs-signature-nonce:c0ffee00c0ffee00c0ffee00c0ffee00\nx-acs-version:2017-05-25\n\nhost;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let canonical = canonical_request(
            "POST",
            &query,
            &signed.headers,
            &signed.headers["x-acs-content-sha256"],
        );
        assert_eq!(canonical, expected_canonical);
        assert_eq!(
            string_to_sign(&canonical),
            "ACS3-HMAC-SHA256\na549b8d931dc842209384be1ed168b833ed5b647ec3ebb746325907015770ba7"
        );
        assert_eq!(
            signed.authorization,
            "ACS3-HMAC-SHA256 Credential=testId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=d2228c438dda1e069f255581ef68b2d29d92012070398e610e0993b3d57f1be9"
        );
    }

    /// Vector B3 [SDK]: Dysmsapi SendBatchSms with a form body.
    #[test]
    fn b3_sendbatchsms_form_body() {
        let query = params(&[("TemplateCode", "SMS_123456789")]);
        let body = "PhoneNumberJson=%5B%2213800138000%22%2C%2213900139000%22%5D&SignNameJson=%5B%22%E5%B0%8F%E9%A6%86%E5%92%96%E5%95%A1%22%2C%22%E5%B0%8F%E9%A6%86%E5%92%96%E5%95%A1%22%5D&TemplateParamJson=%5B%7B%22name%22%3A%22%E5%BC%A0%E4%B8%89%22%7D%2C%7B%22name%22%3A%22%E6%9D%8E%E5%9B%9B%22%7D%5D";
        // Our own encoder produces exactly these bytes from the decoded values.
        let form = params(&[
            ("PhoneNumberJson", "[\"13800138000\",\"13900139000\"]"),
            ("SignNameJson", "[\"小馆咖啡\",\"小馆咖啡\"]"),
            (
                "TemplateParamJson",
                "[{\"name\":\"张三\"},{\"name\":\"李四\"}]",
            ),
        ]);
        assert_eq!(encode::query(&form), body);
        let req = Acs3Request {
            method: "POST",
            host: "dysmsapi.aliyuncs.com",
            action: "SendBatchSms",
            version: "2017-05-25",
            date: at("2024-03-01T08:00:00Z"),
            nonce: "c0ffee00c0ffee00c0ffee00c0ffee01",
            query: &query,
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.as_bytes(),
        };
        let signed = sign(&req, "testId", "testSecret");
        assert_eq!(
            signed.headers["x-acs-content-sha256"],
            "c71ba97e1203861d2a234318a68d3d63b45e4bf7ca53f7313f57a39e36a99681"
        );
        assert_eq!(
            signed.authorization,
            "ACS3-HMAC-SHA256 Credential=testId,SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=46faad58103c4cf54da0127b1e41b3a8613ca1bc26a49c19d47cabcc1215c0f5"
        );
    }

    #[test]
    fn empty_query_is_an_empty_line() {
        let c = canonical_request("POST", &BTreeMap::new(), &params(&[("host", "h")]), "x");
        assert_eq!(c, "POST\n/\n\nhost:h\n\nhost\nx");
    }

    #[test]
    fn header_values_are_trimmed() {
        let a = canonical_request("POST", &BTreeMap::new(), &params(&[("host", "  h ")]), "x");
        let b = canonical_request("POST", &BTreeMap::new(), &params(&[("host", "h")]), "x");
        assert_eq!(a, b);
    }
}

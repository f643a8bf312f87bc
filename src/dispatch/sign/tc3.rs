//! Tencent Cloud TC3-HMAC-SHA256.
//!
//! The canonical request signs `content-type` and `host` over the exact body;
//! the credential scope is `<UTC date>/<service>/tc3_request`. The date is
//! the **UTC** date of `X-TC-Timestamp`: a Beijing-time date is a day ahead
//! between 00:00 and 08:00 CST and fails as `AuthFailure.SignatureFailure`.

use chrono::{DateTime, Utc};

use super::{hmac_sha256, sha256_hex};

/// The algorithm name, first word of `Authorization`.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// One request to sign (POST, path `/`, empty query).
#[derive(Debug, Clone, Copy)]
pub struct Tc3Request<'a> {
    /// The service, the host's first label (`sms`, `cvm`).
    pub service: &'a str,
    /// The `Host` header exactly as sent.
    pub host: &'a str,
    /// The `Content-Type` header exactly as sent.
    pub content_type: &'a str,
    /// The instant sent as `X-TC-Timestamp`.
    pub timestamp: DateTime<Utc>,
    /// The exact body bytes sent.
    pub body: &'a [u8],
}

/// The credential-scope date: the UTC date of the timestamp, `yyyy-MM-dd`.
pub fn credential_date(timestamp: DateTime<Utc>) -> String {
    timestamp.format("%Y-%m-%d").to_string()
}

/// `POST\n/\n\ncontent-type:…\nhost:…\n\ncontent-type;host\n<hex sha256(body)>`.
pub fn canonical_request(content_type: &str, host: &str, body: &[u8]) -> String {
    format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        content_type.trim(),
        host.trim(),
        sha256_hex(body)
    )
}

/// `TC3-HMAC-SHA256\n<unix seconds>\n<date>/<service>/tc3_request\n<hex sha256(canonical)>`.
pub fn string_to_sign(timestamp: DateTime<Utc>, service: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}/{service}/tc3_request\n{}",
        timestamp.timestamp(),
        credential_date(timestamp),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Hex signature with the derived key
/// `HMAC(HMAC(HMAC("TC3"+key, date), service), "tc3_request")`.
pub fn signature(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

/// Sign `req`: the `Authorization` header
/// (`TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=content-type;host, Signature=<sig>`).
pub fn authorization(req: &Tc3Request<'_>, secret_id: &str, secret_key: &str) -> String {
    let date = credential_date(req.timestamp);
    let canonical = canonical_request(req.content_type, req.host, req.body);
    let sts = string_to_sign(req.timestamp, req.service, &canonical);
    let sig = signature(secret_key, &date, req.service, &sts);
    format!(
        "{ALGORITHM} Credential={secret_id}/{date}/{}/tc3_request, SignedHeaders=content-type;host, Signature={sig}",
        req.service
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";
    const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";

    fn ts(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    /// Vector T1 [DOC]: the CVM example of the signature-v3 doc.
    #[test]
    fn t1_doc_example() {
        let body = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        assert_eq!(
            sha256_hex(body),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let canonical = canonical_request(
            "application/json; charset=utf-8",
            "cvm.tencentcloudapi.com",
            body,
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let t = ts(1_551_113_065);
        assert_eq!(credential_date(t), "2019-02-25");
        let sts = string_to_sign(t, "cvm", &canonical);
        assert_eq!(
            signature(KEY, "2019-02-25", "cvm", &sts),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    /// Vector T2 [SDK]: SendSms as the official SDK serialises it; 1700000000
    /// is 2023-11-14 in UTC but 2023-11-15 in Beijing.
    #[test]
    fn t2_sdk_sendsms_and_the_utc_date() {
        let body = br#"{"PhoneNumberSet": ["+8613800138000"], "SmsSdkAppId": "1400006666", "TemplateId": "1110", "SignName": "\u817e\u8baf\u4e91", "TemplateParamSet": ["4370"]}"#;
        assert_eq!(body.len(), 153);
        assert_eq!(
            sha256_hex(body),
            "56de497576a0318d877080eea1b0084fd6bd76bcb26f71bdc46daf8e223b6966"
        );
        let req = Tc3Request {
            service: "sms",
            host: "sms.tencentcloudapi.com",
            content_type: "application/json",
            timestamp: ts(1_700_000_000),
            body,
        };
        let canonical = canonical_request(req.content_type, req.host, body);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "d8a986944c43ab89a76fd33f494dfeb55d2aeb15e1f6ab4cc2af8f545c989936"
        );
        assert_eq!(
            authorization(&req, ID, KEY),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2023-11-14/sms/tc3_request, SignedHeaders=content-type;host, Signature=fd2255cedac0810febece221d9ee0550db75eda6813cfd08338080637064fdfc"
        );
    }

    /// Vector T3 [SDK]: compact UTF-8 body, as serde_json writes it.
    #[test]
    fn t3_compact_utf8_body() {
        let body = r#"{"PhoneNumberSet":["+8613800138000"],"SmsSdkAppId":"1400006666","SignName":"腾讯云","TemplateId":"1110","TemplateParamSet":["4370"]}"#.as_bytes();
        assert_eq!(body.len(), 135);
        assert_eq!(
            sha256_hex(body),
            "1369c481774d15387c6e3dc5fc16858229a6fbf23fcc63612c90980b1def0737"
        );
        let t = ts(1_700_000_000);
        let canonical = canonical_request(
            "application/json; charset=utf-8",
            "sms.tencentcloudapi.com",
            body,
        );
        let sts = string_to_sign(t, "sms", &canonical);
        assert_eq!(
            sts,
            "TC3-HMAC-SHA256\n1700000000\n2023-11-14/sms/tc3_request\n556259e3c60fe2f4e53531697b3b9dcf2aa7d5069d67daece73b8aa633b8ee88"
        );
        assert_eq!(
            signature(KEY, "2023-11-14", "sms", &sts),
            "5bc1d7eeb6efa8151d14b2d5dcd186a061250c4e661b99ba169311be7da669ce"
        );
    }

    #[test]
    fn the_date_is_utc_around_beijing_midnight() {
        // 2024-03-01 23:59:59 UTC = 2024-03-02 07:59:59 Beijing.
        let before = DateTime::parse_from_rfc3339("2024-03-02T07:59:59+08:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(credential_date(before), "2024-03-01");
        // One second later both calendars agree again.
        let after = DateTime::parse_from_rfc3339("2024-03-02T08:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(credential_date(after), "2024-03-02");
        // 00:30 Beijing is still the previous UTC day.
        let half_past = DateTime::parse_from_rfc3339("2024-03-02T00:30:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(credential_date(half_past), "2024-03-01");
        let req = Tc3Request {
            service: "sms",
            host: "sms.tencentcloudapi.com",
            content_type: "application/json",
            timestamp: half_past,
            body: b"{}",
        };
        assert!(authorization(&req, ID, KEY).contains("/2024-03-01/sms/tc3_request"));
    }

    #[test]
    fn a_different_content_type_changes_the_signature() {
        let t = ts(1_700_000_000);
        let a = string_to_sign(t, "sms", &canonical_request("application/json", "h", b"{}"));
        let b = string_to_sign(
            t,
            "sms",
            &canonical_request("application/json; charset=utf-8", "h", b"{}"),
        );
        assert_ne!(a, b);
    }
}

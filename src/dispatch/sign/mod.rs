//! Request signatures of the SMS providers, as pure functions over explicit
//! inputs (secret, timestamp, nonce, exact body bytes), so that every
//! published test vector is a unit test and a received request can be
//! checked by recomputing its signature.
//!
//! - [`rpc`]: Aliyun legacy RPC signature (HMAC-SHA1, "SignatureVersion 1.0").
//! - [`acs3`]: Aliyun ACS3-HMAC-SHA256 (V3).
//! - [`tc3`]: Tencent Cloud TC3-HMAC-SHA256.
//! - [`twilio`]: Twilio's `X-Twilio-Signature` on webhooks.

pub mod acs3;
pub mod encode;
pub mod rpc;
pub mod tc3;
pub mod twilio;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA1 of `data` under `key`.
pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The `Host` header a request to `url` carries: the host, plus the port
/// when it is not the scheme's default. This is what reqwest sends, so it is
/// what must be signed (a signer that drops a non-default port fails against
/// any server on a custom port).
pub fn host_header(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Whether `a == b`, in time that depends only on the lengths (for comparing
/// secrets and signatures).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_nothing() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn host_keeps_a_non_default_port_only() {
        let u = reqwest::Url::parse("https://dysmsapi.aliyuncs.com/").unwrap();
        assert_eq!(host_header(&u), "dysmsapi.aliyuncs.com");
        let u = reqwest::Url::parse("https://dysmsapi.aliyuncs.com:443/").unwrap();
        assert_eq!(host_header(&u), "dysmsapi.aliyuncs.com");
        let u = reqwest::Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(host_header(&u), "127.0.0.1:8080");
    }
}

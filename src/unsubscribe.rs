//! Signed one-click unsubscribe links: `{public_url}/u/{token}` where the
//! token carries the channel and address and an HMAC-SHA256 over them, so it
//! cannot be forged or altered, and needs no lookup to verify.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

use crate::store::{Channel, Store, StoreError};

/// Bytes of the MAC kept in a token (128 bits).
const MAC_LEN: usize = 16;
/// The meta key under which a generated secret is kept.
pub const SECRET_META_KEY: &str = "link_secret";

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("the unsubscribe link is malformed")]
    Malformed,
    #[error("the unsubscribe link's signature does not match")]
    BadSignature,
}

/// Makes and checks unsubscribe tokens.
pub struct LinkSigner {
    key: SecretBox<Vec<u8>>,
    base: String,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl LinkSigner {
    pub fn new(secret: &SecretString, public_url: &str) -> LinkSigner {
        LinkSigner {
            key: SecretBox::new(Box::new(secret.expose_secret().as_bytes().to_vec())),
            base: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The configured secret, or the one kept in the database (generated and
    /// stored by the first process that needed it).
    pub async fn from_settings(
        configured: Option<&SecretString>,
        public_url: &str,
        store: &dyn Store,
    ) -> Result<LinkSigner, StoreError> {
        if let Some(s) = configured {
            return Ok(LinkSigner::new(s, public_url));
        }
        let secret = match store.meta(SECRET_META_KEY).await? {
            Some(s) => s,
            None => {
                let bytes: [u8; 32] = rand::random();
                let fresh = URL_SAFE_NO_PAD.encode(bytes);
                store.set_meta(SECRET_META_KEY, &fresh).await?;
                fresh
            }
        };
        Ok(LinkSigner::new(&SecretString::from(secret), public_url))
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(payload);
        mac.finalize().into_bytes()[..MAC_LEN].to_vec()
    }

    /// The token for (channel, address).
    pub fn token(&self, channel: Channel, address: &str) -> String {
        let payload = format!("{}:{address}", channel.as_str());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()))
        )
    }

    /// The full link for (channel, address).
    pub fn url(&self, channel: Channel, address: &str) -> String {
        format!("{}/u/{}", self.base, self.token(channel, address))
    }

    /// The (channel, address) a genuine token names.
    pub fn verify(&self, token: &str) -> Result<(Channel, String), LinkError> {
        let (p, m) = token.split_once('.').ok_or(LinkError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| LinkError::Malformed)?;
        let given = URL_SAFE_NO_PAD
            .decode(m)
            .map_err(|_| LinkError::Malformed)?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(&payload);
        mac.verify_truncated_left(&given)
            .map_err(|_| LinkError::BadSignature)?;
        if given.len() != MAC_LEN {
            return Err(LinkError::BadSignature);
        }
        let text = String::from_utf8(payload).map_err(|_| LinkError::Malformed)?;
        let (ch, address) = text.split_once(':').ok_or(LinkError::Malformed)?;
        let channel = ch.parse().map_err(|_| LinkError::Malformed)?;
        Ok((channel, address.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LinkSigner {
        LinkSigner::new(&SecretString::from("k3y"), "https://m.example.com/")
    }

    #[test]
    fn round_trip() {
        let s = signer();
        let url = s.url(Channel::Email, "wang@example.com");
        assert!(url.starts_with("https://m.example.com/u/"), "{url}");
        let token = url.rsplit('/').next().unwrap();
        assert_eq!(
            s.verify(token).unwrap(),
            (Channel::Email, "wang@example.com".to_owned())
        );
    }

    #[test]
    fn forged_or_altered_tokens_are_refused() {
        let s = signer();
        let token = s.token(Channel::Email, "wang@example.com");
        let (_, mac) = token.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode("email:li@example.com");
        assert_eq!(
            s.verify(&format!("{other}.{mac}")),
            Err(LinkError::BadSignature)
        );
        let elsewhere = LinkSigner::new(&SecretString::from("other"), "https://x");
        assert_eq!(elsewhere.verify(&token), Err(LinkError::BadSignature));
        assert_eq!(s.verify("nodot"), Err(LinkError::Malformed));
        assert_eq!(s.verify("!!.!!"), Err(LinkError::Malformed));
        // A truncated MAC is not accepted.
        let short = &token[..token.len() - 4];
        assert!(s.verify(short).is_err());
    }
}

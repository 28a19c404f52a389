//! Standard Webhooks signatures (standardwebhooks.com): HMAC-SHA256 over
//! `"{webhook-id}.{webhook-timestamp}.{body}"` with the endpoint secret, sent as
//! `webhook-signature: v1,<base64>`. Secrets look like `whsec_<base64 key>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret: 24 random bytes from the OS-seeded CSPRNG.
pub fn new_secret() -> String {
    let key: [u8; 24] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of a `whsec_…` secret, or None when it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX)?)
        .ok()
        .filter(|k| !k.is_empty())
}

/// The `webhook-signature` header value for one message.
pub fn signature(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{msg_id}.{timestamp_secs}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example in the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_decode_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(secret_key(&a).unwrap().len(), 24);
        assert!(secret_key("nope").is_none());
    }
}

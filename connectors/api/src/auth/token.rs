//! Session tokens: JWTs as RFC 8725 asks — one algorithm fixed by the
//! server (HS256, never taken from the token), issuer, audience, `iat` and
//! `exp` all required and checked, a 256-bit key generated at first start.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

const ISSUER: &str = "drover";
const AUDIENCE: &str = "drover-api";
/// Clock skew tolerated between nodes when checking `exp` and `iat`.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    exp: i64,
}

/// Signs and checks tokens with one key.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// A token that checked out: whom it names.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    pub expires_s: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired; log in again")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("signing a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

impl Tokens {
    pub fn new(key: &[u8]) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Tokens {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
        }
    }

    /// A token for `username`, valid from `now_s` for `ttl_s` seconds.
    pub fn issue(
        &self,
        username: &str,
        now_s: i64,
        ttl_s: i64,
    ) -> Result<(String, i64), TokenError> {
        let exp = now_s.saturating_add(ttl_s);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: username.to_owned(),
            iat: now_s,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(TokenError::Sign)?;
        Ok((token, exp))
    }

    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        Ok(Verified {
            username: data.claims.sub,
            expires_s: data.claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    #[test]
    fn a_fresh_token_names_its_user() {
        let tokens = Tokens::new(&[7; 32]);
        let (token, exp) = tokens.issue("alice", now(), 3600).unwrap();
        let verified = tokens.verify(&token).unwrap();
        assert_eq!(verified.username, "alice");
        assert_eq!(verified.expires_s, exp);
    }

    #[test]
    fn expired_tampered_foreign_and_unsigned_tokens_are_refused() {
        let tokens = Tokens::new(&[7; 32]);
        let (old, _) = tokens.issue("alice", now() - 7200, 3600).unwrap();
        assert!(matches!(tokens.verify(&old), Err(TokenError::Expired)));

        let (token, _) = tokens.issue("alice", now(), 3600).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let admin = base64_url(
            br#"{"iss":"drover","aud":"drover-api","sub":"admin","iat":1,"exp":99999999999}"#,
        );
        parts[1] = &admin;
        assert!(matches!(
            tokens.verify(&parts.join(".")),
            Err(TokenError::Invalid)
        ));

        let foreign = Tokens::new(&[8; 32]).issue("alice", now(), 3600).unwrap().0;
        assert!(matches!(tokens.verify(&foreign), Err(TokenError::Invalid)));

        let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{admin}.");
        assert!(matches!(tokens.verify(&unsigned), Err(TokenError::Invalid)));
    }

    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

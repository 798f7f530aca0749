//! Who may trigger a fetch through `POST /webhook`, and how often.
//!
//! With a secret configured (`--webhook-secret-file`), a request passes when
//! it carries one of:
//! - GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
//! - GitLab's `X-Gitlab-Token: <secret>`;
//! - the generic `X-Signature: sha256=<hex HMAC-SHA256 of the body>` (the
//!   header Flux's `generic-hmac` receivers use).
//!
//! Comparisons are constant-time (ring). Every request, signed or not, takes
//! a token from one bucket, so a flood is answered 429 before any HMAC work.
//! Pure: the caller hands in headers, body and the time.

use std::time::Instant;

use ring::hmac;

/// Why a webhook request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "no signature: send X-Hub-Signature-256 (GitHub), X-Gitlab-Token (GitLab) or X-Signature (HMAC-SHA256)"
    )]
    Unsigned,
    #[error("{0} does not match the configured secret")]
    BadSignature(&'static str),
}

pub struct Verifier {
    secret: Vec<u8>,
    key: hmac::Key,
}

impl Verifier {
    pub fn new(secret: &[u8]) -> Verifier {
        Verifier {
            secret: secret.to_vec(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Checks one request; `header` looks a header up by lower-case name.
    pub fn verify<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Result<(), Refused> {
        for name in ["x-hub-signature-256", "x-signature"] {
            if let Some(v) = header(name) {
                let ok = v
                    .trim()
                    .strip_prefix("sha256=")
                    .and_then(|h| hex::decode(h).ok())
                    .is_some_and(|tag| hmac::verify(&self.key, body, &tag).is_ok());
                return if ok {
                    Ok(())
                } else {
                    Err(Refused::BadSignature(if name == "x-signature" {
                        "X-Signature"
                    } else {
                        "X-Hub-Signature-256"
                    }))
                };
            }
        }
        if let Some(token) = header("x-gitlab-token") {
            // Constant-time: compare HMACs of both rather than the bytes.
            let want = hmac::sign(&self.key, &self.secret);
            return if hmac::verify(&self.key, token.as_bytes(), want.as_ref()).is_ok() {
                Ok(())
            } else {
                Err(Refused::BadSignature("X-Gitlab-Token"))
            };
        }
        Err(Refused::Unsigned)
    }
}

/// A token bucket: `burst` requests at once, then `per_sec` a second.
pub struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(burst: u32, per_sec: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: burst as f64,
            burst: burst as f64,
            per_sec: per_sec as f64,
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body);
        format!("sha256={}", hex::encode(tag.as_ref()))
    }

    #[test]
    fn github_gitlab_and_generic_signatures() {
        let v = Verifier::new(b"s3cret");
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign(b"s3cret", body);
        let bad = sign(b"other", body);
        let one =
            |name: &'static str, value: &'static str| move |h: &str| (h == name).then_some(value);
        let good: &'static str = Box::leak(good.into_boxed_str());
        let bad: &'static str = Box::leak(bad.into_boxed_str());
        assert_eq!(v.verify(one("x-hub-signature-256", good), body), Ok(()));
        assert_eq!(v.verify(one("x-signature", good), body), Ok(()));
        assert_eq!(v.verify(one("x-gitlab-token", "s3cret"), body), Ok(()));
        assert_eq!(
            v.verify(one("x-hub-signature-256", bad), body),
            Err(Refused::BadSignature("X-Hub-Signature-256"))
        );
        assert_eq!(
            v.verify(one("x-signature", "sha256=zz"), body),
            Err(Refused::BadSignature("X-Signature"))
        );
        // The body is signed: the same signature over other bytes fails.
        assert!(v.verify(one("x-hub-signature-256", good), b"{}").is_err());
        assert_eq!(
            v.verify(one("x-gitlab-token", "s3cre"), body),
            Err(Refused::BadSignature("X-Gitlab-Token"))
        );
        assert_eq!(v.verify(|_| None, body), Err(Refused::Unsigned));
    }

    #[test]
    fn the_bucket_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3, 2, t0);
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(600)));
        // Never more than the burst after a long quiet time.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
    }
}

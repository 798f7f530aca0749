//! Decryption of age files (age-encryption.org/v1) for X25519 identities:
//! what a spoke needs to open the data key of a SOPS document. Encryption is
//! left to the `age` tool; fleet only ever decrypts, and only on the spoke.
//!
//! The format: a text header (`age-encryption.org/v1`, one `-> TYPE ARGS`
//! stanza per recipient with a base64 body, `--- MAC`), then a 16-byte nonce
//! and the payload in 64 KiB ChaCha20-Poly1305 chunks. Keys come from
//! HKDF-SHA256; the header is authenticated with HMAC-SHA256 under a key
//! derived from the file key. Armored files wrap it all in PEM-style base64.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::{aead, hkdf, hmac};

const VERSION_LINE: &str = "age-encryption.org/v1";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";
/// Most stanzas one header may hold.
const MAX_STANZAS: usize = 1_000;
/// Largest payload fleet decrypts (SOPS data keys are 32 bytes).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgeError {
    #[error("not an age identity: {0}")]
    BadIdentity(String),
    #[error("malformed age file: {0}")]
    Malformed(String),
    #[error("no identity matches a recipient of this age file")]
    NoMatch,
    #[error("the age header's MAC does not verify")]
    HeaderMac,
    #[error("the age payload does not decrypt: {0}")]
    Payload(&'static str),
}

/// An X25519 identity (`AGE-SECRET-KEY-1...`).
#[derive(Clone)]
pub struct Identity {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("recipient", &self.recipient())
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn parse(s: &str) -> Result<Identity, AgeError> {
        let (hrp, data) = bech32::decode(s.trim()).map_err(|e| {
            AgeError::BadIdentity(format!("not bech32 ({e}); expected AGE-SECRET-KEY-1..."))
        })?;
        if !hrp.as_str().eq_ignore_ascii_case("age-secret-key-") {
            return Err(AgeError::BadIdentity(format!(
                "prefix {:?} is not AGE-SECRET-KEY-",
                hrp.as_str()
            )));
        }
        let bytes: [u8; 32] = data.try_into().map_err(|d: Vec<u8>| {
            AgeError::BadIdentity(format!("{} bytes of key, not 32", d.len()))
        })?;
        let secret = x25519_dalek::StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ok(Identity { secret, public })
    }

    /// Every identity in an identities file (as `age-keygen` writes it:
    /// `#` comments, one `AGE-SECRET-KEY-1...` per line).
    pub fn parse_file(text: &str) -> Result<Vec<Identity>, AgeError> {
        let ids = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(Identity::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err(AgeError::BadIdentity("the file holds no identity".into()));
        }
        Ok(ids)
    }

    /// The recipient (`age1...`) this identity decrypts for.
    pub fn recipient(&self) -> String {
        let hrp = bech32::Hrp::parse("age").expect("valid hrp");
        bech32::encode::<bech32::Bech32>(hrp, &self.public).expect("32 bytes encode")
    }

    fn unwrap(&self, stanza: &Stanza) -> Option<[u8; 16]> {
        if stanza.kind != "X25519" || stanza.args.len() != 1 {
            return None;
        }
        let share: [u8; 32] = decode_b64_canonical(&stanza.args[0])?.try_into().ok()?;
        if stanza.body.len() != 32 {
            return None;
        }
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(share));
        if !shared.was_contributory() {
            return None;
        }
        let mut salt = Vec::with_capacity(64);
        salt.extend_from_slice(&share);
        salt.extend_from_slice(&self.public);
        let wrap: [u8; 32] = derive(&salt, shared.as_bytes(), X25519_INFO);
        let mut body = stanza.body.clone();
        let key = aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &wrap).expect("32-byte key"),
        );
        let plain = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key([0; 12]),
                aead::Aad::empty(),
                &mut body,
            )
            .ok()?;
        plain.try_into().ok()
    }
}

struct Stanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

struct Header {
    stanzas: Vec<Stanza>,
    /// The header bytes the MAC covers: up to and including `---`.
    authenticated: usize,
    mac: Vec<u8>,
    /// Where the payload (nonce first) starts.
    payload: usize,
}

/// Decrypts an age file, armored or binary, with the first identity that
/// opens one of its X25519 stanzas.
pub fn decrypt(file: &[u8], identities: &[Identity]) -> Result<Vec<u8>, AgeError> {
    let binary;
    let data: &[u8] = match dearmor(file)? {
        Some(b) => {
            binary = b;
            &binary
        }
        None => file,
    };
    let header = parse_header(data)?;
    let file_key = header
        .stanzas
        .iter()
        .find_map(|s| identities.iter().find_map(|id| id.unwrap(s)))
        .ok_or(AgeError::NoMatch)?;
    let mac_key: [u8; 32] = derive(&[], &file_key, b"header");
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &mac_key),
        &data[..header.authenticated],
        &header.mac,
    )
    .map_err(|_| AgeError::HeaderMac)?;
    payload(&data[header.payload..], &file_key)
}

fn payload(data: &[u8], file_key: &[u8; 16]) -> Result<Vec<u8>, AgeError> {
    if data.len() < 16 {
        return Err(AgeError::Payload("no payload nonce"));
    }
    let (nonce, mut rest) = data.split_at(16);
    let key: [u8; 32] = derive(nonce, file_key, b"payload");
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key).expect("32-byte key"),
    );
    if rest.is_empty() {
        return Err(AgeError::Payload("no payload chunk"));
    }
    let mut out = Vec::new();
    let mut counter: u128 = 0;
    while !rest.is_empty() {
        let take = rest.len().min(CHUNK + TAG);
        let last = take == rest.len();
        let (chunk, tail) = rest.split_at(take);
        if chunk.len() < TAG {
            return Err(AgeError::Payload("truncated chunk"));
        }
        let mut n = [0u8; 12];
        n[..11].copy_from_slice(&counter.to_be_bytes()[5..16]);
        n[11] = u8::from(last);
        let mut buf = chunk.to_vec();
        let plain = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(n),
                aead::Aad::empty(),
                &mut buf,
            )
            .map_err(|_| AgeError::Payload("a chunk does not authenticate"))?;
        if plain.is_empty() && (counter > 0 || !last) {
            return Err(AgeError::Payload("an empty chunk that is not the only one"));
        }
        out.extend_from_slice(plain);
        if out.len() > MAX_PAYLOAD {
            return Err(AgeError::Payload("larger than fleet decrypts"));
        }
        counter += 1;
        rest = tail;
    }
    Ok(out)
}

struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<&'a str, AgeError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| malformed("the header does not end"))?;
        let l =
            std::str::from_utf8(&rest[..end]).map_err(|_| malformed("the header is not text"))?;
        self.pos += end + 1;
        Ok(l)
    }
}

fn malformed(m: &str) -> AgeError {
    AgeError::Malformed(m.to_string())
}

fn parse_header(data: &[u8]) -> Result<Header, AgeError> {
    let mut lines = Lines { data, pos: 0 };
    if lines.next()? != VERSION_LINE {
        return Err(malformed("not age-encryption.org/v1"));
    }
    let mut stanzas = Vec::new();
    loop {
        let l = lines.next()?;
        if let Some(mac) = l.strip_prefix("--- ") {
            let mac = decode_b64_canonical(mac)
                .ok_or_else(|| malformed("the header MAC is not base64"))?;
            if mac.len() != 32 {
                return Err(malformed("the header MAC is not 32 bytes"));
            }
            let payload = lines.pos;
            // The MAC covers the header up to and including "---".
            let authenticated = payload - l.len() - 1 + 3;
            return Ok(Header {
                stanzas,
                authenticated,
                mac,
                payload,
            });
        }
        let Some(rest) = l.strip_prefix("-> ") else {
            return Err(malformed("expected a stanza (->) or the MAC line (---)"));
        };
        let mut words = rest.split(' ');
        let kind = words.next().unwrap_or_default();
        if kind.is_empty() || words.clone().any(str::is_empty) {
            return Err(malformed("a stanza has an empty argument"));
        }
        let args: Vec<String> = words.map(str::to_string).collect();
        let mut body = Vec::new();
        loop {
            let b = lines.next()?;
            if b.len() > 64 {
                return Err(malformed("a stanza body line is longer than 64 columns"));
            }
            let bytes =
                decode_b64_canonical(b).ok_or_else(|| malformed("a stanza body is not base64"))?;
            body.extend_from_slice(&bytes);
            if b.len() < 64 {
                break;
            }
        }
        stanzas.push(Stanza {
            kind: kind.to_string(),
            args,
            body,
        });
        if stanzas.len() > MAX_STANZAS {
            return Err(malformed("too many stanzas"));
        }
    }
}

/// The binary file inside an armored one, `None` when `file` is not armored.
fn dearmor(file: &[u8]) -> Result<Option<Vec<u8>>, AgeError> {
    let Ok(text) = std::str::from_utf8(file) else {
        return Ok(None);
    };
    let text = text.trim();
    let Some(inner) = text.strip_prefix(ARMOR_BEGIN) else {
        return Ok(None);
    };
    let inner = inner
        .strip_suffix(ARMOR_END)
        .ok_or_else(|| AgeError::Malformed("the armor does not end".into()))?;
    let joined: String = inner.split_whitespace().collect();
    STANDARD
        .decode(joined.as_bytes())
        .map(Some)
        .map_err(|_| AgeError::Malformed("the armor is not base64".into()))
}

/// age's base64: standard alphabet, no padding, canonical trailing bits.
fn decode_b64_canonical(s: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD_NO_PAD.decode(s).ok()?;
    (STANDARD_NO_PAD.encode(&bytes) == s).then_some(bytes)
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut out = [0u8; N];
    prk.expand(&[info], Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output length is small");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // A key generated once by `age-keygen` for these tests, and `hello`
    // encrypted to it by `age -a -r age1me6q...`.
    const ID: &str = "AGE-SECRET-KEY-1ST86KPNR70TJH0V0K8GF3DD4QW4GSUVU09MAYC77U3HVADT0VFDS33JXRS";
    const RECIPIENT: &str = "age1me6qmtkudffjkvf9vn3yg8zu7g32vk0jkuwjfhm97typjw44w4vsuq3xhq";
    const HELLO: &str = "-----BEGIN AGE ENCRYPTED FILE-----
YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBiSGQ0RU5pQ0s5eFZjZHM1
bEo5dUQ1US8wbjV0WUMyVnRNYmlpT2FDYVV3CkdOYVJ0akdCZzIzY2F4WWtmVTZk
czlmR1A1dzd2Q1RZanJaSXRLeUcyWGsKLS0tICtOYktyL2lsWFZMbmR1aTVneHZj
YXVRS0EvVGx4WCtIQlI4NUpab29vZUkKOApGdN36F+56QoAQojTaAnBEunYtc4bi
kebHeZv6od8M45sGYw==
-----END AGE ENCRYPTED FILE-----
";

    #[test]
    fn decrypts_what_the_age_tool_encrypted() {
        let id = Identity::parse(ID).unwrap();
        assert_eq!(id.recipient(), RECIPIENT);
        assert_eq!(decrypt(HELLO.as_bytes(), &[id.clone()]).unwrap(), b"hello");
        // Another identity does not open it.
        let other = Identity::parse_file(
            "# created by age-keygen\nAGE-SECRET-KEY-1Z27NKXGDHDZA8YU4LY32XHX0EH8MAPWTX3W68HMRWE9NT24EDS5S6K9XZT\n",
        )
        .unwrap();
        assert_eq!(decrypt(HELLO.as_bytes(), &other), Err(AgeError::NoMatch));
        // Any flipped bit of the binary file is refused.
        let bin = dearmor(HELLO.as_bytes()).unwrap().unwrap();
        for i in 0..bin.len() {
            let mut b = bin.clone();
            b[i] ^= 0x04;
            assert!(
                decrypt(&b, &[id.clone()]).is_err(),
                "byte {i} flipped still decrypts"
            );
        }
    }

    #[test]
    fn an_identity_names_its_recipient() {
        assert!(matches!(
            Identity::parse("age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"),
            Err(AgeError::BadIdentity(_))
        ));
        assert!(Identity::parse("AGE-SECRET-KEY-1NOTBECH32").is_err());
        assert!(Identity::parse_file("# only a comment\n").is_err());
    }

    #[test]
    fn malformed_files_are_refused_not_panicked_on() {
        let id = Identity::parse(ID).unwrap();
        for f in [
            &b""[..],
            b"age-encryption.org/v1\n",
            b"age-encryption.org/v1\n-> X25519\n",
            b"age-encryption.org/v1\n--- AAAA\n",
            b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!\n-----END AGE ENCRYPTED FILE-----\n",
            b"age-encryption.org/v2\n",
        ] {
            assert!(decrypt(f, std::slice::from_ref(&id)).is_err());
        }
    }
}

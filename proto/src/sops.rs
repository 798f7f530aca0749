//! SOPS documents (YAML or JSON, age recipients): recognised on the hub,
//! opened only on the spoke.
//!
//! A SOPS file keeps its structure and plaintext keys; each value the file's
//! rules select is `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]`, encrypted
//! with a per-file data key under AES-256-GCM (32-byte IV) with the value's
//! path (`key:key:`) as additional data. The data key is age-encrypted to each
//! recipient in the `sops` metadata. The MAC is SHA-512 over every leaf value
//! in document order (only the encrypted ones with `mac_only_encrypted`),
//! upper-case hex, itself encrypted with the `lastmodified` time as
//! additional data.
//!
//! fleet's hub never holds a key: it passes a SOPS document through as
//! written, byte for byte, when its render leaves the document unchanged;
//! when a Kustomize transformer changed plaintext fields (a namespace, a
//! label) it sends the rendered document with the file as written in
//! [`SOURCE_KEY`], so the spoke checks the MAC over what the author wrote and
//! decrypts the rendered one. Decryption authenticates each value with its
//! path, so the render cannot move a value.

use std::borrow::Cow;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fleet_render::kustomize::regex::Regex;
use fleet_render::yaml::{Scalar, Schema, resolve_plain};
use granit_parser::{Event, Options, Parser, ScalarStyle};
use serde_json::Value;

use crate::age::{self, Identity};

pub use fleet_render::sops::SOURCE_KEY;

type Gcm = aes_gcm::AesGcm<Aes256, U32>;

/// The bytes `mac_only_encrypted` MACs start with (SOPS' constant).
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];
const MAX_DEPTH: usize = 64;
const MAX_NODES: usize = 200_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SopsError {
    #[error("not a SOPS document: {0}")]
    Malformed(String),
    #[error("unsupported SOPS feature: {0}")]
    Unsupported(String),
    #[error(
        "no age identity of this spoke opens the data key (recipients: {recipients}); give the spoke one with --age-identity"
    )]
    NoKey { recipients: String },
    #[error("the data key does not decrypt: {0}")]
    DataKey(String),
    #[error("value at {path} does not decrypt: {reason}")]
    Value { path: String, reason: String },
    #[error("MAC mismatch: the document was changed after it was encrypted")]
    Mac,
    #[error("still encrypted after decryption at {0}: refusing to apply it")]
    StillSealed(String),
}

pub use fleet_render::sops::{encrypted_identity, is_sops, sealed_at};

/// Opens the SOPS document `manifest` (one YAML or JSON document, as the hub
/// sent it) into the plaintext object to apply. `parsed` is the manifest as
/// fleet reads it (the hub's resolution of every plaintext scalar).
pub fn open(manifest: &str, parsed: &Value, identities: &[Identity]) -> Result<Value, SopsError> {
    let tree = Tree::parse(manifest)?;
    let meta = Metadata::from_tree(&tree)?;
    let key = meta.data_key(identities)?;
    // One pass decrypts every value and hashes the leaves for the MAC.
    let (values, computed) = meta.decrypt(&tree, &key)?;
    match &meta.source {
        // The render changed the document: the MAC is over the file as
        // written; the values are taken from the rendered document.
        Some(source) => {
            let src = Tree::parse(source)?;
            let src_meta = Metadata::from_tree(&src)?;
            if src_meta.mac != meta.mac {
                return Err(SopsError::Malformed(
                    "the source the hub sent is another file's".into(),
                ));
            }
            let (_, src_computed) = src_meta.decrypt(&src, &key)?;
            src_meta.check_mac(&src_computed, &key)?;
        }
        None => meta.check_mac(&computed, &key)?,
    }
    let mut out = parsed.clone();
    if let Value::Object(m) = &mut out {
        m.remove("sops");
    }
    for (pointer, plain) in values {
        let slot = out.pointer_mut(&pointer).ok_or_else(|| SopsError::Value {
            path: pointer.clone(),
            reason: "the rendered object has no such field".into(),
        })?;
        *slot = plain.into_json();
    }
    if let Some(at) = sealed_at(&out) {
        return Err(SopsError::StillSealed(at));
    }
    Ok(out)
}

/// A node of the document in document order (serde_json's maps are sorted,
/// and the MAC depends on order).
#[derive(Debug, Clone)]
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    /// Scalar text, and whether it was plain (unquoted, untagged).
    Scalar(String, bool),
}

struct Tree {
    root: Vec<(String, Node)>,
}

impl Tree {
    fn parse(text: &str) -> Result<Tree, SopsError> {
        let bad = |m: String| SopsError::Malformed(m);
        let mut options = Options::default();
        options.set_emit_comments(false);
        let mut parser = Parser::new_from_str_with_options(text, options);
        // (node under construction, pending key for maps)
        let mut stack: Vec<(Node, Option<String>)> = Vec::new();
        let mut docs: Vec<Node> = Vec::new();
        let mut nodes = 0usize;
        while let Some(ev) = parser.next_event() {
            let (event, _) = ev.map_err(|e| bad(e.to_string()))?;
            let done = match event {
                Event::StreamStart | Event::StreamEnd | Event::DocumentStart(..) => None,
                Event::DocumentEnd => None,
                Event::Alias(_) => {
                    return Err(SopsError::Unsupported(
                        "YAML aliases in a SOPS document".into(),
                    ));
                }
                Event::Scalar(text, style, _, tag) => {
                    let plain = style == ScalarStyle::Plain && tag.is_none();
                    Some(Node::Scalar(text.into_owned(), plain))
                }
                Event::SequenceStart(..) => {
                    stack.push((Node::Seq(Vec::new()), None));
                    None
                }
                Event::MappingStart(..) => {
                    stack.push((Node::Map(Vec::new()), None));
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (n, _) = stack.pop().ok_or_else(|| bad("unbalanced YAML".into()))?;
                    Some(n)
                }
                _ => None,
            };
            if stack.len() > MAX_DEPTH {
                return Err(bad(format!("nested deeper than {MAX_DEPTH}")));
            }
            let Some(node) = done else { continue };
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(bad(format!("more than {MAX_NODES} nodes")));
            }
            match stack.last_mut() {
                None => docs.push(node),
                Some((Node::Seq(items), _)) => items.push(node),
                Some((Node::Map(entries), pending)) => match pending.take() {
                    None => match node {
                        Node::Scalar(k, _) => *pending = Some(k),
                        _ => return Err(bad("a mapping key is not a scalar".into())),
                    },
                    Some(k) => entries.push((k, node)),
                },
                Some((Node::Scalar(..), _)) => unreachable!("scalars are never on the stack"),
            }
        }
        match docs.len() {
            1 => match docs.pop() {
                Some(Node::Map(root)) => Ok(Tree { root }),
                _ => Err(bad("the document is not a mapping".into())),
            },
            n => Err(SopsError::Unsupported(format!(
                "{n} documents in one SOPS file (fleet opens one per file)"
            ))),
        }
    }

    fn get(&self, key: &str) -> Option<&Node> {
        self.root.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

fn get<'a>(m: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    m.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn text(n: Option<&Node>) -> Option<&str> {
    match n {
        Some(Node::Scalar(s, _)) => Some(s.as_str()),
        _ => None,
    }
}

struct Metadata {
    /// (recipient, armored age file) per age key.
    age: Vec<(String, String)>,
    lastmodified: String,
    mac: String,
    encrypted_regex: Option<Regex>,
    unencrypted_regex: Option<Regex>,
    encrypted_suffix: String,
    unencrypted_suffix: String,
    mac_only_encrypted: bool,
    source: Option<String>,
}

impl Metadata {
    fn from_tree(tree: &Tree) -> Result<Metadata, SopsError> {
        let Some(Node::Map(m)) = tree.get("sops") else {
            return Err(SopsError::Malformed("no sops metadata mapping".into()));
        };
        let s = |k: &str| text(get(m, k)).unwrap_or_default().to_string();
        for unsupported in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
            if !s(unsupported).is_empty() {
                return Err(SopsError::Unsupported(format!(
                    "{unsupported} (fleet does not read comments)"
                )));
            }
        }
        if matches!(get(m, "key_groups"), Some(Node::Seq(g)) if !g.is_empty()) {
            return Err(SopsError::Unsupported(
                "key_groups (Shamir secret sharing)".into(),
            ));
        }
        let regex = |k: &str| -> Result<Option<Regex>, SopsError> {
            let p = s(k);
            if p.is_empty() {
                return Ok(None);
            }
            Regex::new(&p)
                .map(Some)
                .map_err(|e| SopsError::Unsupported(format!("{k}: {e}")))
        };
        let mut age = Vec::new();
        if let Some(Node::Seq(items)) = get(m, "age") {
            for it in items {
                if let Node::Map(e) = it {
                    if let (Some(r), Some(enc)) = (text(get(e, "recipient")), text(get(e, "enc"))) {
                        age.push((r.to_string(), enc.to_string()));
                    }
                }
            }
        }
        let mac = s("mac");
        if mac.is_empty() {
            return Err(SopsError::Malformed("the sops metadata has no mac".into()));
        }
        Ok(Metadata {
            age,
            lastmodified: s("lastmodified"),
            mac,
            encrypted_regex: regex("encrypted_regex")?,
            unencrypted_regex: regex("unencrypted_regex")?,
            encrypted_suffix: s("encrypted_suffix"),
            unencrypted_suffix: s("unencrypted_suffix"),
            mac_only_encrypted: matches!(text(get(m, "mac_only_encrypted")), Some("true" | "True")),
            source: text(get(m, SOURCE_KEY)).map(str::to_string),
        })
    }

    fn data_key(&self, identities: &[Identity]) -> Result<[u8; 32], SopsError> {
        let mut last = None;
        for (_, enc) in &self.age {
            match age::decrypt(enc.as_bytes(), identities) {
                Ok(k) => {
                    return k.try_into().map_err(|k: Vec<u8>| {
                        SopsError::DataKey(format!("{} bytes, not 32", k.len()))
                    });
                }
                Err(age::AgeError::NoMatch) => {}
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(SopsError::DataKey(e.to_string())),
            None => Err(SopsError::NoKey {
                recipients: if self.age.is_empty() {
                    "none of type age".into()
                } else {
                    self.age
                        .iter()
                        .map(|(r, _)| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }

    /// SOPS' `shouldBeEncrypted` for a path of mapping keys.
    fn encrypts(&self, path: &[&str]) -> bool {
        let mut enc = true;
        if !self.unencrypted_suffix.is_empty()
            && path.iter().any(|p| p.ends_with(&self.unencrypted_suffix))
        {
            enc = false;
        }
        if !self.encrypted_suffix.is_empty() {
            enc = path.iter().any(|p| p.ends_with(&self.encrypted_suffix));
        }
        if let Some(r) = &self.unencrypted_regex {
            if path.iter().any(|p| r.is_match(p)) {
                enc = false;
            }
        }
        if let Some(r) = &self.encrypted_regex {
            enc = path.iter().any(|p| r.is_match(p));
        }
        enc
    }

    /// Every leaf outside the metadata, in document order.
    fn leaves<'t>(&'t self, tree: &'t Tree) -> Vec<Leaf<'t>> {
        let mut out = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        for (k, v) in &tree.root {
            if k == "sops" {
                continue;
            }
            keys.push(k);
            let pointer = format!("/{}", escape(k));
            self.walk(v, &mut keys, pointer, &mut out);
            keys.pop();
        }
        out
    }

    fn walk<'t>(
        &self,
        n: &'t Node,
        keys: &mut Vec<&'t str>,
        pointer: String,
        out: &mut Vec<Leaf<'t>>,
    ) {
        match n {
            Node::Map(m) => {
                for (k, v) in m {
                    keys.push(k);
                    self.walk(v, keys, format!("{pointer}/{}", escape(k)), out);
                    keys.pop();
                }
            }
            Node::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.walk(v, keys, format!("{pointer}/{i}"), out);
                }
            }
            Node::Scalar(s, plain) => {
                if *plain && matches!(resolve_plain(Schema::Kyaml, s), Scalar::Null) {
                    // SOPS neither encrypts nor MACs a null.
                    return;
                }
                out.push(Leaf {
                    text: s,
                    plain: *plain,
                    aad: format!("{}:", keys.join(":")),
                    pointer,
                    encrypted: self.encrypts(keys),
                });
            }
        }
    }

    /// Every encrypted value decrypted (where it goes in the object, and
    /// its value), and the MAC SOPS computes over the leaves, upper-case hex.
    fn decrypt(
        &self,
        tree: &Tree,
        key: &[u8; 32],
    ) -> Result<(Vec<(String, Plain)>, String), SopsError> {
        let mut hash = ring::digest::Context::new(&ring::digest::SHA512);
        if self.mac_only_encrypted {
            hash.update(&MAC_ONLY_ENCRYPTED_INIT);
        }
        let mut values = Vec::new();
        for leaf in self.leaves(tree) {
            if leaf.encrypted {
                let plain = decrypt_value(&leaf, key)?;
                hash.update(plain.mac_bytes().as_bytes());
                values.push((leaf.pointer, plain));
            } else if !self.mac_only_encrypted {
                hash.update(mac_bytes_of_plain(&leaf).as_bytes());
            }
        }
        Ok((values, hex::encode_upper(hash.finish())))
    }

    /// Compares a computed MAC with the one the document stores.
    fn check_mac(&self, computed: &str, key: &[u8; 32]) -> Result<(), SopsError> {
        let at = rfc3339(&self.lastmodified);
        let stored = decrypt_enc(&self.mac, key, &at).map_err(|reason| SopsError::Value {
            path: "sops.mac".into(),
            reason,
        })?;
        if stored.0 != computed.as_bytes() {
            return Err(SopsError::Mac);
        }
        Ok(())
    }
}

struct Leaf<'t> {
    text: &'t str,
    plain: bool,
    /// SOPS' additional data: the mapping keys joined with `:`, plus `:`.
    aad: String,
    /// Where the leaf is in the parsed object.
    pointer: String,
    encrypted: bool,
}

fn escape(k: &str) -> Cow<'_, str> {
    if k.contains(['~', '/']) {
        Cow::Owned(k.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(k)
    }
}

/// How SOPS writes a plaintext leaf into the MAC (`ToBytes` of the value
/// go-yaml v3 decodes).
fn mac_bytes_of_plain(leaf: &Leaf) -> String {
    if !leaf.plain {
        return leaf.text.to_string();
    }
    match resolve_plain(Schema::Kyaml, leaf.text) {
        Scalar::Bool(b) => if b { "True" } else { "False" }.into(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Uint(u) => u.to_string(),
        Scalar::Float(f) => go_float_f(f),
        Scalar::Null => String::new(),
        // go-yaml gives a timestamp decoded into interface{} as its text.
        Scalar::Timestamp(_) | Scalar::Str => leaf.text.to_string(),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
fn go_float_f(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's Display is the shortest round-trip form without an exponent.
        format!("{f}")
    }
}

/// Go's `time.Format(time.RFC3339)` of a parsed RFC 3339 time: no fraction,
/// `Z` for a zero offset.
fn rfc3339(s: &str) -> String {
    let (date_time, zone) = match s
        .find(['Z', 'z', '+'])
        .or_else(|| s.rfind('-').filter(|&i| i > 10))
    {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let date_time = date_time.split('.').next().unwrap_or(date_time);
    let zone = match zone {
        "z" | "+00:00" | "-00:00" => "Z",
        z => z,
    };
    format!("{date_time}{zone}")
}

/// A decrypted value with its SOPS type.
enum Plain {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Plain {
    fn mac_bytes(&self) -> String {
        match self {
            Plain::Str(s) => s.clone(),
            Plain::Int(i) => i.to_string(),
            Plain::Float(f) => go_float_f(*f),
            Plain::Bool(b) => if *b { "True" } else { "False" }.into(),
        }
    }

    fn into_json(self) -> Value {
        match self {
            Plain::Str(s) => Value::String(s),
            Plain::Int(i) => Value::from(i),
            Plain::Float(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(go_float_f(f))),
            Plain::Bool(b) => Value::Bool(b),
        }
    }
}

fn decrypt_value(leaf: &Leaf, key: &[u8; 32]) -> Result<Plain, SopsError> {
    let fail = |reason: String| SopsError::Value {
        path: leaf.aad.trim_end_matches(':').to_string(),
        reason,
    };
    if leaf.text.is_empty() {
        // SOPS leaves an empty string as it is.
        return Ok(Plain::Str(String::new()));
    }
    let (bytes, ty) = decrypt_enc(leaf.text, key, &leaf.aad).map_err(fail)?;
    let s = || String::from_utf8(bytes.clone()).map_err(|_| fail("not UTF-8".into()));
    Ok(match ty.as_str() {
        "str" | "bytes" | "time" => Plain::Str(s()?),
        "int" => Plain::Int(s()?.parse().map_err(|_| fail("not an int".into()))?),
        "float" => Plain::Float(s()?.parse().map_err(|_| fail("not a float".into()))?),
        "bool" => Plain::Bool(match s()?.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(fail("not a bool".into())),
        }),
        "comment" => return Err(fail("an encrypted comment where a value belongs".into())),
        other => return Err(fail(format!("unknown type {other:?}"))),
    })
}

/// Decrypts one `ENC[AES256_GCM,...]` string: its bytes and type.
fn decrypt_enc(enc: &str, key: &[u8; 32], aad: &str) -> Result<(Vec<u8>, String), String> {
    let p = parse_enc(enc)?;
    if p.iv.len() != 32 {
        return Err(format!("an IV of {} bytes (SOPS writes 32)", p.iv.len()));
    }
    let gcm = Gcm::new_from_slice(key).map_err(|_| "bad key length".to_string())?;
    let mut msg = p.data;
    msg.extend_from_slice(&p.tag);
    let plain = gcm
        .decrypt(
            aes_gcm::Nonce::<U32>::from_slice(&p.iv),
            Payload {
                msg: &msg,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| "authentication failed (wrong key, wrong place, or changed)".to_string())?;
    Ok((plain, p.ty))
}

/// The parts of an `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]` value.
#[derive(Debug, PartialEq, Eq)]
pub struct EncValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub ty: String,
}

pub fn parse_enc(s: &str) -> Result<EncValue, String> {
    let inner = s
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("not an ENC[AES256_GCM,...] value")?;
    let mut parts = inner.split(',');
    let mut field = |name: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .and_then(|p| p.strip_prefix(':'))
            .ok_or(format!("no {name} field"))
    };
    let b64 = |name: &str, v: &str| {
        STANDARD
            .decode(v)
            .map_err(|_| format!("{name} is not base64"))
    };
    let data = field("data")?;
    let iv = field("iv")?;
    let tag = field("tag")?;
    let ty = field("type")?;
    let v = EncValue {
        data: b64("data", data)?,
        iv: b64("iv", iv)?,
        tag: b64("tag", tag)?,
        ty: ty.to_string(),
    };
    if v.tag.len() != 16 {
        return Err("the tag is not 16 bytes".into());
    }
    Ok(v)
}

/// Encryption, for tests and tools that build SOPS documents (fleet itself
/// never encrypts): the `ENC[...]` form of `plain` at `aad` with `iv`.
pub fn encrypt_value(plain: &str, ty: &str, key: &[u8; 32], aad: &str, iv: &[u8; 32]) -> String {
    let gcm = Gcm::new_from_slice(key).expect("32-byte key");
    let out = gcm
        .encrypt(
            aes_gcm::Nonce::<U32>::from_slice(iv),
            Payload {
                msg: plain.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM encrypts");
    let (data, tag) = out.split_at(out.len() - 16);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
        STANDARD.encode(data),
        STANDARD.encode(iv),
        STANDARD.encode(tag)
    )
}

/// The MAC SOPS stores for a document whose leaves (in document order,
/// already in `ToBytes` form) are `leaves`, encrypted for `lastmodified`.
pub fn mac_value(leaves: &[&str], key: &[u8; 32], lastmodified: &str, iv: &[u8; 32]) -> String {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA512);
    for l in leaves {
        hash.update(l.as_bytes());
    }
    let mac = hex::encode_upper(hash.finish());
    encrypt_value(&mac, "str", key, &rfc3339(lastmodified), iv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enc_values_parse_strictly() {
        let key = [7u8; 32];
        let e = encrypt_value("s3cret", "str", &key, "data:password:", &[1; 32]);
        let p = parse_enc(&e).unwrap();
        assert_eq!((p.iv.len(), p.tag.len(), p.ty.as_str()), (32, 16, "str"));
        assert_eq!(
            decrypt_enc(&e, &key, "data:password:").unwrap().0,
            b"s3cret"
        );
        // Bound to its path.
        assert!(decrypt_enc(&e, &key, "data:other:").is_err());
        for bad in [
            "ENC[AES256_GCM,data:,iv:,tag:,type:str",
            "ENC[AES256_GCM,iv:AA==,data:AA==,tag:AA==,type:str]",
            "ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]",
            "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]",
        ] {
            assert!(
                parse_enc(bad).is_err() || decrypt_enc(bad, &key, "").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn go_forms_of_times_and_floats() {
        assert_eq!(rfc3339("2024-09-16T19:00:22Z"), "2024-09-16T19:00:22Z");
        assert_eq!(
            rfc3339("2024-09-16T19:00:22.123456Z"),
            "2024-09-16T19:00:22Z"
        );
        assert_eq!(
            rfc3339("2024-09-16T19:00:22+02:00"),
            "2024-09-16T19:00:22+02:00"
        );
        assert_eq!(
            rfc3339("2024-09-16T19:00:22.5-05:00"),
            "2024-09-16T19:00:22-05:00"
        );
        assert_eq!(rfc3339("2024-09-16T19:00:22+00:00"), "2024-09-16T19:00:22Z");
        assert_eq!(go_float_f(1.5), "1.5");
        assert_eq!(go_float_f(1e21), "1000000000000000000000");
        assert_eq!(go_float_f(3.0), "3");
    }
}

#[cfg(test)]
mod open_tests {
    use super::*;

    /// The test identity of `age.rs`, and the data key 100..=131 encrypted to
    /// it by `age -a -r age1me6q...`.
    const ID: &str = "AGE-SECRET-KEY-1ST86KPNR70TJH0V0K8GF3DD4QW4GSUVU09MAYC77U3HVADT0VFDS33JXRS";
    const DATA_KEY_AGE: &str = "-----BEGIN AGE ENCRYPTED FILE-----
YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBkMmVMWE8zcUFTQ1hpUEFW
ZFI4NEdYdzF3cWVxendxTFRIZVRMRlZqclU4CjNxNE82QVl1L2lkTVZSYXdaeHRa
NmZZUFREL0VWSEhIbFVzRXNCUUZpY3MKLS0tIFFaZ09PdnFkYXZtTGN5WFVzSGhN
YWZuZ0ZXdFlmVG1Cckk1bWd6R1dIYUEK8aLIai9376tk7CnZHhEbRieAZMQj15sQ
QMAcfyjwRu3+mS972WirgujP0BlFptiOgXS39Lx+XjqctTNIF+08HQ==
-----END AGE ENCRYPTED FILE-----
";
    const LM: &str = "2026-11-30T10:00:00.25+00:00";

    fn key() -> [u8; 32] {
        std::array::from_fn(|i| 100 + i as u8)
    }

    /// A document with values of every type; `rules` are extra metadata
    /// lines; `macd` the leaves the MAC covers.
    fn doc(values: &[(&str, &str)], rules: &str, macd: &[&str]) -> String {
        let mut body =
            String::from("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n");
        for (k, v) in values {
            body.push_str(&format!("  {k}: {v}\n"));
        }
        let enc: String = DATA_KEY_AGE
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect();
        body.push_str(&format!(
            "sops:\n  age:\n    - recipient: age1me6qmtkudffjkvf9vn3yg8zu7g32vk0jkuwjfhm97typjw44w4vsuq3xhq\n      enc: |\n{enc}  lastmodified: \"{LM}\"\n  mac: {}\n{rules}  version: 3.9.0\n",
            mac_value(macd, &key(), LM, &[9; 32])
        ));
        body
    }

    fn open_text(text: &str) -> Result<Value, SopsError> {
        let parsed = fleet_render::yaml::parse_documents("t.yaml", text.as_bytes())
            .unwrap()
            .pop()
            .unwrap();
        open(text, &parsed, &[Identity::parse(ID).unwrap()])
    }

    #[test]
    fn values_of_every_type_open_and_the_mac_holds_them() {
        let k = key();
        let e = |v: &str, ty: &str, path: &str| encrypt_value(v, ty, &k, path, &[1; 32]);
        let values = [
            ("password", e("s3cret", "str", "stringData:password:")),
            ("port", e("5432", "int", "stringData:port:")),
            ("ratio", e("0.5", "float", "stringData:ratio:")),
            ("tls", e("True", "bool", "stringData:tls:")),
            ("note_unencrypted", "plain text".to_string()),
        ];
        let pairs: Vec<(&str, &str)> = values.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let rules = "  encrypted_regex: ^(password|port|ratio|tls)$\n";
        let leaves = [
            "v1",
            "Secret",
            "db",
            "s3cret",
            "5432",
            "0.5",
            "True",
            "plain text",
        ];
        let v = open_text(&doc(&pairs, rules, &leaves)).unwrap();
        assert_eq!(v["stringData"]["password"], "s3cret");
        assert_eq!(v["stringData"]["port"], 5432);
        assert_eq!(v["stringData"]["ratio"], 0.5);
        assert_eq!(v["stringData"]["tls"], true);
        assert_eq!(v["stringData"]["note_unencrypted"], "plain text");
        assert!(v.get("sops").is_none());

        // A plaintext value changed after encryption.
        let changed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (*a, if *a == "note_unencrypted" { "other" } else { b }))
            .collect();
        assert_eq!(
            open_text(&doc(&changed, rules, &leaves)),
            Err(SopsError::Mac)
        );
        // A value moved to another key does not authenticate.
        let moved = [("password", values[1].1.as_str())];
        assert!(matches!(
            open_text(&doc(&moved, rules, &["v1", "Secret", "db", "5432"])),
            Err(SopsError::Value { .. })
        ));
        // With no rule, SOPS encrypts every value: a plaintext apiVersion is
        // refused, not taken as written.
        assert!(matches!(
            open_text(&doc(&pairs, "", &leaves)),
            Err(SopsError::Value { .. })
        ));
    }

    #[test]
    fn mac_only_encrypted_and_regex_rules() {
        let k = key();
        let pw = encrypt_value("s3cret", "str", &k, "stringData:password:", &[2; 32]);
        let values = [("password", pw.as_str()), ("user", "admin")];
        // Only `password` matches the regex; the MAC covers only it.
        let rules = "  encrypted_regex: ^password$\n  mac_only_encrypted: true\n";
        // mac_value hashes text; the init bytes are not UTF-8, so build the
        // MAC by hand here.
        let mut hash = ring::digest::Context::new(&ring::digest::SHA512);
        hash.update(&MAC_ONLY_ENCRYPTED_INIT);
        hash.update(b"s3cret");
        let mac = encrypt_value(
            &hex::encode_upper(hash.finish()),
            "str",
            &k,
            &rfc3339(LM),
            &[3; 32],
        );
        let plain_mac = doc(&values, rules, &[]);
        let stored = &plain_mac
            .lines()
            .find(|l| l.starts_with("  mac: "))
            .unwrap()[7..];
        let text = plain_mac.replace(stored, &mac);
        let v = open_text(&text).unwrap();
        assert_eq!(v["stringData"]["password"], "s3cret");
        assert_eq!(v["stringData"]["user"], "admin");
        // Without the identity: the recipients are named.
        let parsed = fleet_render::yaml::parse_documents("t.yaml", text.as_bytes())
            .unwrap()
            .pop()
            .unwrap();
        let e = open(&text, &parsed, &[]).unwrap_err();
        assert!(e.to_string().contains("age1me6q"), "{e}");
    }
}

//! SOPS-encrypted documents in a render: recognised, never opened (the hub
//! holds no key). A SOPS document is sent as written, byte for byte, when the
//! render left it unchanged; when a transformer changed it (a namespace, a
//! label), the rendered document is sent with the file as written under
//! `sops.fleet_source`, so the spoke can check the MAC over what the author
//! wrote. Decryption lives in `fleet_proto::sops`, on the spoke.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::source::{DirEntry, FileSource, SourceError};
use crate::yaml;

/// Where the hub keeps the file as written, inside the `sops` metadata of a
/// document its render changed.
pub const SOURCE_KEY: &str = "fleet_source";

/// Whether a parsed object is a SOPS document (a top-level `sops` mapping
/// with a `mac`).
pub fn is_sops(v: &Value) -> bool {
    v.get("sops")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("mac"))
}

/// Where an object still carries SOPS metadata or an encrypted value, if it
/// does (a JSON pointer): the spoke never applies such an object.
pub fn sealed_at(v: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        let child = |seg: &str, x: &Value, path: &mut String| {
            let n = path.len();
            path.push('/');
            path.push_str(seg);
            let hit = walk(x, path);
            if !hit {
                path.truncate(n);
            }
            hit
        };
        match v {
            Value::String(s) => s.starts_with("ENC["),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .any(|(i, x)| child(&i.to_string(), x, path)),
            Value::Object(m) => m.iter().any(|(k, x)| child(k, x, path)),
            _ => false,
        }
    }
    if v.get("sops").is_some() {
        return Some("/sops".into());
    }
    let mut path = String::new();
    walk(v, &mut path).then_some(path)
}

/// The first field that identifies an object and is encrypted, if any: those
/// must stay plaintext so the hub can place the object.
pub fn encrypted_identity(v: &Value) -> Option<&'static str> {
    [
        ("/apiVersion", "apiVersion"),
        ("/kind", "kind"),
        ("/metadata/name", "metadata.name"),
        ("/metadata/namespace", "metadata.namespace"),
    ]
    .into_iter()
    .find(|(p, _)| {
        v.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("ENC["))
    })
    .map(|(_, n)| n)
}

/// A [`FileSource`] that remembers the files a render read which may hold
/// SOPS documents, so the render can send them as written.
pub struct Recorder<'a> {
    inner: &'a dyn FileSource,
    files: Mutex<BTreeMap<String, Arc<[u8]>>>,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a dyn FileSource) -> Self {
        Recorder {
            inner,
            files: Mutex::new(BTreeMap::new()),
        }
    }

    /// The SOPS documents among the files read, by their `sops.mac`.
    pub fn sources(&self) -> Sources {
        let files = self.files.lock().expect("recorder lock");
        let mut by_mac = BTreeMap::new();
        for (path, bytes) in files.iter() {
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            let Ok(docs) = yaml::parse_documents(path, bytes) else {
                continue;
            };
            let n = docs.len();
            for d in docs {
                if let Some(mac) = d.pointer("/sops/mac").and_then(Value::as_str) {
                    by_mac.insert(
                        mac.to_string(),
                        Source {
                            path: path.clone(),
                            text: text.into(),
                            documents: n,
                            parsed: d.clone(),
                        },
                    );
                }
            }
        }
        Sources { by_mac }
    }
}

impl FileSource for Recorder<'_> {
    fn read(&self, path: &str) -> Result<Option<Arc<[u8]>>, SourceError> {
        let got = self.inner.read(path)?;
        if let Some(b) = &got
            && b.windows(4).any(|w| w == b"sops")
        {
            self.files
                .lock()
                .expect("recorder lock")
                .insert(path.to_string(), b.clone());
        }
        Ok(got)
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>, SourceError> {
        self.inner.list_dir(path)
    }
}

struct Source {
    path: String,
    text: Arc<str>,
    documents: usize,
    /// The document as written, parsed.
    parsed: Value,
}

pub struct Sources {
    by_mac: BTreeMap<String, Source>,
}

impl Sources {
    /// Prepares the SOPS object `obj` (rendered from `file`) for the state:
    /// `Some(text)` when it is sent as written, `None` when the render
    /// changed it and it now carries its source under [`SOURCE_KEY`].
    pub fn place(&self, obj: &mut Value, file: &str) -> Result<Option<Arc<str>>, String> {
        if let Some(f) = encrypted_identity(obj) {
            return Err(format!(
                "a SOPS document's {f} is encrypted: fleet must read apiVersion, kind, metadata.name and metadata.namespace in plaintext (encrypt only data and stringData, e.g. encrypted_regex: ^(data|stringData)$)"
            ));
        }
        let mac = obj
            .pointer("/sops/mac")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(src) = self.by_mac.get(mac) else {
            return Err(format!(
                "a SOPS document in {file} does not come from a file as written (was it generated or patched into being?); fleet passes SOPS documents only from files in the repo"
            ));
        };
        if src.documents != 1 {
            return Err(format!(
                "{} holds {} documents: fleet takes one SOPS document per file (its MAC covers the whole file)",
                src.path, src.documents
            ));
        }
        if obj.pointer(&format!("/sops/{SOURCE_KEY}")).is_some() {
            return Err(format!(
                "{}: sops.{SOURCE_KEY} is fleet's own field and cannot be written in the repo",
                src.path
            ));
        }
        if src.parsed == *obj {
            return Ok(Some(src.text.clone()));
        }
        if let Some(Value::Object(m)) = obj.get_mut("sops") {
            m.insert(SOURCE_KEY.into(), Value::String(src.text.to_string()));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_objects_are_found() {
        let v = json!({"kind": "Secret", "data": {"a": "ENC[AES256_GCM,x]"}});
        assert_eq!(sealed_at(&v).as_deref(), Some("/data/a"));
        let v = json!({"kind": "Secret", "sops": {"mac": "x"}});
        assert!(is_sops(&v));
        assert_eq!(sealed_at(&v).as_deref(), Some("/sops"));
        let v = json!({"kind": "Secret", "data": {"a": ["b", 1]}});
        assert_eq!(sealed_at(&v), None);
        let v = json!({"kind": "Secret", "metadata": {"name": "ENC[AES256_GCM,x]"}});
        assert_eq!(encrypted_identity(&v), Some("metadata.name"));
    }
}

//! `configMapGenerator` and `secretGenerator`: key/value sources, the
//! generated objects, and kustomize's content hash for name suffixes.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::kustomization::{GeneratorArgs, GeneratorOptions};
use super::resmap::{Behavior, Resource};

type R<T> = Result<T, String>;

/// Reads a file of the kustomization (already checked to stay in its root).
pub type Loader<'a> = dyn Fn(&str) -> R<Vec<u8>> + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    pub fn field(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configMapGenerator",
            Kind::Secret => "secretGenerator",
        }
    }
}

/// kustomize's `MergeGlobalOptionsIntoLocal`: local labels and annotations
/// win; either side can disable the hash or make the object immutable.
fn merge_options(
    local: Option<&GeneratorOptions>,
    global: Option<&GeneratorOptions>,
) -> Option<GeneratorOptions> {
    let Some(global) = global else {
        return local.cloned();
    };
    let mut out = local.cloned().unwrap_or_default();
    for (k, v) in &global.labels {
        out.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &global.annotations {
        out.annotations
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    out.disable_name_suffix_hash |= global.disable_name_suffix_hash;
    out.immutable |= global.immutable;
    Some(out)
}

fn parse_literal(s: &str) -> R<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => {
            let v = if v.len() >= 2
                && (v.starts_with('"') || v.starts_with('\''))
                && v.as_bytes()[0] == v.as_bytes()[v.len() - 1]
            {
                v[1..v.len() - 1].to_string()
            } else {
                v.to_string()
            };
            Ok((k.to_string(), v))
        }
        _ => Err(format!("invalid literal source {s}, expected key=value")),
    }
}

fn parse_file_source(s: &str) -> R<(String, String)> {
    let n = s.matches('=').count();
    if n == 0 {
        let base = s.rsplit('/').next().unwrap_or(s);
        return Ok((base.to_string(), s.to_string()));
    }
    if n > 1 {
        return Err(format!("source {s:?} key name or file path contains '='"));
    }
    let (k, p) = s.split_once('=').expect("one '='");
    if k.is_empty() {
        return Err(format!(
            "missing key name for file path {p:?} in source {s:?}"
        ));
    }
    if p.is_empty() {
        return Err(format!(
            "missing file path for key name {k:?} in source {s:?}"
        ));
    }
    Ok((k.to_string(), p.to_string()))
}

fn env_lines(path: &str, content: &[u8]) -> R<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut content = content;
    if content.starts_with(b"\xef\xbb\xbf") {
        content = &content[3..];
    }
    for (n, raw) in content.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw)
            .map_err(|_| format!("env file {path}: line {} has invalid utf8 bytes", n + 1))?;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(format!(
                "env file {path}: invalid key {k:?} on line {}",
                n + 1
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Kubernetes' `IsConfigMapKey`.
fn check_key(k: &str) -> R<()> {
    let ok = !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && k != "."
        && k != ".."
        && !k.starts_with("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid key {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
        ))
    }
}

/// Refuses a generator input SOPS encrypted: the hub holds no key, and a
/// Secret whose value is the ciphertext would be a wrong value applied
/// (Flux decrypts these before its build; fleet decrypts only on the spoke,
/// whole SOPS manifests).
fn not_sops(path: &str, bytes: &[u8]) -> R<()> {
    let has = |n: &[u8]| bytes.windows(n.len()).any(|w| w == n);
    if has(b"ENC[AES256_GCM,") && has(b"sops") {
        return Err(format!(
            "{path} is SOPS-encrypted: fleet does not decrypt generator inputs (the hub holds no key); keep this Secret in the repo as a SOPS-encrypted manifest, which the spoke decrypts"
        ));
    }
    Ok(())
}

/// Pairs in kustomize's order: env files, then literals, then files.
fn load_pairs(args: &GeneratorArgs, load: &Loader<'_>) -> R<Vec<(String, Vec<u8>)>> {
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    for p in &args.envs {
        let bytes = load(p)?;
        not_sops(p, &bytes)?;
        for (k, v) in env_lines(p, &bytes)? {
            pairs.push((k, v.into_bytes()));
        }
    }
    for l in &args.literals {
        let (k, v) = parse_literal(l)?;
        pairs.push((k, v.into_bytes()));
    }
    for f in &args.files {
        let (k, p) = parse_file_source(f)?;
        let bytes = load(&p)?;
        not_sops(&p, &bytes)?;
        pairs.push((k, bytes));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &pairs {
        check_key(k)?;
        if !seen.insert(k.clone()) {
            return Err(format!(
                "configmap {} illegally repeats the key `{k}`",
                args.name
            ));
        }
    }
    Ok(pairs)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// kyaml's `encodeBase64`: lines of 70 characters, each followed by a
/// newline once there is more than one line.
fn encode_base64(data: &[u8]) -> String {
    let enc = base64(data);
    if enc.len() < 70 {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + enc.len() / 70 + 1);
    for chunk in enc.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
    out
}

/// Builds one generated object (before merging with an existing one).
pub fn generate(
    kind: Kind,
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
    load: &Loader<'_>,
) -> R<Resource> {
    if args.name.is_empty() {
        return Err("a configmap must have a name".into());
    }
    // kustomize reads any other value as "unspecified", which acts as create.
    let behavior = match args.behavior.as_str() {
        "merge" => Behavior::Merge,
        "replace" => Behavior::Replace,
        _ => Behavior::Create,
    };
    let opts = merge_options(args.options.as_ref(), global);
    let pairs = load_pairs(args, load)?;

    let mut obj = Map::new();
    obj.insert("apiVersion".into(), "v1".into());
    let mut meta = Map::new();
    meta.insert("name".into(), args.name.clone().into());
    if !args.namespace.is_empty() {
        meta.insert("namespace".into(), args.namespace.clone().into());
    }
    let mut data = Map::new();
    let mut binary = Map::new();
    match kind {
        Kind::ConfigMap => {
            obj.insert("kind".into(), "ConfigMap".into());
            for (k, v) in pairs {
                match String::from_utf8(v) {
                    Ok(s) => {
                        data.insert(k, Value::String(s));
                    }
                    Err(e) => {
                        binary.insert(k, Value::String(encode_base64(e.as_bytes())));
                    }
                }
            }
        }
        Kind::Secret => {
            obj.insert("kind".into(), "Secret".into());
            let t = if args.type_.is_empty() {
                "Opaque"
            } else {
                &args.type_
            };
            obj.insert("type".into(), t.into());
            for (k, v) in pairs {
                data.insert(k, Value::String(encode_base64(&v)));
            }
        }
    }
    // kustomize writes `data` of a Secret even when it is empty (and so
    // hashes it), never an empty one of a ConfigMap.
    if !data.is_empty() || kind == Kind::Secret {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    if let Some(o) = &opts {
        if !o.labels.is_empty() {
            let m: Map<String, Value> = o
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            meta.insert("labels".into(), Value::Object(m));
        }
        if !o.annotations.is_empty() {
            let m: Map<String, Value> = o
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            meta.insert("annotations".into(), Value::Object(m));
        }
        if o.immutable {
            obj.insert("immutable".into(), Value::Bool(true));
        }
    }
    obj.insert("metadata".into(), Value::Object(meta));
    let mut res = Resource::new(obj);
    res.needs_hash = opts.as_ref().is_none_or(|o| !o.disable_name_suffix_hash);
    res.behavior = Some(behavior);
    Ok(res)
}

/// Go's `encoding/json` string encoding (HTML-safe, as `json.Marshal` does).
fn go_string(s: &str, out: &mut String) {
    crate::helm::json::write_string(out, s, true);
}

/// Go's `json.Marshal` of a decoded `interface{}`: maps with sorted keys.
fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => go_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(k, out);
                out.push(':');
                go_json(&m[k], out);
            }
            out.push('}');
        }
    }
}

/// The name suffix kustomize computes for a generated ConfigMap or Secret.
///
/// kustomize hashes `{"data":…,"kind":…,"name":…}` (plus `binaryData`,
/// `stringData` or `type` where present). Its lookup of `metadata/name`
/// never finds the name, so `name` is always `""`; absent fields hash as `""`.
pub fn hash(obj: &Map<String, Value>) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let field = |k: &str| -> Value {
        match obj.get(k) {
            None => Value::String(String::new()),
            Some(v) => v.clone(),
        }
    };
    let mut m = Map::new();
    m.insert("kind".into(), kind.into());
    m.insert("name".into(), "".into());
    m.insert("data".into(), field("data"));
    match kind {
        "ConfigMap" => {
            if let Some(b @ Value::Object(_)) = obj.get("binaryData") {
                m.insert("binaryData".into(), b.clone());
            }
        }
        "Secret" => {
            m.insert("type".into(), field("type"));
            if let Some(s @ Value::Object(_)) = obj.get("stringData") {
                m.insert("stringData".into(), s.clone());
            }
        }
        _ => {}
    }
    let mut enc = String::new();
    let encoded = if kind == "ConfigMap" || kind == "Secret" {
        go_json(&Value::Object(m), &mut enc);
        enc
    } else {
        go_json(&Value::Object(obj.clone()), &mut enc);
        enc
    };
    let hex = hex::encode(Sha256::digest(encoded.as_bytes()));
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn generated(kind: Kind, yaml: &str) -> Resource {
        let args: GeneratorArgs = crate::yaml::parse_one("k.yaml", yaml.as_bytes()).unwrap();
        generate(kind, &args, None, &|_| Err("no files".into())).unwrap()
    }

    #[test]
    fn a_secret_without_data_gets_an_empty_data_map() {
        // kubectl kustomize: `<name>-46f8b28mk5` and `data: {}` for an empty Opaque Secret.
        let s = generated(Kind::Secret, "name: s\n");
        assert_eq!(s.obj.get("data"), Some(&json!({})));
        assert_eq!(hash(&s.obj), "46f8b28mk5");
        // ...and none for a ConfigMap: `<name>-6ct58987ht`.
        let c = generated(Kind::ConfigMap, "name: c\n");
        assert_eq!(c.obj.get("data"), None);
        assert_eq!(hash(&c.obj), "6ct58987ht");
    }

    #[test]
    fn every_behavior_kustomize_accepts_is_accepted() {
        for (b, want) in [
            ("", Behavior::Create),
            ("create", Behavior::Create),
            ("Create", Behavior::Create),
            ("unspecified", Behavior::Create),
            ("bogus", Behavior::Create),
            ("merge", Behavior::Merge),
            ("replace", Behavior::Replace),
        ] {
            let r = generated(Kind::ConfigMap, &format!("name: c\nbehavior: {b:?}\n"));
            assert_eq!(r.behavior, Some(want), "{b:?}");
        }
    }

    #[test]
    fn sops_encrypted_inputs_are_refused_with_the_file_named() {
        let env = b"password=ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\nsops_mac=ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\n";
        for yaml in [
            "name: s\nenvs: [secret.env]\n",
            "name: s\nfiles: [secret.env]\n",
        ] {
            let args: GeneratorArgs = crate::yaml::parse_one("k.yaml", yaml.as_bytes()).unwrap();
            let e = generate(Kind::Secret, &args, None, &|_| Ok(env.to_vec())).unwrap_err();
            assert!(e.contains("secret.env is SOPS-encrypted"), "{e}");
        }
        // Text that only mentions sops is not refused.
        let args: GeneratorArgs =
            crate::yaml::parse_one("k.yaml", b"name: s\nfiles: [notes.txt]\n").unwrap();
        assert!(generate(Kind::Secret, &args, None, &|_| Ok(b"we use sops".to_vec())).is_ok());
    }

    #[test]
    fn hash_matches_kustomize() {
        // `kubectl kustomize` names a ConfigMap with literal x=1 `<name>-hmg6f82fh6`.
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}});
        assert_eq!(hash(obj.as_object().unwrap()), "hmg6f82fh6");
    }

    #[test]
    fn base64_wraps_like_kyaml() {
        assert_eq!(encode_base64(b"hello"), "aGVsbG8=");
        let long = encode_base64(&[b'a'; 60]);
        assert_eq!(long.lines().count(), 2);
        assert!(long.ends_with('\n'));
        assert_eq!(long.lines().next().unwrap().len(), 70);
    }

    #[test]
    fn literals_and_env_files() {
        assert_eq!(
            parse_literal("a='x=y'").unwrap(),
            ("a".into(), "x=y".into())
        );
        assert!(parse_literal("=x").is_err());
        let env = env_lines("e", b"\xef\xbb\xbf# c\nA=1\n  B= 2\nC\n").unwrap();
        assert_eq!(env[0], ("A".into(), "1".into()));
        assert_eq!(env[1], ("B".into(), " 2".into()));
        assert_eq!(env[2], ("C".into(), "".into()));
        assert!(env_lines("e", b"B C=2\n").is_err());
        assert_eq!(
            parse_file_source("dir/app.conf").unwrap(),
            ("app.conf".into(), "dir/app.conf".into())
        );
    }
}

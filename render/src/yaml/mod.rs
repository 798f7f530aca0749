//! YAML in and canonical YAML out. The only module that knows YAML syntax.
//!
//! Parsing ([`load`]) builds values from parser events under explicit
//! budgets, so an alias bomb or a pathological document fails with an error
//! instead of eating the hub's memory. Plain scalars resolve as the Go YAML
//! library the Kubernetes tool being mimicked uses ([`resolve`]): YAML 1.1
//! types as `sigs.k8s.io/yaml` reads them (kubectl, the API server), or
//! go-yaml v3 as kustomize's kyaml reads resources. Numbers are kept as JSON
//! carries them to the API server.
//!
//! Output is fleet's canonical form: block style, keys sorted, strings quoted
//! whenever a plain scalar could be read back as anything else, floats as Go
//! prints them. The same value always gives the same bytes.

mod load;
mod resolve;

use serde_json::Value;
use std::fmt::Write as _;

pub use load::{Doc, FieldComment, Seg};
pub use load::{MAX_ALIASES, MAX_ANCHORS, MAX_DEPTH, MAX_DOCUMENTS, MAX_NODES};
pub use resolve::{Scalar, Schema, go_format_float, resolve_plain, timestamp};

/// Largest YAML file the renderer accepts.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{file}: file is {size} bytes, larger than the {max} byte limit")]
    TooLarge {
        file: String,
        size: usize,
        max: usize,
    },
    #[error("{file}: not valid UTF-8")]
    NotUtf8 { file: String },
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
}

/// Parses every document of a YAML stream as Kubernetes (`sigs.k8s.io/yaml`)
/// reads it. Empty documents (`---` alone, comments only, `null`) are dropped.
pub fn parse_documents(file: &str, bytes: &[u8]) -> Result<Vec<Value>, YamlError> {
    parse_documents_as(Schema::Kubernetes, file, bytes)
}

/// [`parse_documents`] with the scalar resolution of `schema`.
pub fn parse_documents_as(
    schema: Schema,
    file: &str,
    bytes: &[u8],
) -> Result<Vec<Value>, YamlError> {
    let text = check_text(file, bytes)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(load_docs(schema, file, text)?
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect())
}

/// Every non-empty document as kustomize's kyaml reads resources, with the
/// paths of fields written with an empty value ([`Doc`]).
pub fn parse_kyaml(file: &str, bytes: &[u8]) -> Result<Vec<Doc>, YamlError> {
    let text = check_text(file, bytes)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(load_docs(Schema::Kyaml, file, text)?
        .into_iter()
        .filter(|d| !d.value.is_null())
        .collect())
}

fn check_text<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, YamlError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(YamlError::TooLarge {
            file: file.into(),
            size: bytes.len(),
            max: MAX_FILE_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| YamlError::NotUtf8 { file: file.into() })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

fn load_docs(schema: Schema, file: &str, text: &str) -> Result<Vec<Doc>, YamlError> {
    load::load(text, schema).map_err(|e| YamlError::Syntax {
        file: file.into(),
        reason: one_line(&e),
    })
}

/// The value of the plain scalar `text` under `schema` (`None` for a float
/// JSON cannot carry).
pub fn plain_value(schema: Schema, text: &str) -> Option<Value> {
    match resolve_plain(schema, text) {
        Scalar::Str => Some(Value::String(text.to_string())),
        other => plain_value_of(other),
    }
}

fn plain_value_of(s: Scalar) -> Option<Value> {
    Some(match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::Number(i.into()),
        Scalar::Uint(u) => Value::Number(u.into()),
        Scalar::Float(f) => resolve::float_value(f)?,
        Scalar::Timestamp(t) => Value::String(t),
        Scalar::Str => return None,
    })
}

/// Parses a file that must hold exactly one document (a config file), read
/// as Kubernetes reads YAML.
pub fn parse_one<T: serde::de::DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<T, YamlError> {
    let mut docs = parse_documents(file, bytes)?;
    let value = match docs.len() {
        0 => Value::Object(Default::default()),
        1 => docs.remove(0),
        n => {
            return Err(YamlError::Syntax {
                file: file.into(),
                reason: format!("expected one YAML document, found {n}"),
            });
        }
    };
    serde_json::from_value(value).map_err(|e| YamlError::Syntax {
        file: file.into(),
        reason: e.to_string(),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Canonical YAML of one value (one document, no `---`), ending in a newline.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => emit_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => emit_seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// Replaces the value of a top-level `key` in a block-style YAML document,
/// leaving every other line untouched (comments included); appends the key
/// when the document lacks it. The new value is written in canonical form.
pub fn replace_top_level_key(text: &str, key: &str, value: &Value) -> String {
    let mut block = String::new();
    block.push_str(&string_scalar(key));
    block.push(':');
    emit_value_after_key(&mut block, value, 0);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let is_key_line = |l: &str| {
        l.strip_prefix(key).is_some_and(|rest| {
            rest.starts_with(':') && (rest.len() == 1 || rest[1..].starts_with([' ', '\n', '\r']))
        })
    };
    let Some(start) = lines.iter().position(|l| is_key_line(l)) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
        return out;
    };
    // The value runs until the next line that starts a new top-level key (or
    // document marker); indented lines, list items at column 0 and comments belong to it.
    let mut end = start + 1;
    while end < lines.len() {
        let l = lines[end];
        let top_level = !l.starts_with([' ', '\t', '-', '#', '\n', '\r']);
        let doc_marker = l.starts_with("---") || l.starts_with("...");
        if top_level || doc_marker {
            break;
        }
        end += 1;
    }
    // Trailing blank lines and comments stay with what follows.
    while end > start + 1 && lines[end - 1].trim_start().starts_with('#')
        || end > start + 1 && lines[end - 1].trim().is_empty()
    {
        end -= 1;
    }
    let mut out: String = lines[..start].concat();
    out.push_str(&block);
    out.push_str(&lines[end..].concat());
    out
}

/// Canonical multi-document YAML: each document preceded by `---`.
pub fn to_canonical_stream<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for v in values {
        out.push_str("---\n");
        out.push_str(&to_canonical(v));
    }
    out
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn emit_map(out: &mut String, m: &serde_json::Map<String, Value>, ind: usize) {
    let mut first = true;
    for (k, v) in m {
        if !first {
            indent(out, ind);
        }
        first = false;
        let key = string_scalar(k);
        if key.chars().count() > MAX_IMPLICIT_KEY {
            // YAML caps implicit keys at 1024 characters: an explicit `? key`
            // (found by fuzzing: the text did not parse back).
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            indent(out, ind);
            out.push(':');
            match v {
                Value::Array(a) if !a.is_empty() => {
                    out.push('\n');
                    indent(out, ind + 2);
                    emit_seq(out, a, ind + 2);
                }
                _ => emit_value_after_key(out, v, ind),
            }
            continue;
        }
        out.push_str(&key);
        out.push(':');
        emit_value_after_key(out, v, ind);
    }
}

/// The longest key YAML reads in the implicit `key: value` form.
const MAX_IMPLICIT_KEY: usize = 1024;

fn emit_value_after_key(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            indent(out, ind + 2);
            emit_map(out, m, ind + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            // Sequences under a key sit at the key's indentation, as kubectl prints them.
            out.push('\n');
            indent(out, ind);
            emit_seq(out, a, ind);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn emit_seq(out: &mut String, a: &[Value], ind: usize) {
    let mut first = true;
    for v in a {
        if !first {
            indent(out, ind);
        }
        first = false;
        out.push('-');
        if is_block(v) {
            out.push(' ');
            match v {
                Value::Object(m) => emit_map(out, m, ind + 2),
                Value::Array(inner) => emit_seq(out, inner, ind + 2),
                _ => unreachable!("is_block checked"),
            }
        } else {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => go_format_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => string_scalar(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string as a plain scalar when that reads back as the same string, else double-quoted.
fn string_scalar(s: &str) -> String {
    if plain_is_safe(s) {
        s.to_string()
    } else {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        for c in s.chars() {
            match c {
                '"' => q.push_str("\\\""),
                '\\' => q.push_str("\\\\"),
                '\n' => q.push_str("\\n"),
                '\t' => q.push_str("\\t"),
                '\r' => q.push_str("\\r"),
                // YAML's non-printable characters (C0, DEL, C1, the line and
                // paragraph separators, BOM, non-characters) are escaped.
                c if (c as u32) < 0x20
                    || matches!(
                        c as u32,
                        0x7f..=0x9f | 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff
                    ) =>
                {
                    let _ = write!(q, "\\u{:04x}", c as u32);
                }
                c => q.push(c),
            }
        }
        q.push('"');
        q
    }
}

fn plain_is_safe(s: &str) -> bool {
    if s.is_empty() || s.len() > 1024 {
        return false;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_alphabetic() || first == b'/' || first == b'_') {
        return false;
    }
    if !s.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'/' | b'@' | b'+' | b'=' | b'(' | b')' | b',' | b'$' | b':'
            )
    }) {
        return false;
    }
    // `:` is plain only inside a word: never last (a space never follows it here).
    if s.ends_with(':') {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "true"
            | "false"
            | "null"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | "nan"
            | "inf"
            | "infinity"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(v: &Value) {
        let text = to_canonical(v);
        let back = parse_documents("t.yaml", text.as_bytes()).unwrap();
        assert_eq!(back.len(), 1, "{text}");
        assert_eq!(&back[0], v, "canonical text was:\n{text}");
    }

    #[test]
    fn keys_longer_than_an_implicit_key_use_the_explicit_form() {
        let long = "\\".repeat(1000);
        roundtrip(&json!({
            long.clone(): "v",
            "m": {long.clone(): {"a": 1}, "b": 2},
            "s": [{long.clone(): [1, {"x": long.clone()}], "t": []}],
            "e": {long.clone(): []},
        }));
    }

    #[test]
    fn canonical_form_reads_back_as_the_same_value() {
        roundtrip(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "x"}, "annotations": {}},
            "data": {
                "yes": "no", "n": "123", "f": "1.5", "e": "", "multi": "a\nb\n", "quote": "say \"hi\"",
                "colon": "a: b", "image": "ghcr.io/x/web:v1", "port": "host:8080", "trail": "a:", "hash": "a #b", "dash": "-", "lead": " x", "star": "*x", "amp": "&x",
                "tilde": "~", "null": "null", "version": "1.2.3", "unicode": "héllo", "tab": "a\tb",
                "c1": "a\u{96}b\u{85}c\u{2028}d\u{feff}", "\u{96}key": "found by fuzzing"
            },
            "list": [1, -2, 3.5, true, null, "x", [], {}, [1, [2, 3]], {"a": [1], "b": {"c": 1}}]
        }));
    }

    #[test]
    fn image_references_stay_plain() {
        let v = json!({"image": "ghcr.io/x/web:v1", "trail": "a:"});
        assert_eq!(to_canonical(&v), "image: ghcr.io/x/web:v1\ntrail: \"a:\"\n");
        roundtrip(&v);
    }

    #[test]
    fn canonical_form_is_stable_and_sorted() {
        let v = json!({"b": 1, "a": {"d": [ {"y": 1, "x": 2} ], "c": "v"}});
        assert_eq!(
            to_canonical(&v),
            "a:\n  c: v\n  d:\n  - x: 2\n    \"y\": 1\nb: 1\n"
        );
    }

    #[test]
    fn parses_multiple_documents_and_drops_empty_ones() {
        let docs =
            parse_documents("m.yaml", b"---\na: 1\n---\n# only a comment\n---\nb: 2\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn malformed_yaml_names_the_file() {
        let err = parse_documents("apps/web/base/bad.yaml", b"a: [1, 2\nb: }").unwrap_err();
        assert!(
            err.to_string().starts_with("apps/web/base/bad.yaml: "),
            "{err}"
        );
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let mut prev = 'a';
        for c in 'b'..='j' {
            let _ = writeln!(
                bomb,
                "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
            );
            prev = c;
        }
        let err = parse_documents("bomb.yaml", bomb.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("bomb.yaml"), "{err}");
    }

    #[test]
    fn yaml_1_1_scalars_as_kubernetes_reads_them() {
        let docs = parse_documents(
            "b.yaml",
            b"a: yes\nb: on\nc: true\nd: 0755\ne: 1e3\nf: 1.0\ng: n\nh: ~\ni: 2001-12-14\n",
        )
        .unwrap();
        assert_eq!(
            docs[0],
            json!({"a": true, "b": true, "c": true, "d": 493, "e": 1000, "f": 1, "g": false, "h": null, "i": "2001-12-14"})
        );
    }

    #[test]
    fn kyaml_scalars_as_kustomize_reads_resources() {
        let docs = parse_documents_as(
            Schema::Kyaml,
            "b.yaml",
            b"metadata:\n  annotations:\n    mode: 0755\nspec:\n  a: yes\n  b: on\n  d: 0755\n  e: 1e3\n  f: 1.0\n  i: 2001-12-14\n",
        )
        .unwrap();
        assert_eq!(
            docs[0],
            json!({
                "metadata": {"annotations": {"mode": "0755"}},
                "spec": {"a": "yes", "b": "on", "d": 493, "e": 1000, "f": 1, "i": "2001-12-14T00:00:00Z"}
            })
        );
    }

    #[test]
    fn keys_follow_each_library() {
        let k8s = parse_documents("k.yaml", b"yes: a\n0755: b\n1.5: c\n").unwrap();
        assert_eq!(k8s[0], json!({"true": "a", "493": "b", "1.5": "c"}));
        let err = parse_documents("k.yaml", b"~: a\n").unwrap_err();
        assert!(err.to_string().contains("null"), "{err}");
        // kyaml keeps string-looking keys as written and refuses others below the root.
        let ky =
            parse_documents_as(Schema::Kyaml, "k.yaml", b"data:\n  yes: a\n  on: b\n").unwrap();
        assert_eq!(ky[0], json!({"data": {"yes": "a", "on": "b"}}));
        let err = parse_documents_as(Schema::Kyaml, "k.yaml", b"data:\n  1: a\n").unwrap_err();
        assert!(err.to_string().contains("not a string"), "{err}");
    }

    #[test]
    fn duplicate_keys_follow_each_library() {
        let k8s = parse_documents("d.yaml", b"a: 1\na: 2\n").unwrap();
        assert_eq!(k8s[0], json!({"a": 2}));
        let err = parse_documents_as(Schema::Kyaml, "d.yaml", b"a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("already defined"), "{err}");
    }

    #[test]
    fn merge_keys_follow_each_library() {
        let text = b"base: &b {x: 1, w: 2}\nm:\n  w: 3\n  <<: *b\n  z: 4\n";
        // go-yaml v3: explicit keys win wherever they are.
        let ky = parse_documents_as(Schema::Kyaml, "m.yaml", text).unwrap();
        assert_eq!(ky[0]["m"], json!({"x": 1, "w": 3, "z": 4}));
        // go-yaml v2 merges in place: `<<` replaces the keys before it.
        let k8s = parse_documents("m.yaml", text).unwrap();
        assert_eq!(k8s[0]["m"], json!({"x": 1, "w": 2, "z": 4}));
    }

    #[test]
    fn not_a_json_number_is_refused_with_the_file() {
        let err = parse_documents("apps/web/x.yaml", b"a: .inf\n").unwrap_err();
        assert!(
            err.to_string().starts_with("apps/web/x.yaml: line 1"),
            "{err}"
        );
    }

    #[test]
    fn block_scalar_at_end_of_file_without_newline_gains_none() {
        for (text, want) in [
            ("a: |\n  x\n  y", "x\ny"),
            ("a: |\n  x\n  y\n", "x\ny\n"),
            ("a: >\n  x\n  y", "x y"),
            ("a: |+\n  x", "x"),
            ("a: |-\n  x\n", "x"),
            ("a: |\n  x\nb: 1", "x\n"),
            ("a: |\r\n  x\r\n  y", "x\ny"),
        ] {
            for schema in [Schema::Kubernetes, Schema::Kyaml] {
                let docs = parse_documents_as(schema, "b.yaml", text.as_bytes()).unwrap();
                assert_eq!(docs[0]["a"], json!(want), "{text:?}");
            }
        }
    }

    #[test]
    fn long_comment_blocks_parse() {
        // A parser budget refused more than 32 consecutive comment lines.
        let mut text = String::new();
        for i in 0..500 {
            let _ = writeln!(text, "# comment {i}");
        }
        text.push_str("a:\n");
        for i in 0..200 {
            let _ = writeln!(text, "  # comment {i}");
        }
        text.push_str("- 1\n");
        for i in 0..200 {
            let _ = writeln!(text, "  # comment {i}");
        }
        text.push_str("- 2\n");
        let docs = parse_documents("c.yaml", text.as_bytes()).unwrap();
        assert_eq!(docs[0], json!({"a": [1, 2]}));
    }

    #[test]
    fn depth_budget_holds() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let err = parse_documents("deep.yaml", deep.as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("deep.yaml: "), "{err}");
        let ok = "[".repeat(MAX_DEPTH - 1) + &"]".repeat(MAX_DEPTH - 1);
        parse_documents("deep.yaml", ok.as_bytes()).unwrap();
    }

    #[test]
    fn size_and_alias_budgets_hold() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        assert!(matches!(
            parse_documents("big.yaml", &big),
            Err(YamlError::TooLarge { .. })
        ));
        let mut many = String::from("a: &a x\nl:\n");
        for _ in 0..=MAX_ALIASES {
            many.push_str("- *a\n");
        }
        let err = parse_documents("aliases.yaml", many.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("aliases"), "{err}");
        let mut anchors = String::new();
        for i in 0..=MAX_ANCHORS {
            let _ = writeln!(anchors, "k{i}: &a{i} v");
        }
        let err = parse_documents("anchors.yaml", anchors.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("anchors"), "{err}");
    }

    #[test]
    fn floats_print_as_go_and_read_back() {
        let v = json!({"a": 1.5, "b": 1e20, "c": 1e-7, "d": 1_234_567.5});
        let text = to_canonical(&v);
        assert_eq!(text, "a: 1.5\nb: 1e+20\nc: 1e-07\nd: 1.2345675e+06\n");
        roundtrip(&v);
    }
}

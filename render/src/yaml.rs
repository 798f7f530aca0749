//! YAML in and canonical YAML out. The only module that knows YAML syntax.
//!
//! Parsing uses serde-saphyr with explicit budgets, so an alias bomb or a
//! pathological document fails with an error instead of eating the hub's
//! memory. Output is fleet's canonical form: block style, keys sorted,
//! strings quoted whenever a plain scalar could be read back as anything else.
//! The same value always gives the same bytes.

use serde_json::Value;
use std::fmt::Write as _;

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

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    // Bound aliases and anchors hard: Kubernetes manifests rarely use them, and an
    // alias bomb ("billion laughs") expands exponentially otherwise.
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_events = 2_000_000;
    budget.max_nodes = 500_000;
    budget.max_depth = 100;
    budget.max_documents = 10_000;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_recorded_anchor_bytes = 4 * 1024 * 1024;
    budget.max_total_scalar_bytes = 64 * 1024 * 1024;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.alias_limits.max_total_replayed_events = 100_000;
    opts.alias_limits.max_alias_expansions_per_anchor = 1_000;
    // Kubernetes tooling reads YAML 1.2 style: only true/false are booleans.
    opts.strict_booleans = true;
    opts.with_snippet = false;
    opts
}

/// Parses every document of a YAML stream. Empty documents (`---` alone,
/// comments only, `null`) are dropped.
pub fn parse_documents(file: &str, bytes: &[u8]) -> Result<Vec<Value>, YamlError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(YamlError::TooLarge {
            file: file.into(),
            size: bytes.len(),
            max: MAX_FILE_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| YamlError::NotUtf8 { file: file.into() })?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let docs: Vec<Option<Value>> = serde_saphyr::from_multiple_with_options(text, options())
        .map_err(|e| YamlError::Syntax {
            file: file.into(),
            reason: one_line(&e.to_string()),
        })?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|v| !v.is_null())
        .collect())
}

/// Parses a file that must hold exactly one document (a config file).
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
        out.push_str(&string_scalar(k));
        out.push(':');
        emit_value_after_key(out, v, ind);
    }
}

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
        Value::Number(n) => n.to_string(),
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
                c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{feff}' => {
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
    fn canonical_form_reads_back_as_the_same_value() {
        roundtrip(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "x"}, "annotations": {}},
            "data": {
                "yes": "no", "n": "123", "f": "1.5", "e": "", "multi": "a\nb\n", "quote": "say \"hi\"",
                "colon": "a: b", "image": "ghcr.io/x/web:v1", "port": "host:8080", "trail": "a:", "hash": "a #b", "dash": "-", "lead": " x", "star": "*x", "amp": "&x",
                "tilde": "~", "null": "null", "version": "1.2.3", "unicode": "héllo", "tab": "a\tb"
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
    fn yaml_1_1_booleans_stay_strings() {
        let docs = parse_documents("b.yaml", b"a: yes\nb: on\nc: true\n").unwrap();
        assert_eq!(docs[0], json!({"a": "yes", "b": "on", "c": true}));
    }
}

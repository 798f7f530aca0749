//! Go's `encoding/json` on template values: what Helm's `toJson` and
//! Sprig's `toPrettyJson`/`toRawJson` print (keys sorted, `<>&` escaped
//! unless raw, floats as Go formats them), and `fromJson`'s reading.

use std::collections::BTreeMap;

use super::template::Value;

/// How to write: Go's `json.Marshal` (`escape_html`), `MarshalIndent` with
/// two spaces (`pretty`), or an encoder with `SetEscapeHTML(false)`.
#[derive(Clone, Copy)]
pub struct Style {
    pub escape_html: bool,
    pub pretty: bool,
}

/// `json.Marshal(v)`; `Err` carries Go's message (NaN and infinities have no JSON).
pub fn marshal(v: &Value, style: Style) -> Result<String, String> {
    let mut out = String::new();
    write(&mut out, v, style, 0)?;
    Ok(out)
}

fn write(out: &mut String, v: &Value, style: Style, depth: usize) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(format!(
                    "json: unsupported value: {}",
                    super::template::sprint(&[Value::Float(*f)])
                ));
            }
            out.push_str(&go_json_float(*f));
        }
        Value::String(s) => write_string(out, s, style.escape_html),
        Value::List(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write(out, e, style, depth + 1)?;
            }
            newline(out, style, depth);
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            if m.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write_string(out, k, style.escape_html);
                out.push(':');
                if style.pretty {
                    out.push(' ');
                }
                write(out, e, style, depth + 1)?;
            }
            newline(out, style, depth);
            out.push('}');
        }
        // fleet's built-in objects have no JSON form; Go would write their
        // exported fields. Charts do not marshal them.
        Value::Object(_) => out.push_str("{}"),
    }
    Ok(())
}

fn newline(out: &mut String, style: Style, depth: usize) {
    if style.pretty {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
}

/// A string as `encoding/json` writes it; `escape_html` as `json.Marshal`
/// (`<`, `>`, `&` as `\u003c`...), off as `SetEscapeHTML(false)`.
pub(crate) fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as `encoding/json` writes it: shortest digits, plain notation
/// from 1e-6 up to 1e21, `1e+21`/`1e-7` beyond.
pub fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is shortest-digits too: `1e21`, `1.5e-7`.
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits}");
    }
    if f == 0.0 && f.is_sign_negative() {
        return "-0".into();
    }
    format!("{f}")
}

/// `json.Unmarshal` into `interface{}`: numbers become `float64`.
pub fn unmarshal(text: &str) -> Result<Value, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| go_json_error(text, &e))?;
    Ok(Value::from_json(&v))
}

/// Go's message for invalid JSON: `encoding/json`'s scanner, walked to
/// the first character it refuses, names the character and what it was
/// looking for.
fn go_json_error(text: &str, _e: &serde_json::Error) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Ctx {
        Obj,
        Arr,
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Want {
        Value,
        ValueOrEnd,
        KeyOrEnd,
        Key,
        Colon,
        CommaOrEnd,
        Done,
    }
    let bad = |c: char, ctx: &str| format!("invalid character {} {ctx}", go_quote_char(c));
    let mut stack: Vec<Ctx> = Vec::new();
    let mut want = Want::Value;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            i += 1;
            continue;
        }
        match want {
            Want::Value | Want::ValueOrEnd => {
                if want == Want::ValueOrEnd && c == ']' {
                    stack.pop();
                    want = if stack.is_empty() {
                        Want::Done
                    } else {
                        Want::CommaOrEnd
                    };
                    i += 1;
                    continue;
                }
                match c {
                    '{' => {
                        stack.push(Ctx::Obj);
                        want = Want::KeyOrEnd;
                        i += 1;
                    }
                    '[' => {
                        stack.push(Ctx::Arr);
                        want = Want::ValueOrEnd;
                        i += 1;
                    }
                    '"' => {
                        i = skip_string(&chars, i);
                        want = if stack.is_empty() {
                            Want::Done
                        } else {
                            Want::CommaOrEnd
                        };
                    }
                    c if c == '-' || c.is_ascii_digit() || c.is_ascii_alphabetic() => {
                        let start = i;
                        while i < chars.len()
                            && (chars[i].is_ascii_alphanumeric()
                                || matches!(chars[i], '.' | '+' | '-'))
                        {
                            i += 1;
                        }
                        let word: String = chars[start..i].iter().collect();
                        for lit in ["true", "false", "null"] {
                            if lit.starts_with(&word[..1]) && word != lit {
                                let k = word
                                    .chars()
                                    .zip(lit.chars())
                                    .take_while(|(a, b)| a == b)
                                    .count();
                                let got = word.chars().nth(k).unwrap_or(' ');
                                let expect = lit.chars().nth(k).unwrap_or(' ');
                                return bad(
                                    got,
                                    &format!(
                                        "in literal {lit} (expecting {})",
                                        go_quote_char(expect)
                                    ),
                                );
                            }
                        }
                        if c != '-'
                            && !c.is_ascii_digit()
                            && !["true", "false", "null"].contains(&word.as_str())
                        {
                            return bad(c, "looking for beginning of value");
                        }
                        want = if stack.is_empty() {
                            Want::Done
                        } else {
                            Want::CommaOrEnd
                        };
                    }
                    c => return bad(c, "looking for beginning of value"),
                }
            }
            Want::KeyOrEnd | Want::Key => {
                if want == Want::KeyOrEnd && c == '}' {
                    stack.pop();
                    want = if stack.is_empty() {
                        Want::Done
                    } else {
                        Want::CommaOrEnd
                    };
                    i += 1;
                } else if c == '"' {
                    i = skip_string(&chars, i);
                    want = Want::Colon;
                } else {
                    return bad(c, "looking for beginning of object key string");
                }
            }
            Want::Colon => {
                if c != ':' {
                    return bad(c, "after object key");
                }
                want = Want::Value;
                i += 1;
            }
            Want::CommaOrEnd => {
                let top = stack.last().copied();
                match (top, c) {
                    (Some(Ctx::Obj), ',') => want = Want::Key,
                    (Some(Ctx::Arr), ',') => want = Want::Value,
                    (Some(Ctx::Obj), '}') | (Some(Ctx::Arr), ']') => {
                        stack.pop();
                        want = if stack.is_empty() {
                            Want::Done
                        } else {
                            Want::CommaOrEnd
                        };
                    }
                    (Some(Ctx::Obj), c) => return bad(c, "after object key:value pair"),
                    (_, c) => return bad(c, "after array element"),
                }
                i += 1;
            }
            Want::Done => return bad(c, "after top-level value"),
        }
    }
    "unexpected end of JSON input".into()
}

fn skip_string(chars: &[char], mut i: usize) -> usize {
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn go_quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c => format!("'{c}'"),
    }
}

/// A map value from entries.
pub fn object(entries: BTreeMap<String, Value>) -> Value {
    Value::map(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_writes_them() {
        assert_eq!(go_json_float(1.0), "1");
        assert_eq!(go_json_float(1.5), "1.5");
        assert_eq!(go_json_float(1e6), "1000000");
        assert_eq!(go_json_float(1e21), "1e+21");
        assert_eq!(go_json_float(1.5e-7), "1.5e-7");
        assert_eq!(go_json_float(0.000001), "0.000001");
        assert_eq!(go_json_float(12345678901.0), "12345678901");
    }

    #[test]
    fn html_is_escaped_unless_raw() {
        let v = Value::from("<a&b>");
        let m = marshal(
            &v,
            Style {
                escape_html: true,
                pretty: false,
            },
        )
        .unwrap();
        assert_eq!(m, "\"\\u003ca\\u0026b\\u003e\"");
        let r = marshal(
            &v,
            Style {
                escape_html: false,
                pretty: false,
            },
        )
        .unwrap();
        assert_eq!(r, "\"<a&b>\"");
    }
}

//! Helm's `toToml`: BurntSushi/toml's encoder on template values (keys
//! sorted, plain values before tables, sub-tables indented two spaces a
//! level, lists of maps as `[[arrays of tables]]`, floats always with a
//! decimal point). Its errors come back as the text, as Helm gives them.

use super::template::Value;

struct Enc {
    out: String,
}

fn is_table_array(l: &[Value]) -> Result<bool, String> {
    if l.is_empty() {
        return Ok(false);
    }
    let mut all = true;
    for v in l {
        match v {
            Value::Nil => return Err("toml: cannot encode array with nil element".into()),
            Value::Map(_) => {}
            _ => all = false,
        }
    }
    Ok(all)
}

fn is_table(v: &Value) -> Result<bool, String> {
    Ok(match v {
        Value::Map(_) => true,
        Value::List(l) => is_table_array(l)?,
        _ => false,
    })
}

fn bare(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|r| r.is_ascii_alphanumeric() || r == '_' || r == '-')
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn key_part(k: &str) -> String {
    if k.is_empty() {
        "\"\"".into()
    } else if bare(k) {
        k.to_string()
    } else {
        quoted(k)
    }
}

fn key_string(key: &[String]) -> String {
    key.iter()
        .map(|k| key_part(k))
        .collect::<Vec<_>>()
        .join(".")
}

impl Enc {
    fn newline(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn indent(key: &[String]) -> String {
        "  ".repeat(key.len().saturating_sub(1))
    }

    fn encode(&mut self, key: &[String], v: &Value) -> Result<(), String> {
        match v {
            Value::Nil => Ok(()),
            Value::Map(_) => self.table(key, v),
            Value::List(l) if is_table_array(l)? => {
                if key.is_empty() {
                    return Err("toml: top-level values must be Go maps or structs".into());
                }
                for item in l.iter() {
                    self.newline();
                    self.out
                        .push_str(&format!("{}[[{}]]", Self::indent(key), key_string(key)));
                    self.newline();
                    self.map(key, item, false)?;
                }
                Ok(())
            }
            _ => self.key_value(key, v),
        }
    }

    fn key_value(&mut self, key: &[String], v: &Value) -> Result<(), String> {
        if key.is_empty() {
            return self.element(v);
        }
        self.out.push_str(&format!(
            "{}{} = ",
            Self::indent(key),
            key_part(&key[key.len() - 1])
        ));
        self.element(v)?;
        self.newline();
        Ok(())
    }

    fn table(&mut self, key: &[String], v: &Value) -> Result<(), String> {
        if key.len() == 1 {
            self.newline();
        }
        if !key.is_empty() {
            self.out
                .push_str(&format!("{}[{}]", Self::indent(key), key_string(key)));
            self.newline();
        }
        self.map(key, v, false)
    }

    fn map(&mut self, key: &[String], v: &Value, inline: bool) -> Result<(), String> {
        let Value::Map(m) = v else {
            return Ok(());
        };
        let entries: Vec<(String, Value)> = m
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut direct = Vec::new();
        let mut sub = Vec::new();
        for (k, v) in entries {
            if is_table(&v)? {
                sub.push((k, v));
            } else {
                direct.push((k, v));
            }
        }
        if inline {
            self.out.push('{');
        }
        let has_sub = !sub.is_empty();
        for (group, trail) in [(direct, has_sub), (sub, false)] {
            let n = group.len();
            for (i, (k, v)) in group.into_iter().enumerate() {
                if matches!(v, Value::Nil) {
                    continue;
                }
                if inline {
                    self.out.push_str(&format!("{} = ", key_part(&k)));
                    self.element(&v)?;
                    if trail || i != n - 1 {
                        self.out.push_str(", ");
                    }
                } else {
                    let mut next = key.to_vec();
                    next.push(k);
                    self.encode(&next, &v)?;
                }
            }
        }
        if inline {
            self.out.push('}');
        }
        Ok(())
    }

    fn element(&mut self, v: &Value) -> Result<(), String> {
        match v {
            Value::String(s) => self.out.push_str(&quoted(s)),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => self.out.push_str(&i.to_string()),
            Value::Float(f) => {
                let s = if f.is_nan() {
                    format!("{}nan", if f.is_sign_negative() { "-" } else { "" })
                } else if f.is_infinite() {
                    format!("{}inf", if *f < 0.0 { "-" } else { "" })
                } else {
                    let t = format!("{f}");
                    if t.contains('.') { t } else { format!("{t}.0") }
                };
                self.out.push_str(&s);
            }
            Value::List(l) => {
                self.out.push('[');
                for (i, e) in l.iter().enumerate() {
                    self.element(e)?;
                    if i != l.len() - 1 {
                        self.out.push_str(", ");
                    }
                }
                self.out.push(']');
            }
            Value::Map(_) => self.map(&[], v, true)?,
            Value::Nil => return Err("toml: cannot encode a nil value".into()),
            Value::Object(o) => return Err(format!("toml: unsupported type: {}", o.type_name())),
        }
        Ok(())
    }
}

/// `toToml v`: the document, or the encoder's error text.
pub fn to_toml(v: &Value) -> String {
    let mut e = Enc { out: String::new() };
    match e.encode(&[], v) {
        Ok(()) => e.out,
        Err(m) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_after_values_indented_floats_with_a_point() {
        let v = Value::from_json(
            &serde_json::json!({"name": "top", "server": {"port": 80, "hosts": ["a", "b"]}}),
        );
        assert_eq!(
            to_toml(&v),
            "name = \"top\"\n\n[server]\n  hosts = [\"a\", \"b\"]\n  port = 80.0\n"
        );
        let v = Value::from_json(&serde_json::json!({"items": [{"a": 1}, {"a": 2}], "k y": true}));
        assert_eq!(
            to_toml(&v),
            "\"k y\" = true\n\n[[items]]\n  a = 1.0\n\n[[items]]\n  a = 2.0\n"
        );
    }
}

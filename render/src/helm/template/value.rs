//! The values templates see: what Helm's values decode to in Go
//! (`map[string]interface{}` from JSON), plus the `int` literals and results
//! of template builtins.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A Go `map[string]interface{}`: shared and mutable, as Go maps are
/// references (Sprig's `set` and `merge` change the map every holder sees).
pub type Map = Rc<RefCell<BTreeMap<String, Value>>>;

/// A template value. Lists and maps are shared, so copying a value is cheap.
#[derive(Debug, Clone)]
pub enum Value {
    /// Go's nil (a `null` in YAML).
    Nil,
    Bool(bool),
    /// Go's `int`: number literals in templates, `len`, range indexes.
    Int(i64),
    /// Go's `float64`: every number in Helm's values (JSON numbers).
    Float(f64),
    String(Rc<str>),
    List(Rc<Vec<Value>>),
    /// `map[string]interface{}`; Go prints and ranges maps in key order.
    Map(Map),
    /// A Go struct (pointer) with fields and methods, as Helm's built-in
    /// objects are (`.Capabilities`, `.Chart`, `.Files`).
    Object(Rc<dyn Object>),
}

/// A Go struct pointer seen by templates: exported fields and methods.
pub trait Object: std::fmt::Debug {
    /// The Go type, as error messages name it (`*chartutil.Capabilities`).
    fn type_name(&self) -> &str;
    /// An exported field.
    fn field(&self, name: &str) -> Option<Value>;
    /// A method, with its Go signature; the receiver is bound already.
    fn method(&self, _name: &str) -> Option<super::Func> {
        None
    }
    /// What `fmt` prints for the struct it points to (`{a b}`): an action
    /// prints that, `print` and `printf` put `&` before it.
    fn print(&self) -> String;
    /// Whether the Go value is a pointer (`fmt` prints `&{...}`), not a
    /// struct, slice or map value.
    fn is_pointer(&self) -> bool {
        true
    }
    /// `String()`, when the value as held has it: `fmt`'s `%v`, `%s` and
    /// `%q` print that.
    fn stringer(&self) -> Option<String> {
        None
    }
    /// What an action (`{{ x }}`) prints: text/template takes the address
    /// of a value whose pointer has `String()`.
    fn action_print(&self) -> String {
        self.stringer().unwrap_or_else(|| self.print())
    }
    /// For a Go `[]byte`: its bytes (`%s` and `string(...)` print them as text).
    fn bytes(&self) -> Option<&[u8]> {
        None
    }
    /// For a Go slice type with methods (Helm's `VersionSet`): its items.
    fn as_list(&self) -> Option<Value> {
        None
    }
    /// For a Go map type with methods (Helm's `.Files`): its entries.
    fn as_map(&self) -> Option<Value> {
        None
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => Rc::ptr_eq(a, b) || *a.borrow() == *b.borrow(),
            (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Value {
    pub fn string(s: impl Into<Rc<str>>) -> Value {
        Value::String(s.into())
    }

    /// A new map value holding `m`.
    pub fn map(m: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(m)))
    }

    /// A new list value.
    pub fn list(l: Vec<Value>) -> Value {
        Value::List(Rc::new(l))
    }

    /// The value Helm's templates get for a JSON (or YAML read as JSON)
    /// value: numbers become `float64`, as `encoding/json` decodes them into
    /// `interface{}`.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::string(s.as_str()),
            serde_json::Value::Array(a) => {
                Value::List(Rc::new(a.iter().map(Value::from_json).collect()))
            }
            serde_json::Value::Object(m) => Value::map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The Go type name, as error messages print it.
    pub fn type_name(&self) -> &str {
        match self {
            Value::Object(o) => o.type_name(),
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    /// Go's template truth: false, 0, nil, and empty strings, lists and maps
    /// are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
            Value::Object(_) => true,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::string(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::string(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

/// Go strings are bytes; Rust's are UTF-8. Bytes that are not UTF-8 (a
/// binary file read with `.Files.Get`) are carried as characters of the
/// last private-use plane, U+10FF00 + byte, and turned back into the
/// same bytes by [`go_string_bytes`] wherever Go would see the bytes
/// (`b64enc`, `sha256sum`...).
pub fn go_string_from_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for &x in &bad[..n] {
                    out.push(char::from_u32(0x10FF00 + u32::from(x)).unwrap_or('\u{fffd}'));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

/// The bytes a string stands for (see [`go_string_from_bytes`]).
pub fn go_string_bytes(s: &str) -> std::borrow::Cow<'_, [u8]> {
    if !s
        .chars()
        .any(|c| ('\u{10FF00}'..='\u{10FFFF}').contains(&c))
    {
        return std::borrow::Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if ('\u{10FF00}'..='\u{10FFFF}').contains(&c) {
            out.push((c as u32 - 0x10FF00) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    std::borrow::Cow::Owned(out)
}

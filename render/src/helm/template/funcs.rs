//! Go's template builtins (`text/template/funcs.go`), with Go's errors.

use super::Param;
use super::exec::{Rv, truth};
use super::fmt::{sprint, sprintf, sprintln};
use super::value::Value;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Builtin {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Print,
    Printf,
    Println,
    Html,
    Js,
    Urlquery,
    Call,
}

impl Builtin {
    pub fn by_name(name: &str) -> Option<Builtin> {
        Some(match name {
            "and" => Builtin::And,
            "or" => Builtin::Or,
            "not" => Builtin::Not,
            "len" => Builtin::Len,
            "index" => Builtin::Index,
            "slice" => Builtin::Slice,
            "eq" => Builtin::Eq,
            "ne" => Builtin::Ne,
            "lt" => Builtin::Lt,
            "le" => Builtin::Le,
            "gt" => Builtin::Gt,
            "ge" => Builtin::Ge,
            "print" => Builtin::Print,
            "printf" => Builtin::Printf,
            "println" => Builtin::Println,
            "html" => Builtin::Html,
            "js" => Builtin::Js,
            "urlquery" => Builtin::Urlquery,
            "call" => Builtin::Call,
            _ => return None,
        })
    }

    /// The Go signature: fixed parameters and the variadic one.
    pub fn signature(self) -> (Vec<Param>, Option<Param>) {
        use Param::{Any, Reflect, String};
        match self {
            Builtin::And
            | Builtin::Or
            | Builtin::Index
            | Builtin::Slice
            | Builtin::Eq
            | Builtin::Call => (vec![Reflect], Some(Reflect)),
            Builtin::Not | Builtin::Len => (vec![Reflect], None),
            Builtin::Ne | Builtin::Lt | Builtin::Le | Builtin::Gt | Builtin::Ge => {
                (vec![Reflect, Reflect], None)
            }
            Builtin::Print | Builtin::Println | Builtin::Html | Builtin::Js | Builtin::Urlquery => {
                (vec![], Some(Any))
            }
            Builtin::Printf => (vec![String], Some(Any)),
        }
    }
}

pub(super) fn builtin(b: Builtin, args: &[Rv]) -> Result<Rv, String> {
    let values = || args.iter().map(Rv::to_value).collect::<Vec<_>>();
    let s = |s: String| Ok(Rv::concrete(Value::string(s)));
    let bool = |b: bool| Ok(Rv::concrete(Value::Bool(b)));
    match b {
        Builtin::Not => bool(!truth(&args[0])),
        Builtin::Len => len(&args[0]),
        Builtin::Index => index(&args[0], &args[1..]),
        Builtin::Slice => slice(&args[0], &args[1..]),
        Builtin::Eq => eq(&args[0], &args[1..]).map(|b| Rv::concrete(Value::Bool(b))),
        Builtin::Ne => bool(!eq(&args[0], &args[1..2])?),
        Builtin::Lt => bool(lt(&args[0], &args[1])?),
        Builtin::Le => bool(le(&args[0], &args[1])?),
        Builtin::Gt => bool(!le(&args[0], &args[1])?),
        Builtin::Ge => bool(!lt(&args[0], &args[1])?),
        Builtin::Print => s(sprint(&values())),
        Builtin::Println => s(sprintln(&values())),
        Builtin::Printf => {
            let v = values();
            let format = match &v[0] {
                Value::String(f) => f.to_string(),
                _ => String::new(),
            };
            s(sprintf(&format, &v[1..]))
        }
        Builtin::Html => s(html_escape(&eval_args(args))),
        Builtin::Js => s(js_escape(&eval_args(args))),
        Builtin::Urlquery => s(query_escape(&eval_args(args))),
        // Handled by the executor, which knows the callee's name.
        Builtin::And | Builtin::Or | Builtin::Call => Ok(Rv::Invalid),
    }
}

/// Go's `call`: template values never hold functions, so it always fails.
pub(super) fn call(name: &str, args: &[Rv]) -> Result<Rv, String> {
    match args[0].indirect() {
        Rv::Invalid => Err("call of nil".into()),
        v => Err(format!("non-function {name} of type {}", v.type_name())),
    }
}

/// Go's `indirect`: the value behind an interface, and whether it was nil.
fn indirect(v: &Rv) -> (Rv, bool) {
    match v {
        Rv::Val(Value::Nil, true) => (v.clone(), true),
        Rv::Val(x, true) => (Rv::concrete(x.clone()), false),
        _ => (v.clone(), false),
    }
}

fn len(item: &Rv) -> Result<Rv, String> {
    let (item, is_nil) = indirect(&item.clone().collection());
    if is_nil {
        return Err("len of nil pointer".into());
    }
    let n = match &item {
        Rv::Invalid => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        Rv::Val(Value::String(s), _) => s.len(),
        Rv::Val(Value::List(l), _) => l.len(),
        Rv::Val(Value::Map(m), _) => m.borrow().len(),
        v => return Err(format!("len of type {}", v.type_name())),
    };
    Ok(Rv::concrete(Value::Int(n as i64)))
}

fn index_arg(index: &Rv, cap: usize) -> Result<usize, String> {
    let x = match index {
        Rv::Val(Value::Int(i), _) => *i,
        Rv::Invalid => return Err("cannot index slice/array with nil".into()),
        v => {
            return Err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            ));
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(item: &Rv, indexes: &[Rv]) -> Result<Rv, String> {
    let mut item = item.indirect().collection();
    if let Rv::Invalid = item {
        return Err("index of untyped nil".into());
    }
    for index in indexes {
        let index = index.indirect();
        let (it, is_nil) = indirect(&item);
        if is_nil {
            return Err("index of nil pointer".into());
        }
        item = match &it {
            Rv::Val(Value::List(l), _) => {
                let x = index_arg(&index, l.len())?;
                if x == l.len() {
                    // Go 1.27 lets index == len through to reflect, which panics.
                    return Err("reflect: slice index out of range".into());
                }
                Rv::Val(l[x].clone(), true)
            }
            Rv::Val(Value::String(s), _) => {
                let x = index_arg(&index, s.len())?;
                if x == s.len() {
                    return Err("reflect: string index out of range".into());
                }
                Rv::concrete(Value::Int(i64::from(s.as_bytes()[x])))
            }
            Rv::Val(Value::Map(m), _) => {
                let key = match &index {
                    Rv::Val(Value::String(k), _) => k.clone(),
                    Rv::Invalid => return Err("value is nil; should be of type string".into()),
                    v => {
                        return Err(format!(
                            "value has type {}; should be string",
                            v.type_name()
                        ));
                    }
                };
                let found = m.borrow().get(&*key).cloned();
                match found {
                    Some(x) => Rv::Val(x, true),
                    None => Rv::Val(Value::Nil, true),
                }
            }
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn slice(item: &Rv, indexes: &[Rv]) -> Result<Rv, String> {
    let item = item.indirect();
    let len = match &item {
        Rv::Invalid => return Err("slice of untyped nil".into()),
        Rv::Val(Value::String(s), _) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Rv::Val(Value::List(l), _) => l.len(),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(&index.indirect(), len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Rv::Val(Value::String(s), _) => Rv::concrete(Value::string(
            String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned(),
        )),
        Rv::Val(Value::List(l), _) => Rv::concrete(Value::List(l[idx[0]..idx[1]].to_vec().into())),
        _ => Rv::Invalid,
    })
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
}

const BAD_TYPE: &str = "invalid type for comparison";

fn basic_kind(v: &Rv) -> Result<Kind, &'static str> {
    match v {
        Rv::Val(Value::Bool(_), _) => Ok(Kind::Bool),
        Rv::Val(Value::Int(_), _) => Ok(Kind::Int),
        Rv::Val(Value::Float(_), _) => Ok(Kind::Float),
        Rv::Val(Value::String(_), _) => Ok(Kind::String),
        _ => Err(BAD_TYPE),
    }
}

fn eq(arg1: &Rv, rest: &[Rv]) -> Result<bool, String> {
    let a = arg1.indirect();
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(&a).unwrap_or(Kind::Invalid);
    for arg in rest {
        let b = arg.indirect();
        let k2 = basic_kind(&b).unwrap_or(Kind::Invalid);
        let truth = if k1 != k2 {
            if !matches!(a, Rv::Invalid) && !matches!(b, Rv::Invalid) {
                return Err(incompatible(&a, &b));
            }
            false
        } else {
            match (&a, &b) {
                (Rv::Invalid, Rv::Invalid) => true,
                (Rv::Invalid, _) | (_, Rv::Invalid) => false,
                (Rv::Val(x, _), Rv::Val(y, _)) => match (x, y) {
                    (Value::Bool(x), Value::Bool(y)) => x == y,
                    (Value::Int(x), Value::Int(y)) => x == y,
                    (Value::Float(x), Value::Float(y)) => x == y,
                    (Value::String(x), Value::String(y)) => x == y,
                    // Pointers compare by identity.
                    (Value::Object(_), Value::Object(_)) => x == y,
                    (Value::List(_), Value::List(_)) | (Value::Map(_), Value::Map(_)) => {
                        return Err(format!(
                            "non-comparable type {}: {}",
                            sprintf("%s", std::slice::from_ref(y)),
                            y.type_name()
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "non-comparable types {}: {}, {}: {}",
                            sprintf("%s", std::slice::from_ref(x)),
                            x.type_name(),
                            y.type_name(),
                            super::fmt::value_string(y)
                        ));
                    }
                },
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn incompatible(a: &Rv, b: &Rv) -> String {
    format!(
        "incompatible types for comparison: {} and {}",
        a.type_name(),
        b.type_name()
    )
}

fn lt(arg1: &Rv, arg2: &Rv) -> Result<bool, String> {
    let a = arg1.indirect();
    let k1 = basic_kind(&a)?;
    let b = arg2.indirect();
    let k2 = basic_kind(&b)?;
    if k1 != k2 {
        return Err(incompatible(&a, &b));
    }
    Ok(match (a.to_value(), b.to_value()) {
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::String(x), Value::String(y)) => x < y,
        _ => return Err(BAD_TYPE.into()),
    })
}

fn le(arg1: &Rv, arg2: &Rv) -> Result<bool, String> {
    if lt(arg1, arg2)? {
        return Ok(true);
    }
    eq(arg1, std::slice::from_ref(arg2))
}

/// Go's `evalArgs` for html, js and urlquery: one string as it is,
/// anything else printed (a missing value as `<no value>`).
fn eval_args(args: &[Rv]) -> String {
    if let [Rv::Val(Value::String(s), _)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Rv::Invalid | Rv::Val(Value::Nil, _) => Value::string("<no value>"),
            Rv::Val(v, _) => v.clone(),
        })
        .collect();
    sprint(&printable)
}

/// `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) >= 0x80 && !super::fmt::is_print(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

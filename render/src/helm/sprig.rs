//! The Sprig functions (Masterminds/sprig v3.3) Helm gives templates, with
//! Go's argument types and Sprig's results, including its quirks (`trunc`
//! counts bytes, `default` treats `0` and `false` as unset, `add` returns
//! an `int64`, `keys` is unordered in Go so charts sort it).
//!
//! Functions whose result changes on every call (`now`, `randAlphaNum`,
//! `uuidv4`, `genCA`...) are registered by [`super::engine`] as refusals:
//! a render must give the same bytes every time.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::json;
use super::semver;
use super::template::{
    Func, Param, Templates, Value, go_string_bytes, go_string_from_bytes, quote, value_string,
};

type R = Result<Value, String>;

fn reg(
    t: &mut Templates,
    name: &str,
    params: Vec<Param>,
    variadic: Option<Param>,
    f: fn(&[Value]) -> R,
) {
    t.add_func(name, Func::new(params, variadic, move |_, args| f(args)));
}

fn s(v: impl Into<Rc<str>>) -> R {
    Ok(Value::String(v.into()))
}

fn b(v: bool) -> R {
    Ok(Value::Bool(v))
}

fn i(v: i64) -> R {
    Ok(Value::Int(v))
}

fn f(v: f64) -> R {
    Ok(Value::Float(v))
}

fn str_arg(v: &Value) -> &str {
    match v {
        Value::String(s) => s,
        _ => "",
    }
}

fn int_arg(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

fn strings(l: Vec<String>) -> R {
    Ok(Value::list(l.into_iter().map(Value::from).collect()))
}

/// Sprig's `strval`: strings as they are, anything else as `%v` prints it.
pub fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Object(o) if o.bytes().is_some() => go_string_from_bytes(o.bytes().unwrap_or(&[])),
        v => value_string(v),
    }
}

/// Sprig's `empty`: nil, false, 0, and empty strings, lists and maps.
pub fn empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.borrow().is_empty(),
        Value::Object(_) => false,
    }
}

/// Go's `reflect.Kind` name of a value (`kindOf`).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Object(_) => "ptr",
    }
}

/// The error Go gives when Sprig asks a nil interface for its type.
const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

/// The list a Sprig list function works on, or its error for other kinds.
fn list_of<'a>(v: &'a Value, what: &str) -> Result<&'a [Value], String> {
    match v {
        Value::List(l) => Ok(l),
        Value::Nil => Err(NIL_DEREF.into()),
        other => Err(format!("Cannot {what} on type {}", kind(other))),
    }
}

/// spf13/cast's `ToInt64`: numbers truncated, strings parsed (base prefixes
/// allowed, a decimal part dropped), booleans 1 or 0, anything else 0.
pub fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_go_int(&trim_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// spf13/cast's `ToFloat64`.
pub fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .filter(|_| !s.contains(['_']))
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

fn trim_decimal(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    // ^([-+]?\d*)(\.\d*)?$
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let sign_ok = int
        .strip_prefix(['-', '+'])
        .unwrap_or(int)
        .bytes()
        .all(|c| c.is_ascii_digit());
    if sign_ok && frac.bytes().all(|c| c.is_ascii_digit()) {
        return match int {
            "" | "-" | "+" => format!("{int}0"),
            i => i.to_string(),
        };
    }
    s.to_string()
}

/// Go's `strconv.ParseInt(s, 0, 64)`: `0x`, `0o`, `0b` and leading-`0`
/// octal prefixes, `_` between digits.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    let digits = if digits.contains('_') {
        // Go's literal syntax: `_` between digits, or right after a base prefix.
        let lead_ok = prefixed && digits.starts_with('_') && !digits.starts_with("__");
        if (digits.starts_with('_') && !lead_ok) || digits.ends_with('_') || digits.contains("__") {
            return None;
        }
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() {
        return None;
    }
    let mag = u64::from_str_radix(&digits, radix).ok()?;
    if neg {
        if mag > i64::MAX as u64 + 1 {
            return None;
        }
        Some((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).ok()
    }
}

/// Sprig's `strslice`: a list's non-nil items as strings; a string alone
/// as one item; nil as none.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

/// Go's `reflect.DeepEqual` on template values (an int and a float differ).
fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (a, b) => a == b,
    }
}

fn map_arg(v: &Value) -> BTreeMap<String, Value> {
    match v {
        Value::Map(m) => m.borrow().clone(),
        _ => BTreeMap::new(),
    }
}

/// Go's `%T`.
fn type_of(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        v => v.type_name().to_string(),
    }
}

/// Copies maps and lists all the way down (`deepCopy`, and the copies
/// Helm makes of values).
pub fn deep_copy(v: &Value) -> Value {
    match v {
        Value::List(l) => Value::list(l.iter().map(deep_copy).collect()),
        Value::Map(m) => Value::map(
            m.borrow()
                .iter()
                .map(|(k, v)| (k.clone(), deep_copy(v)))
                .collect(),
        ),
        v => v.clone(),
    }
}

/// mergo's `Merge` (and with `overwrite`, `MergeWithOverwrite`) of `src`
/// into the map `dst`, in place, as Sprig's `merge`/`mergeOverwrite` call it.
fn mergo(dst: &Value, src: &Value, overwrite: bool) {
    let (Value::Map(d), Value::Map(s)) = (dst, src) else {
        return;
    };
    if Rc::ptr_eq(d, s) {
        return;
    }
    let src_entries: Vec<(String, Value)> = s
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, sv) in src_entries {
        let dv = d.borrow().get(&key).cloned();
        if matches!(sv, Value::Nil) {
            // A nil map, slice or interface in src.
            if overwrite {
                d.borrow_mut().insert(key, sv);
            }
            continue;
        }
        if let (Value::Map(_), Some(dm @ Value::Map(_))) = (&sv, &dv) {
            // Both maps: merged in place (dst keeps its map).
            mergo(dm, &sv, overwrite);
            continue;
        }
        // Without overwrite a value fills only a missing or empty one; the
        // value itself is shared, as Go shares maps and slices.
        if overwrite || dv.as_ref().is_none_or(empty) {
            d.borrow_mut().insert(key, sv);
        }
    }
}

fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| go_regex_error(pattern, &e))
}

/// Go's message for a pattern that does not compile: Go's error code and
/// the part of the pattern it names.
fn go_regex_error(pattern: &str, e: &regex::Error) -> String {
    use regex_syntax::ast::ErrorKind as K;
    let _ = e;
    let Err(ast) = regex_syntax::ast::parse::Parser::new().parse(pattern) else {
        return format!("error parsing regexp: invalid or unsupported Perl syntax: `{pattern}`");
    };
    let span = ast.span();
    let from = |i: usize| &pattern[i.min(pattern.len())..];
    let at = &pattern[span.start.offset.min(pattern.len())..span.end.offset.min(pattern.len())];
    let (code, text) = match ast.kind() {
        K::ClassUnclosed => ("missing closing ]", from(span.start.offset).to_string()),
        K::GroupUnclosed => ("missing closing )", pattern.to_string()),
        K::GroupUnopened => ("unexpected )", pattern.to_string()),
        K::RepetitionMissing => ("missing argument to repetition operator", at.to_string()),
        K::RepetitionCountUnclosed | K::RepetitionCountInvalid => {
            ("invalid repeat count", at.to_string())
        }
        K::EscapeUnrecognized | K::EscapeUnexpectedEof => {
            ("invalid escape sequence", at.to_string())
        }
        K::ClassRangeInvalid => ("invalid character class range", at.to_string()),
        K::GroupNameInvalid | K::GroupNameEmpty | K::GroupNameUnexpectedEof => {
            ("invalid named capture", at.to_string())
        }
        K::GroupNameDuplicate { .. } => ("duplicate capture group name", at.to_string()),
        _ => ("invalid or unsupported Perl syntax", at.to_string()),
    };
    format!("error parsing regexp: {code}: `{text}`")
}

/// Go's `Regexp.ReplaceAllString` template: `$1`, `${name}`, `$$`.
fn expand_go(caps: &regex::Captures<'_>, repl: &str, out: &mut String) {
    let b = repl.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let c = repl[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        if i + 1 < b.len() && b[i + 1] == b'$' {
            out.push('$');
            i += 2;
            continue;
        }
        let (name, next) = if i + 1 < b.len() && b[i + 1] == b'{' {
            match repl[i + 2..].find('}') {
                Some(end) => (&repl[i + 2..i + 2 + end], i + 3 + end),
                None => {
                    out.push('$');
                    i += 1;
                    continue;
                }
            }
        } else {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            (&repl[i + 1..j], j)
        };
        if name.is_empty() {
            out.push('$');
            i += 1;
            continue;
        }
        let m = match name.parse::<usize>() {
            Ok(n) => caps.get(n),
            Err(_) => caps.name(name),
        };
        if let Some(m) = m {
            out.push_str(m.as_str());
        }
        i = next;
    }
}

/// Go's `Regexp.Split(s, n)`.
fn regex_split(re: &regex::Regex, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if re.as_str().is_empty() && s.is_empty() {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    let mut beg = 0;
    let mut end = 0;
    for m in re.find_iter(s) {
        if n > 0 && out.len() as i64 == n - 1 {
            break;
        }
        end = m.start();
        if m.end() == 0 {
            continue;
        }
        out.push(s[beg..end].to_string());
        beg = m.end();
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

fn find_all(re: &regex::Regex, s: &str, n: i64) -> Vec<String> {
    let mut out = Vec::new();
    for m in re.find_iter(s) {
        if n >= 0 && out.len() as i64 >= n {
            break;
        }
        out.push(m.as_str().to_string());
    }
    out
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

/// Sprig's `untitle`: the first letter of each word lower-cased.
fn untitle(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if c.is_whitespace() {
            in_word = false;
            out.push(c);
        } else if !in_word {
            out.extend(c.to_lowercase());
            in_word = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// huandu/xstrings' case conversion: words split at case changes,
/// spaces, `_`, `-` and `.`, joined by `sep` in lower case.
fn delimited(s: &str, sep: char) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut pending_sep = false;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '_' || c == '-' || c == '.' {
            if !out.is_empty() {
                pending_sep = true;
            }
            i += 1;
            continue;
        }
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if !out.is_empty() && (prev_lower || (prev_upper && next_lower)) {
                pending_sep = true;
            }
            if pending_sep {
                out.push(sep);
                pending_sep = false;
            }
            out.extend(c.to_lowercase());
        } else {
            if pending_sep {
                out.push(sep);
                pending_sep = false;
            }
            out.push(c);
        }
        i += 1;
    }
    out
}

/// huandu/xstrings' `ToPascalCase` (Sprig's `camelcase`).
fn pascal(s: &str) -> String {
    let mut out = String::new();
    let mut upper_next = true;
    for c in s.chars() {
        if c == '_' || c == '-' || c == ' ' || c == '.' {
            upper_next = true;
            continue;
        }
        if upper_next {
            out.extend(c.to_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Masterminds/goutils' `AbbreviateFull(str, offset, maxWidth)` (byte offsets).
fn abbreviate_full(text: &str, offset: i64, max_width: i64) -> Result<String, ()> {
    if text.is_empty() {
        return Ok(String::new());
    }
    if max_width < 4 {
        return Err(());
    }
    let len = text.len() as i64;
    if len <= max_width {
        return Ok(text.to_string());
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    if offset <= 4 {
        return Ok(format!(
            "{}...",
            byte_slice(text, 0, (max_width - 3) as usize)
        ));
    }
    if max_width < 7 {
        return Err(());
    }
    if offset + max_width - 3 < len {
        let rest = byte_slice(text, offset as usize, text.len());
        let inner = abbreviate_full(&rest, 0, max_width - 3).unwrap_or_default();
        return Ok(format!("...{inner}"));
    }
    Ok(format!(
        "...{}",
        byte_slice(text, (len - (max_width - 3)) as usize, text.len())
    ))
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Go slicing of a string by bytes, as Sprig's `trunc`/`substr` do;
/// a cut inside a character is moved to the character's start.
fn byte_slice(s: &str, start: usize, end: usize) -> String {
    let start = floor_char(s, start.min(s.len()));
    let end = floor_char(s, end.min(s.len()));
    if start >= end {
        return String::new();
    }
    s[start..end].to_string()
}

fn sha_hex<D: sha2::Digest>(data: &[u8]) -> String {
    hex::encode(D::digest(data))
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Registers every Sprig function fleet implements.
pub fn install(t: &mut Templates) {
    use Param::{Any, Int, Map, String as Str};

    // Strings.
    reg(t, "trim", vec![Str], None, |a| {
        s(str_arg(&a[0]).trim_matches(char::is_whitespace))
    });
    reg(t, "upper", vec![Str], None, |a| {
        s(str_arg(&a[0]).to_uppercase())
    });
    reg(t, "lower", vec![Str], None, |a| {
        s(str_arg(&a[0]).to_lowercase())
    });
    reg(t, "title", vec![Str], None, |a| s(title(str_arg(&a[0]))));
    reg(t, "untitle", vec![Str], None, |a| {
        s(untitle(str_arg(&a[0])))
    });
    reg(t, "trunc", vec![Int, Str], None, |a| {
        let (c, st) = (int_arg(&a[0]), str_arg(&a[1]));
        let len = st.len() as i64;
        if c < 0 && len + c > 0 {
            return s(byte_slice(st, (len + c) as usize, st.len()));
        }
        if c >= 0 && len > c {
            return s(byte_slice(st, 0, c as usize));
        }
        s(st)
    });
    reg(t, "substr", vec![Int, Int, Str], None, |a| {
        let (start, end, st) = (int_arg(&a[0]), int_arg(&a[1]), str_arg(&a[2]));
        let len = st.len() as i64;
        let out_of_range =
            |lo: i64, hi: i64| format!("runtime error: slice bounds out of range [{lo}:{hi}]");
        if start < 0 {
            if end < 0 || end > len {
                return Err(format!(
                    "runtime error: slice bounds out of range [:{end}] with length {len}"
                ));
            }
            return s(byte_slice(st, 0, end as usize));
        }
        if end < 0 || end > len {
            if start > len {
                return Err(format!(
                    "runtime error: slice bounds out of range [{start}:{len}]"
                ));
            }
            return s(byte_slice(st, start as usize, st.len()));
        }
        if start > end {
            return Err(out_of_range(start, end));
        }
        s(byte_slice(st, start as usize, end as usize))
    });
    reg(t, "repeat", vec![Int, Str], None, |a| {
        let n = int_arg(&a[0]);
        if n < 0 {
            return Err("strings: negative Repeat count".into());
        }
        let st = str_arg(&a[1]);
        if st.len().saturating_mul(n as usize) > 64 << 20 {
            return Err("strings: Repeat output length overflow".into());
        }
        s(st.repeat(n as usize))
    });
    for name in ["trimall", "trimAll"] {
        reg(t, name, vec![Str, Str], None, |a| {
            let cut: Vec<char> = str_arg(&a[0]).chars().collect();
            s(str_arg(&a[1]).trim_matches(|c| cut.contains(&c)))
        });
    }
    reg(t, "trimSuffix", vec![Str, Str], None, |a| {
        let st = str_arg(&a[1]);
        s(st.strip_suffix(str_arg(&a[0])).unwrap_or(st))
    });
    reg(t, "trimPrefix", vec![Str, Str], None, |a| {
        let st = str_arg(&a[1]);
        s(st.strip_prefix(str_arg(&a[0])).unwrap_or(st))
    });
    reg(t, "nospace", vec![Str], None, |a| {
        s(str_arg(&a[0])
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>())
    });
    reg(t, "initials", vec![Str], None, |a| {
        let st = str_arg(&a[0]);
        s(st.split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect::<String>())
    });
    reg(t, "swapcase", vec![Str], None, |a| {
        s(str_arg(&a[0])
            .chars()
            .flat_map(|c| {
                if c.is_uppercase() {
                    c.to_lowercase().collect::<Vec<_>>()
                } else {
                    c.to_uppercase().collect::<Vec<_>>()
                }
            })
            .collect::<String>())
    });
    reg(t, "snakecase", vec![Str], None, |a| {
        s(delimited(str_arg(&a[0]), '_'))
    });
    reg(t, "kebabcase", vec![Str], None, |a| {
        s(delimited(str_arg(&a[0]), '-'))
    });
    reg(t, "camelcase", vec![Str], None, |a| {
        s(pascal(str_arg(&a[0])))
    });
    reg(t, "abbrev", vec![Int, Str], None, |a| {
        let (w, text) = (int_arg(&a[0]), str_arg(&a[1]));
        if w < 4 {
            return s(text);
        }
        s(abbreviate_full(text, 0, w).unwrap_or_default())
    });
    reg(t, "abbrevboth", vec![Int, Int, Str], None, |a| {
        let (left, right, text) = (int_arg(&a[0]), int_arg(&a[1]), str_arg(&a[2]));
        if right < 4 || left > 0 && right < 7 {
            return s(text);
        }
        s(abbreviate_full(text, left, right).unwrap_or_default())
    });
    reg(t, "contains", vec![Str, Str], None, |a| {
        b(str_arg(&a[1]).contains(str_arg(&a[0])))
    });
    reg(t, "hasPrefix", vec![Str, Str], None, |a| {
        b(str_arg(&a[1]).starts_with(str_arg(&a[0])))
    });
    reg(t, "hasSuffix", vec![Str, Str], None, |a| {
        b(str_arg(&a[1]).ends_with(str_arg(&a[0])))
    });
    reg(t, "quote", vec![], Some(Any), |a| {
        let out: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| quote(&strval(v)))
            .collect();
        s(out.join(" "))
    });
    reg(t, "squote", vec![], Some(Any), |a| {
        let out: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(|v| format!("'{}'", value_string(v)))
            .collect();
        s(out.join(" "))
    });
    reg(t, "cat", vec![], Some(Any), |a| {
        let out: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(value_string)
            .collect();
        s(out.join(" "))
    });
    reg(t, "indent", vec![Int, Str], None, |a| {
        let pad = " ".repeat(int_arg(&a[0]).max(0) as usize);
        s(format!(
            "{pad}{}",
            str_arg(&a[1]).replace('\n', &format!("\n{pad}"))
        ))
    });
    reg(t, "nindent", vec![Int, Str], None, |a| {
        let pad = " ".repeat(int_arg(&a[0]).max(0) as usize);
        s(format!(
            "\n{pad}{}",
            str_arg(&a[1]).replace('\n', &format!("\n{pad}"))
        ))
    });
    reg(t, "replace", vec![Str, Str, Str], None, |a| {
        s(go_replace(str_arg(&a[2]), str_arg(&a[0]), str_arg(&a[1])))
    });
    reg(t, "plural", vec![Str, Str, Int], None, |a| {
        s(if int_arg(&a[2]) == 1 {
            str_arg(&a[0])
        } else {
            str_arg(&a[1])
        })
    });
    reg(t, "wrap", vec![Int, Str], None, |a| {
        s(wrap(str_arg(&a[1]), int_arg(&a[0]), "\n"))
    });
    reg(t, "wrapWith", vec![Int, Str, Str], None, |a| {
        s(wrap(str_arg(&a[2]), int_arg(&a[0]), str_arg(&a[1])))
    });
    reg(t, "toString", vec![Any], None, |a| s(strval(&a[0])));
    reg(t, "toStrings", vec![Any], None, |a| {
        strings(strslice(&a[0]))
    });
    reg(t, "join", vec![Str, Any], None, |a| {
        s(strslice(&a[1]).join(str_arg(&a[0])))
    });
    reg(t, "split", vec![Str, Str], None, |a| {
        let parts = go_split(str_arg(&a[1]), str_arg(&a[0]), -1);
        Ok(Value::map(
            parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::from(p)))
                .collect(),
        ))
    });
    reg(t, "splitn", vec![Str, Int, Str], None, |a| {
        let parts = go_split(str_arg(&a[2]), str_arg(&a[0]), int_arg(&a[1]));
        Ok(Value::map(
            parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::from(p)))
                .collect(),
        ))
    });
    reg(t, "splitList", vec![Str, Str], None, |a| {
        strings(go_split(str_arg(&a[1]), str_arg(&a[0]), -1))
    });
    reg(t, "sortAlpha", vec![Any], None, |a| match &a[0] {
        Value::List(_) => {
            let mut l = strslice(&a[0]);
            l.sort();
            strings(l)
        }
        v => strings(vec![strval(v)]),
    });
    reg(t, "sha1sum", vec![Str], None, |a| {
        s(sha_hex::<sha1::Sha1>(&go_string_bytes(str_arg(&a[0]))))
    });
    reg(t, "sha256sum", vec![Str], None, |a| {
        s(sha_hex::<sha2::Sha256>(&go_string_bytes(str_arg(&a[0]))))
    });
    reg(t, "sha512sum", vec![Str], None, |a| {
        s(sha_hex::<sha2::Sha512>(&go_string_bytes(str_arg(&a[0]))))
    });
    reg(t, "adler32sum", vec![Str], None, |a| {
        s(adler32(&go_string_bytes(str_arg(&a[0]))).to_string())
    });
    for (enc, dec, encoding) in [
        ("b64enc", "b64dec", data_encoding::BASE64),
        ("b32enc", "b32dec", data_encoding::BASE32),
    ] {
        let e = encoding.clone();
        t.add_func(
            enc,
            Func::new(vec![Str], None, move |_, a| {
                Ok(Value::from(e.encode(&go_string_bytes(str_arg(&a[0])))))
            }),
        );
        // Sprig gives the decoder's error as the result.
        t.add_func(
            dec,
            Func::new(vec![Str], None, move |_, a| {
                Ok(Value::from(
                    match encoding.decode(str_arg(&a[0]).as_bytes()) {
                        Ok(d) => go_string_from_bytes(&d),
                        Err(e) => go_base64_error(&e),
                    },
                ))
            }),
        );
    }

    // Numbers.
    reg(t, "atoi", vec![Str], None, |a| {
        i(str_arg(&a[0]).parse::<i64>().unwrap_or(0))
    });
    reg(t, "int", vec![Any], None, |a| i(to_int64(&a[0])));
    reg(t, "int64", vec![Any], None, |a| i(to_int64(&a[0])));
    reg(t, "float64", vec![Any], None, |a| f(to_float64(&a[0])));
    reg(t, "add1", vec![Any], None, |a| {
        i(to_int64(&a[0]).wrapping_add(1))
    });
    reg(t, "add", vec![], Some(Any), |a| {
        i(a.iter().map(to_int64).fold(0i64, i64::wrapping_add))
    });
    reg(t, "sub", vec![Any, Any], None, |a| {
        i(to_int64(&a[0]).wrapping_sub(to_int64(&a[1])))
    });
    reg(t, "mul", vec![Any], Some(Any), |a| {
        i(a.iter().map(to_int64).fold(1i64, i64::wrapping_mul))
    });
    reg(t, "div", vec![Any, Any], None, |a| {
        let d = to_int64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        i(to_int64(&a[0]).wrapping_div(d))
    });
    reg(t, "mod", vec![Any, Any], None, |a| {
        let d = to_int64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        i(to_int64(&a[0]).wrapping_rem(d))
    });
    for name in ["max", "biggest"] {
        reg(t, name, vec![Any], Some(Any), |a| {
            i(a.iter().map(to_int64).max().unwrap_or(0))
        });
    }
    reg(t, "min", vec![Any], Some(Any), |a| {
        i(a.iter().map(to_int64).min().unwrap_or(0))
    });
    reg(t, "maxf", vec![Any], Some(Any), |a| {
        f(a.iter().map(to_float64).fold(f64::NEG_INFINITY, f64::max))
    });
    reg(t, "minf", vec![Any], Some(Any), |a| {
        f(a.iter().map(to_float64).fold(f64::INFINITY, f64::min))
    });
    reg(
        t,
        "floor",
        vec![Any],
        None,
        |a| f(to_float64(&a[0]).floor()),
    );
    reg(t, "ceil", vec![Any], None, |a| f(to_float64(&a[0]).ceil()));
    reg(t, "round", vec![Any, Int], Some(Param::Float), |a| {
        let round_on = a.get(2).map(to_float64).unwrap_or(0.5);
        let pow = 10f64.powf(int_arg(&a[1]) as f64);
        let digit = pow * to_float64(&a[0]);
        let frac = digit - digit.trunc();
        let r = if frac >= round_on {
            digit.ceil()
        } else {
            digit.floor()
        };
        f(r / pow)
    });
    reg(t, "until", vec![Int], None, |a| {
        let n = int_arg(&a[0]);
        Ok(until_step(0, n, if n < 0 { -1 } else { 1 }))
    });
    reg(t, "untilStep", vec![Int, Int, Int], None, |a| {
        Ok(until_step(int_arg(&a[0]), int_arg(&a[1]), int_arg(&a[2])))
    });
    reg(t, "seq", vec![], Some(Int), |a| {
        let n: Vec<i64> = a.iter().map(int_arg).collect();
        let l = match n.as_slice() {
            [end] => seq(1, 1, *end),
            [start, end] => seq(*start, 1, *end),
            [start, step, end] => seq(*start, *step, *end),
            _ => Vec::new(),
        };
        s(l.iter().map(i64::to_string).collect::<Vec<_>>().join(" "))
    });

    reg(t, "toDecimal", vec![Any], None, |a| {
        i(i64::from_str_radix(&value_string(&a[0]), 8).unwrap_or(0))
    });
    reg(t, "addf", vec![], Some(Any), |a| {
        f(decimal_fold(&Value::Float(0.0), a, Dec::add))
    });
    reg(t, "add1f", vec![Any], None, |a| {
        f(decimal_fold(&a[0], &[Value::Int(1)], Dec::add))
    });
    reg(t, "subf", vec![Any], Some(Any), |a| {
        f(decimal_fold(&a[0], &a[1..], Dec::sub))
    });
    reg(t, "mulf", vec![Any], Some(Any), |a| {
        f(decimal_fold(&a[0], &a[1..], Dec::mul))
    });
    reg(t, "divf", vec![Any], Some(Any), |a| {
        let mut acc = Dec::from_f64(to_float64(&a[0]));
        for x in &a[1..] {
            let d = Dec::from_f64(to_float64(x));
            if d.m == 0 {
                return Err("decimal division by 0".into());
            }
            acc = acc.div(&d);
        }
        f(acc.to_f64())
    });

    // Defaults and flow.
    reg(t, "default", vec![Any], Some(Any), |a| {
        if a.len() < 2 || empty(&a[1]) {
            return Ok(a[0].clone());
        }
        Ok(a[1].clone())
    });
    reg(t, "empty", vec![Any], None, |a| b(empty(&a[0])));
    reg(t, "coalesce", vec![], Some(Any), |a| {
        Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil))
    });
    reg(t, "all", vec![], Some(Any), |a| {
        b(a.iter().all(|v| !empty(v)))
    });
    reg(t, "any", vec![], Some(Any), |a| {
        b(a.iter().any(|v| !empty(v)))
    });
    reg(t, "ternary", vec![Any, Any, Param::Bool], None, |a| {
        Ok(if matches!(a[2], Value::Bool(true)) {
            a[0].clone()
        } else {
            a[1].clone()
        })
    });
    reg(t, "deepCopy", vec![Any], None, |a| Ok(deep_copy(&a[0])));
    reg(t, "mustDeepCopy", vec![Any], None, |a| Ok(deep_copy(&a[0])));

    // Types.
    reg(t, "typeOf", vec![Any], None, |a| s(type_of(&a[0])));
    reg(t, "typeIs", vec![Str, Any], None, |a| {
        b(str_arg(&a[0]) == type_of(&a[1]))
    });
    reg(t, "typeIsLike", vec![Str, Any], None, |a| {
        let t = type_of(&a[1]);
        let target = str_arg(&a[0]);
        b(target == t || format!("*{target}") == t)
    });
    reg(t, "kindOf", vec![Any], None, |a| s(kind(&a[0])));
    reg(t, "kindIs", vec![Str, Any], None, |a| {
        b(str_arg(&a[0]) == kind(&a[1]))
    });
    reg(t, "deepEqual", vec![Any, Any], None, |a| {
        b(deep_equal(&a[0], &a[1]))
    });

    // JSON: `json.Marshal` (HTML escaped), `MarshalIndent`, or an encoder
    // without HTML escaping; the plain forms give "" on error.
    const COMPACT: json::Style = json::Style {
        escape_html: true,
        pretty: false,
    };
    const PRETTY: json::Style = json::Style {
        escape_html: true,
        pretty: true,
    };
    const RAW: json::Style = json::Style {
        escape_html: false,
        pretty: false,
    };
    reg(t, "toJson", vec![Any], None, |a| {
        s(json::marshal(&a[0], COMPACT).unwrap_or_default())
    });
    reg(t, "mustToJson", vec![Any], None, |a| {
        s(json::marshal(&a[0], COMPACT)?)
    });
    reg(t, "toPrettyJson", vec![Any], None, |a| {
        s(json::marshal(&a[0], PRETTY).unwrap_or_default())
    });
    reg(t, "mustToPrettyJson", vec![Any], None, |a| {
        s(json::marshal(&a[0], PRETTY)?)
    });
    reg(t, "toRawJson", vec![Any], None, |a| {
        s(json::marshal(&a[0], RAW)?)
    });
    reg(t, "mustToRawJson", vec![Any], None, |a| {
        s(json::marshal(&a[0], RAW)?)
    });
    reg(t, "mustFromJson", vec![Str], None, |a| {
        json::unmarshal(str_arg(&a[0]))
    });

    // Paths.
    reg(t, "base", vec![Str], None, |a| s(path_base(str_arg(&a[0]))));
    reg(t, "dir", vec![Str], None, |a| s(path_dir(str_arg(&a[0]))));
    reg(t, "ext", vec![Str], None, |a| {
        let p = str_arg(&a[0]);
        let base_start = p.rfind('/').map_or(0, |i| i + 1);
        s(p[base_start..]
            .rfind('.')
            .map_or("", |i| &p[base_start + i..]))
    });
    reg(t, "isAbs", vec![Str], None, |a| {
        b(str_arg(&a[0]).starts_with('/'))
    });
    reg(t, "clean", vec![Str], None, |a| {
        s(path_clean(str_arg(&a[0])))
    });

    // Lists.
    for name in ["list", "tuple"] {
        reg(t, name, vec![], Some(Any), |a| Ok(Value::list(a.to_vec())));
    }
    for name in ["append", "push", "mustAppend", "mustPush"] {
        reg(t, name, vec![Any, Any], None, |a| {
            let mut l = list_of(&a[0], "push")?.to_vec();
            l.push(a[1].clone());
            Ok(Value::list(l))
        });
    }
    for name in ["prepend", "mustPrepend"] {
        reg(t, name, vec![Any, Any], None, |a| {
            let mut l = vec![a[1].clone()];
            l.extend(list_of(&a[0], "prepend")?.iter().cloned());
            Ok(Value::list(l))
        });
    }
    for name in ["first", "mustFirst"] {
        reg(t, name, vec![Any], None, |a| {
            Ok(list_of(&a[0], "find first")?
                .first()
                .cloned()
                .unwrap_or(Value::Nil))
        });
    }
    for name in ["last", "mustLast"] {
        reg(t, name, vec![Any], None, |a| {
            Ok(list_of(&a[0], "find last")?
                .last()
                .cloned()
                .unwrap_or(Value::Nil))
        });
    }
    for name in ["rest", "mustRest"] {
        reg(t, name, vec![Any], None, |a| {
            let l = list_of(&a[0], "find rest")?;
            Ok(if l.is_empty() {
                Value::Nil
            } else {
                Value::list(l[1..].to_vec())
            })
        });
    }
    for name in ["initial", "mustInitial"] {
        reg(t, name, vec![Any], None, |a| {
            let l = list_of(&a[0], "find initial")?;
            Ok(if l.is_empty() {
                Value::Nil
            } else {
                Value::list(l[..l.len() - 1].to_vec())
            })
        });
    }
    for name in ["reverse", "mustReverse"] {
        reg(t, name, vec![Any], None, |a| {
            let mut l = list_of(&a[0], "find reverse")?.to_vec();
            l.reverse();
            Ok(Value::list(l))
        });
    }
    for name in ["uniq", "mustUniq"] {
        reg(t, name, vec![Any], None, |a| {
            let mut out: Vec<Value> = Vec::new();
            for x in list_of(&a[0], "find uniq")? {
                if !out.iter().any(|y| deep_equal(x, y)) {
                    out.push(x.clone());
                }
            }
            Ok(Value::list(out))
        });
    }
    for name in ["without", "mustWithout"] {
        reg(t, name, vec![Any], Some(Any), |a| {
            let omit = &a[1..];
            let l = list_of(&a[0], "find without")?;
            Ok(Value::list(
                l.iter()
                    .filter(|x| !omit.iter().any(|o| deep_equal(x, o)))
                    .cloned()
                    .collect(),
            ))
        });
    }
    for name in ["compact", "mustCompact"] {
        reg(t, name, vec![Any], None, |a| {
            Ok(Value::list(
                list_of(&a[0], "compact")?
                    .iter()
                    .filter(|x| !empty(x))
                    .cloned()
                    .collect(),
            ))
        });
    }
    for name in ["has", "mustHas"] {
        reg(t, name, vec![Any, Any], None, |a| {
            if matches!(a[1], Value::Nil) {
                return b(false);
            }
            b(list_of(&a[1], "find has")?
                .iter()
                .any(|x| deep_equal(&a[0], x)))
        });
    }
    for name in ["slice", "mustSlice"] {
        reg(t, name, vec![Any], Some(Any), |a| {
            let l = match &a[0] {
                Value::List(l) => l,
                Value::Nil => return Err(NIL_DEREF.into()),
                v => {
                    return Err(format!(
                        "list should be type of slice or array but {}",
                        kind(v)
                    ));
                }
            };
            if l.is_empty() {
                return Ok(Value::Nil);
            }
            let start = a.get(1).map(to_int64).unwrap_or(0);
            let end = a.get(2).map(to_int64).unwrap_or(l.len() as i64);
            if start < 0 || end < start || end as usize > l.len() {
                return Err("reflect: slice index out of range".to_string());
            }
            Ok(Value::list(l[start as usize..end as usize].to_vec()))
        });
    }
    reg(t, "concat", vec![], Some(Any), |a| {
        let mut out = Vec::new();
        for l in a {
            match l {
                Value::List(l) => out.extend(l.iter().cloned()),
                Value::Nil => return Err(NIL_DEREF.into()),
                v => return Err(format!("Cannot concat type {} as list", kind(v))),
            }
        }
        Ok(if out.is_empty() {
            Value::Nil
        } else {
            Value::list(out)
        })
    });
    for name in ["chunk", "mustChunk"] {
        reg(t, name, vec![Int, Any], None, |a| {
            let size = int_arg(&a[0]);
            let l = list_of(&a[1], "chunk")?;
            if size <= 0 {
                return Err("runtime error: integer divide by zero".into());
            }
            Ok(Value::list(
                l.chunks(size as usize)
                    .map(|c| Value::list(c.to_vec()))
                    .collect(),
            ))
        });
    }

    // Dicts.
    reg(t, "dict", vec![], Some(Any), |a| {
        let mut m = BTreeMap::new();
        for pair in a.chunks(2) {
            let key = strval(&pair[0]);
            m.insert(key, pair.get(1).cloned().unwrap_or_else(|| Value::from("")));
        }
        Ok(Value::map(m))
    });
    reg(t, "get", vec![Map, Str], None, |a| {
        Ok(match &a[0] {
            Value::Map(m) => m
                .borrow()
                .get(str_arg(&a[1]))
                .cloned()
                .unwrap_or_else(|| Value::from("")),
            _ => Value::from(""),
        })
    });
    reg(t, "set", vec![Map, Str, Any], None, |a| match &a[0] {
        Value::Map(m) => {
            m.borrow_mut()
                .insert(str_arg(&a[1]).to_string(), a[2].clone());
            Ok(a[0].clone())
        }
        _ => Err("assignment to entry in nil map".into()),
    });
    reg(t, "unset", vec![Map, Str], None, |a| {
        if let Value::Map(m) = &a[0] {
            m.borrow_mut().remove(str_arg(&a[1]));
        }
        Ok(a[0].clone())
    });
    reg(t, "hasKey", vec![Map, Str], None, |a| {
        b(matches!(&a[0], Value::Map(m) if m.borrow().contains_key(str_arg(&a[1]))))
    });
    reg(t, "pluck", vec![Str], Some(Map), |a| {
        let key = str_arg(&a[0]);
        Ok(Value::list(
            a[1..]
                .iter()
                .filter_map(|d| match d {
                    Value::Map(m) => m.borrow().get(key).cloned(),
                    _ => None,
                })
                .collect(),
        ))
    });
    reg(t, "keys", vec![], Some(Map), |a| {
        // Go's map order is random; charts sort the result. fleet gives the
        // keys in order, which is one of Go's possible answers.
        let mut k = Vec::new();
        for d in a {
            k.extend(map_arg(d).into_keys());
        }
        strings(k)
    });
    reg(t, "values", vec![Map], None, |a| {
        Ok(Value::list(map_arg(&a[0]).into_values().collect()))
    });
    reg(t, "pick", vec![Map], Some(Str), |a| {
        let m = map_arg(&a[0]);
        let mut out = BTreeMap::new();
        for k in &a[1..] {
            if let Some(v) = m.get(str_arg(k)) {
                out.insert(str_arg(k).to_string(), v.clone());
            }
        }
        Ok(Value::map(out))
    });
    reg(t, "omit", vec![Map], Some(Str), |a| {
        let mut m = map_arg(&a[0]);
        for k in &a[1..] {
            m.remove(str_arg(k));
        }
        Ok(Value::map(m))
    });
    for (name, overwrite) in [
        ("merge", false),
        ("mustMerge", false),
        ("mergeOverwrite", true),
        ("mustMergeOverwrite", true),
    ] {
        t.add_func(
            name,
            Func::new(vec![Map], Some(Map), move |_, a| {
                let dst = match &a[0] {
                    Value::Map(_) => a[0].clone(),
                    // mergo on a nil map pointer target makes a new map.
                    _ => Value::map(BTreeMap::new()),
                };
                for src in &a[1..] {
                    mergo(&dst, src, overwrite);
                }
                Ok(dst)
            }),
        );
    }
    reg(t, "dig", vec![], Some(Any), |a| {
        if a.len() < 3 {
            return Err("dig needs at least three arguments".into());
        }
        let Value::Map(_) = &a[a.len() - 1] else {
            return Err(format!(
                "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
                type_of(&a[a.len() - 1])
            ));
        };
        let def = a[a.len() - 2].clone();
        let mut cur = a[a.len() - 1].clone();
        for k in &a[..a.len() - 2] {
            let Value::String(k) = k else {
                return Err(format!(
                    "interface conversion: interface {{}} is {}, not string",
                    type_of(k)
                ));
            };
            let next = match &cur {
                Value::Map(m) => m.borrow().get(&**k).cloned(),
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(def),
            }
        }
        Ok(cur)
    });

    // Regular expressions (Go's RE2 syntax; the regex crate is RE2's kin).
    reg(t, "regexMatch", vec![Str, Str], None, |a| {
        b(regex(str_arg(&a[0]))
            .map(|r| r.is_match(str_arg(&a[1])))
            .unwrap_or(false))
    });
    reg(t, "mustRegexMatch", vec![Str, Str], None, |a| {
        b(regex(str_arg(&a[0]))?.is_match(str_arg(&a[1])))
    });
    for name in ["regexFind", "mustRegexFind"] {
        reg(t, name, vec![Str, Str], None, |a| {
            let r = regex(str_arg(&a[0]))?;
            s(r.find(str_arg(&a[1])).map_or("", |m| m.as_str()))
        });
    }
    for name in ["regexFindAll", "mustRegexFindAll"] {
        reg(t, name, vec![Str, Str, Int], None, |a| {
            let r = regex(str_arg(&a[0]))?;
            // Go gives a nil slice when nothing matched (JSON `null`).
            let found = find_all(&r, str_arg(&a[1]), int_arg(&a[2]));
            if found.is_empty() {
                Ok(Value::Nil)
            } else {
                strings(found)
            }
        });
    }
    for name in ["regexReplaceAll", "mustRegexReplaceAll"] {
        reg(t, name, vec![Str, Str, Str], None, |a| {
            let r = regex(str_arg(&a[0]))?;
            let repl = str_arg(&a[2]);
            let src = str_arg(&a[1]);
            let mut out = String::new();
            let mut last = 0;
            for caps in r.captures_iter(src) {
                let m = caps.get(0).expect("group 0");
                out.push_str(&src[last..m.start()]);
                expand_go(&caps, repl, &mut out);
                last = m.end();
            }
            out.push_str(&src[last..]);
            s(out)
        });
    }
    for name in ["regexReplaceAllLiteral", "mustRegexReplaceAllLiteral"] {
        reg(t, name, vec![Str, Str, Str], None, |a| {
            let r = regex(str_arg(&a[0]))?;
            s(
                r.replace_all(str_arg(&a[1]), regex::NoExpand(str_arg(&a[2])))
                    .into_owned(),
            )
        });
    }
    for name in ["regexSplit", "mustRegexSplit"] {
        reg(t, name, vec![Str, Str, Int], None, |a| {
            let r = regex(str_arg(&a[0]))?;
            if int_arg(&a[2]) == 0 {
                return Ok(Value::Nil);
            }
            strings(regex_split(&r, str_arg(&a[1]), int_arg(&a[2])))
        });
    }
    reg(t, "regexQuoteMeta", vec![Str], None, |a| {
        s(regex::escape(str_arg(&a[0])))
    });

    // Semantic versions.
    reg(t, "semverCompare", vec![Str, Str], None, |a| {
        let c = semver::Constraints::parse(str_arg(&a[0]))?;
        let v = semver::Version::parse(str_arg(&a[1]))?;
        b(c.check(&v))
    });
    reg(t, "semver", vec![Str], None, |a| {
        Ok(Value::Object(Rc::new(semver::Version::parse(str_arg(
            &a[0],
        ))?)))
    });

    // Helm's `fromJson`/`fromJsonArray` (its `toYaml` and the rest are in engine.rs).
    reg(t, "fromJson", vec![Str], None, |a| {
        Ok(match json::unmarshal(str_arg(&a[0])) {
            Ok(Value::Map(m)) => Value::Map(m),
            Ok(_) => Value::map(BTreeMap::from([(
                "Error".to_string(),
                Value::from(
                    "json: cannot unmarshal array into Go value of type map[string]interface {}",
                ),
            )])),
            Err(e) => Value::map(BTreeMap::from([("Error".to_string(), Value::from(e))])),
        })
    });
    reg(t, "fromJsonArray", vec![Str], None, |a| {
        Ok(match json::unmarshal(str_arg(&a[0])) {
            Ok(Value::List(l)) => Value::List(l),
            Ok(_) => Value::list(vec![Value::from(
                "json: cannot unmarshal object into Go value of type []interface {}",
            )]),
            Err(e) => Value::list(vec![Value::from(e)]),
        })
    });
}

/// shopspring/decimal as Sprig's `addf` family uses it: floats taken at
/// their shortest decimal text, exact sums and products, quotients to 16
/// places, back to the nearest float. (Exact within 128 bits; beyond, the
/// float operation.)
#[derive(Clone, Copy)]
struct Dec {
    m: i128,
    e: i32,
}

impl Dec {
    fn from_f64(f: f64) -> Dec {
        if !f.is_finite() || f == 0.0 {
            return Dec { m: 0, e: 0 };
        }
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
        let digits = format!("{int}{frac}");
        Dec {
            m: digits.parse().unwrap_or(0),
            e: exp - frac.len() as i32,
        }
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.m, self.e).parse().unwrap_or(0.0)
    }

    fn align(a: Dec, b: Dec) -> Option<(i128, i128, i32)> {
        let e = a.e.min(b.e);
        let sa = 10i128.checked_pow((a.e - e) as u32)?;
        let sb = 10i128.checked_pow((b.e - e) as u32)?;
        Some((a.m.checked_mul(sa)?, b.m.checked_mul(sb)?, e))
    }

    fn add(self, o: &Dec) -> Dec {
        match Dec::align(self, *o).and_then(|(a, b, e)| {
            Some(Dec {
                m: a.checked_add(b)?,
                e,
            })
        }) {
            Some(d) => d,
            None => Dec::from_f64(self.to_f64() + o.to_f64()),
        }
    }

    fn sub(self, o: &Dec) -> Dec {
        self.add(&Dec { m: -o.m, e: o.e })
    }

    fn mul(self, o: &Dec) -> Dec {
        match self.m.checked_mul(o.m) {
            Some(m) => Dec { m, e: self.e + o.e },
            None => Dec::from_f64(self.to_f64() * o.to_f64()),
        }
    }

    /// `DivRound(o, 16)`: half away from zero at 16 decimal places.
    fn div(self, o: &Dec) -> Dec {
        // self / o = (m1 / m2) * 10^(e1 - e2); want q with exponent -16.
        let shift = self.e - o.e + 16;
        let num = if shift >= 0 {
            10i128
                .checked_pow(shift as u32)
                .and_then(|p| self.m.checked_mul(p))
        } else {
            10i128.checked_pow((-shift) as u32).map(|p| self.m / p)
        };
        let Some(num) = num.and_then(|n| n.checked_mul(10)) else {
            return Dec::from_f64(self.to_f64() / o.to_f64());
        };
        let q10 = num / o.m;
        let q = (q10 + if q10 >= 0 { 5 } else { -5 }) / 10;
        Dec { m: q, e: -16 }
    }
}

fn decimal_fold(first: &Value, rest: &[Value], op: fn(Dec, &Dec) -> Dec) -> f64 {
    let mut acc = Dec::from_f64(to_float64(first));
    for x in rest {
        acc = op(acc, &Dec::from_f64(to_float64(x)));
    }
    acc.to_f64()
}

fn until_step(start: i64, stop: i64, step: i64) -> Value {
    let mut v = Vec::new();
    if stop < start {
        if step >= 0 {
            return Value::list(v);
        }
        let mut i = start;
        while i > stop && v.len() < 10_000_000 {
            v.push(Value::Int(i));
            i += step;
        }
        return Value::list(v);
    }
    if step <= 0 {
        return Value::list(v);
    }
    let mut i = start;
    while i < stop && v.len() < 10_000_000 {
        v.push(Value::Int(i));
        i += step;
    }
    Value::list(v)
}

/// Sprig's `seq`, like the Unix tool.
fn seq(start: i64, step: i64, end: i64) -> Vec<i64> {
    let mut out = Vec::new();
    if step == 0 {
        return out;
    }
    let step = if end < start && step > 0 { -step } else { step };
    let mut i = start;
    if step > 0 {
        while i <= end && out.len() < 10_000_000 {
            out.push(i);
            i += step;
        }
    } else {
        while i >= end && out.len() < 10_000_000 {
            out.push(i);
            i += step;
        }
    }
    out
}

/// Go's `strings.Replace(s, old, new, -1)`: an empty `old` inserts `new`
/// between characters.
fn go_replace(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}

/// Go's `strings.SplitN(s, sep, n)` (`n < 0`: all parts); an empty `sep`
/// splits after each character.
fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = s.chars().map(String::from).collect();
        if n > 0 && chars.len() as i64 > n {
            let mut out: Vec<String> = chars[..n as usize - 1].to_vec();
            out.push(s.chars().skip(n as usize - 1).collect());
            return out;
        }
        return chars;
    }
    if n < 0 {
        return s.split(sep).map(String::from).collect();
    }
    s.splitn(n as usize, sep).map(String::from).collect()
}

/// Masterminds/goutils' `Wrap`/`WrapCustom` with long words wrapped.
fn wrap(s: &str, width: i64, newline: &str) -> String {
    let width = if width < 1 { 1 } else { width as usize };
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut offset = 0;
    while chars.len() - offset > width {
        if chars[offset] == ' ' {
            offset += 1;
            continue;
        }
        let window: String = chars[offset..=offset + width].iter().collect();
        match window.rfind(' ').map(|b| window[..b].chars().count()) {
            Some(sp) if sp > 0 => {
                out.extend(&chars[offset..offset + sp]);
                out.push_str(newline);
                offset += sp + 1;
            }
            _ => {
                // Look past the width for the next space.
                match chars[offset + width..].iter().position(|c| *c == ' ') {
                    Some(p) => {
                        let sp = width + p;
                        out.extend(&chars[offset..offset + sp]);
                        out.push_str(newline);
                        offset += sp + 1;
                    }
                    None => {
                        out.extend(&chars[offset..]);
                        offset = chars.len();
                    }
                }
            }
        }
    }
    out.extend(&chars[offset..]);
    out
}

fn go_base64_error(e: &data_encoding::DecodeError) -> String {
    format!("illegal base64 data at input byte {}", e.position)
}

/// Go's `path.Base`.
pub fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Go's `path.Dir`.
pub fn path_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    path_clean(dir)
}

/// Go's `path.Clean`.
pub fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_ints_parse_with_base_prefixes() {
        assert_eq!(parse_go_int("0x1F"), Some(31));
        assert_eq!(parse_go_int("010"), Some(8));
        assert_eq!(parse_go_int("-12"), Some(-12));
        assert_eq!(parse_go_int("1_000"), Some(1000));
        assert_eq!(parse_go_int("_1"), None);
        assert_eq!(parse_go_int("1__0"), None);
        assert_eq!(parse_go_int("0x_1F"), Some(31));
        assert_eq!(to_int64(&Value::from("3.7")), 3);
        assert_eq!(to_int64(&Value::from("abc")), 0);
    }

    #[test]
    fn merge_fills_only_what_dst_lacks_and_overwrite_replaces() {
        let dst = Value::from_json(&serde_json::json!({"a": 1, "b": {"x": 1}, "e": ""}));
        let src = Value::from_json(
            &serde_json::json!({"a": 2, "b": {"x": 2, "y": 2}, "c": 3, "e": "set"}),
        );
        mergo(&dst, &src, false);
        assert_eq!(
            dst,
            Value::from_json(
                &serde_json::json!({"a": 1, "b": {"x": 1, "y": 2}, "c": 3, "e": "set"})
            )
        );
        let dst = Value::from_json(&serde_json::json!({"a": 1, "b": {"x": 1}}));
        mergo(&dst, &src, true);
        assert_eq!(
            dst,
            Value::from_json(
                &serde_json::json!({"a": 2, "b": {"x": 2, "y": 2}, "c": 3, "e": "set"})
            )
        );
    }

    #[test]
    fn paths_as_go_cleans_them() {
        assert_eq!(path_clean("a/../b/./c/"), "b/c");
        assert_eq!(path_base("a/b.txt"), "b.txt");
        assert_eq!(path_dir("a/b/c"), "a/b");
        assert_eq!(path_dir("c"), ".");
    }
}

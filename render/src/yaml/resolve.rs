//! What a plain YAML scalar means, as the Go YAML libraries Kubernetes tools
//! use decide it, and how Go writes the numbers back.
//!
//! Two dialects matter:
//! - [`Schema::Kubernetes`]: `sigs.k8s.io/yaml`, which is go-yaml v2 with the
//!   YAML 1.1 types (`yes`/`on`/`y` are booleans, `0755` is octal). kubectl,
//!   the API server and kustomize's reading of `kustomization.yaml` use it.
//! - [`Schema::Kyaml`]: go-yaml v3, which kustomize's kyaml reads resources and
//!   strategic merge patches with: only `true`/`false` spellings are booleans,
//!   and a plain timestamp becomes a `time.Time` that JSON writes in RFC 3339.
//!
//! Numbers are then carried as JSON carries them to the API server (and as
//! kustomize prints them): a float whose JSON text is an integer becomes that
//! integer (`1.0` -> `1`, `1e3` -> `1000`), other floats print as Go's
//! shortest `%g` (`1.2345675e+06`).

use serde_json::{Number, Value};

/// Which Go YAML library's reading of plain scalars to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `sigs.k8s.io/yaml` (go-yaml v2, YAML 1.1 types): kubectl, the API server, kustomization files.
    Kubernetes,
    /// kustomize's kyaml (go-yaml v3): resources and strategic merge patches inside a build.
    Kyaml,
}

/// A resolved plain scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A go-yaml v3 timestamp, already in the RFC 3339 form JSON gives it.
    Timestamp(String),
    Str,
}

/// Resolves an untagged plain scalar as go-yaml's `resolve` does.
pub fn resolve_plain(schema: Schema, s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        _ => {}
    }
    if schema == Schema::Kubernetes {
        match s {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Scalar::Bool(true),
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Scalar::Bool(false),
            _ => {}
        }
    }
    match s.as_bytes()[0] {
        b'.' => match go_parse_float(s) {
            Some(f) => Scalar::Float(f),
            None => Scalar::Str,
        },
        b'0'..=b'9' | b'+' | b'-' => {
            if schema == Schema::Kyaml
                && let Some(t) = timestamp(s)
            {
                return Scalar::Timestamp(t);
            }
            // go-yaml drops every underscore before trying the number forms.
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                return Scalar::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Scalar::Uint(u);
            }
            if yaml_style_float(&plain)
                && let Ok(f) = plain.parse::<f64>()
                && f.is_finite()
            {
                return Scalar::Float(f);
            }
            Scalar::Str
        }
        _ => Scalar::Str,
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, go-yaml's float syntax.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseInt(s, 0, 64)` (no underscores: go-yaml removed them).
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mag = parse_unsigned_base0(body)?;
    if neg {
        if mag <= i64::MAX as u64 + 1 {
            Some((mag as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(mag).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: no sign allowed.
fn go_parse_uint(s: &str) -> Option<u64> {
    if s.starts_with(['+', '-']) {
        return None;
    }
    parse_unsigned_base0(s)
}

/// Digits after Go's base-0 prefix rules: `0x`, `0o`, `0b` (any case), a
/// leading `0` for octal, else decimal.
fn parse_unsigned_base0(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (radix, digits) = if b.len() >= 2 && b[0] == b'0' {
        match b[1].to_ascii_lowercase() {
            b'x' => (16, &s[2..]),
            b'o' => (8, &s[2..]),
            b'b' => (2, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.bytes().all(|c| (c as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for a string starting with `.` (the only
/// place go-yaml calls it without its own syntax check): decimal digits with
/// underscores only between digits, an optional exponent; out of range fails.
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut mantissa_digits = 0;
    let mut clean = String::with_capacity(s.len());
    let mut prev_digit = false;
    let mut seen_dot = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            mantissa_digits += 1;
            prev_digit = true;
            clean.push(c as char);
        } else if c == b'_' {
            if !prev_digit || !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            prev_digit = false;
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
            prev_digit = false;
            clean.push('.');
        } else {
            break;
        }
        i += 1;
    }
    if mantissa_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        clean.push('e');
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            clean.push(b[i] as char);
            i += 1;
        }
        let mut exp_digits = 0;
        prev_digit = false;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() {
                exp_digits += 1;
                prev_digit = true;
                clean.push(c as char);
            } else if c == b'_' {
                if !prev_digit || !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                prev_digit = false;
            } else {
                return None;
            }
            i += 1;
        }
        if exp_digits == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    let f: f64 = clean.parse().ok()?;
    f.is_finite().then_some(f)
}

/// The value a finite float reaches the API server as: Go's `json.Marshal`
/// writes it, and a reader that picks number types (go-yaml, as kustomize's
/// output and the API server's unstructured decoding do) reads that text back.
pub fn float_value(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f == 0.0 {
        return Some(Value::Number(0.into()));
    }
    if f.abs() < 1e21 && f.fract() == 0.0 {
        // JSON writes it without a fraction: shortest digits padded with zeros.
        let (digits, dp) = shortest_digits(f);
        let mut text = String::with_capacity(dp.max(0) as usize + 1);
        if f < 0.0 {
            text.push('-');
        }
        text.push_str(&digits);
        for _ in digits.len() as i32..dp {
            text.push('0');
        }
        if let Some(i) = go_parse_int(&text) {
            return Some(Value::Number(i.into()));
        }
        if let Some(u) = go_parse_uint(&text) {
            return Some(Value::Number(u.into()));
        }
    }
    Number::from_f64(f).map(Value::Number)
}

/// Shortest round-trip decimal digits of `|f|` (no leading or trailing
/// zeros) and the decimal point position: `|f| = 0.DIGITS * 10^dp`.
fn shortest_digits(f: f64) -> (String, i32) {
    split_exp(&format!("{:e}", f.abs()))
}

fn shortest_digits_f32(f: f32) -> (String, i32) {
    split_exp(&format!("{:e}", f.abs()))
}

fn split_exp(e: &str) -> (String, i32) {
    let (mant, exp) = e.split_once('e').unwrap_or((e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), exp + 1)
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: how go-yaml and kustomize print a float.
pub fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, dp) = shortest_digits(f);
    format_g(f < 0.0, &digits, dp)
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, which `sigs.k8s.io/yaml` uses
/// for float mapping keys.
fn go_format_float32(f: f64) -> String {
    let g = f as f32;
    if g.is_nan() {
        return ".nan".into();
    }
    if g.is_infinite() {
        return if g > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if g == 0.0 {
        return if g.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, dp) = shortest_digits_f32(g);
    format_g(g < 0.0, &digits, dp)
}

fn format_g(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        out.push_str(&a.to_string());
        return out;
    }
    let nd = digits.len() as i32;
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..-dp {
            out.push('0');
        }
        out.push_str(digits);
    } else if dp >= nd {
        out.push_str(digits);
        for _ in nd..dp {
            out.push('0');
        }
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// A mapping key as `sigs.k8s.io/yaml` turns it into a JSON object key.
pub fn kubernetes_key(s: &Scalar, text: &str) -> Result<String, String> {
    match s {
        Scalar::Str | Scalar::Timestamp(_) => Ok(text.to_string()),
        Scalar::Int(i) => Ok(i.to_string()),
        Scalar::Float(f) => Ok(go_format_float32(*f)),
        Scalar::Bool(b) => Ok(b.to_string()),
        Scalar::Uint(_) => Err(format!(
            "mapping key {text} is an unsigned 64-bit integer, which Kubernetes cannot read as a key"
        )),
        Scalar::Null => Err(format!(
            "mapping key {text:?} is null, which Kubernetes cannot read as a key"
        )),
    }
}

/// go-yaml v3's timestamp forms, as JSON writes the `time.Time` they become
/// (RFC 3339 with nanoseconds, trailing zeros dropped, `Z` for UTC).
///
/// Forms: `2006-1-2T15:4:5.999999999Z07:00` (also with a lower-case `t`),
/// `2006-1-2 15:4:5.999999999` (UTC), `2006-1-2` (midnight UTC).
pub fn timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let year: u32 = s[..4].parse().ok()?;
    let mut i = 5;
    let month = num12(b, &mut i)?;
    if b.get(i) != Some(&b'-') {
        return None;
    }
    i += 1;
    let day = num12(b, &mut i)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in(month, year) {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if i == b.len() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let zoned = match b[i] {
        b'T' | b't' => {
            i += 1;
            true
        }
        b' ' => {
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            false
        }
        _ => return None,
    };
    let hour = num12(b, &mut i)?;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let min = num12(b, &mut i)?;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let sec = num12(b, &mut i)?;
    if hour >= 24 || min >= 60 || sec >= 60 {
        return None;
    }
    let mut frac = String::new();
    if matches!(b.get(i), Some(b'.') | Some(b',')) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            if frac.len() < 9 {
                frac.push(b[i] as char);
            }
            i += 1;
        }
    }
    let frac = frac.trim_end_matches('0');
    let zone = if zoned {
        match b.get(i) {
            Some(b'Z') => {
                i += 1;
                "Z".to_string()
            }
            Some(&sign @ (b'+' | b'-')) => {
                if b.len() < i + 6 || b[i + 3] != b':' {
                    return None;
                }
                // `get`: the zone may split a multi-byte character (found by fuzzing).
                let hh = s.get(i + 1..i + 3)?;
                let mm = s.get(i + 4..i + 6)?;
                if !hh.bytes().chain(mm.bytes()).all(|c| c.is_ascii_digit()) {
                    return None;
                }
                i += 6;
                if hh == "00" && mm == "00" {
                    "Z".to_string()
                } else {
                    format!("{}{hh}:{mm}", sign as char)
                }
            }
            _ => return None,
        }
    } else {
        "Z".to_string()
    };
    if i != b.len() {
        return None;
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    Some(format!("{date}T{hour:02}:{min:02}:{sec:02}{frac}{zone}"))
}

/// One or two digits, as Go's time layouts `1`, `2`, `15`, `4`, `5` read them.
fn num12(b: &[u8], i: &mut usize) -> Option<u32> {
    let d0 = *b.get(*i).filter(|c| c.is_ascii_digit())?;
    *i += 1;
    let mut n = u32::from(d0 - b'0');
    if let Some(d1) = b.get(*i).filter(|c| c.is_ascii_digit()) {
        n = n * 10 + u32::from(d1 - b'0');
        *i += 1;
    }
    Some(n)
}

fn days_in(month: u32, year: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Scalar::*;

    /// go-yaml v2's whole resolve table (YAML 1.1 bool, int, float, null as
    /// go-yaml implements them), and where go-yaml v3 (kyaml) reads the same
    /// text differently.
    #[test]
    fn resolve_table_matches_go_yaml_v2_and_v3() {
        let both = |s: &str, want: Scalar| (s.to_string(), want.clone(), want);
        let v2_only_bool = |s: &str, b: bool| (s.to_string(), Bool(b), Str);
        let mut table = vec![
            // null
            both("", Null),
            both("~", Null),
            both("null", Null),
            both("Null", Null),
            both("NULL", Null),
            both("nULL", Str),
            both("nil", Str),
            // bool: the YAML 1.2 spellings are shared
            both("true", Bool(true)),
            both("True", Bool(true)),
            both("TRUE", Bool(true)),
            both("false", Bool(false)),
            both("False", Bool(false)),
            both("FALSE", Bool(false)),
            both("tRUE", Str),
            both("yES", Str),
            both("oN", Str),
            both("Y2", Str),
            // decimal, sign, underscores (go-yaml removes every `_`)
            both("0", Int(0)),
            both("-0", Int(0)),
            both("+0", Int(0)),
            both("12", Int(12)),
            both("+12", Int(12)),
            both("-12", Int(-12)),
            both("1_000", Int(1000)),
            both("1__0", Int(10)),
            both("1_", Int(1)),
            both("_1", Str),
            both("9223372036854775807", Int(i64::MAX)),
            both("-9223372036854775808", Int(i64::MIN)),
            both("9223372036854775808", Uint(9_223_372_036_854_775_808)),
            both("18446744073709551615", Uint(u64::MAX)),
            both("-9223372036854775809", Float(-9_223_372_036_854_775_809.0)),
            both("18446744073709551616", Float(18_446_744_073_709_551_616.0)),
            // octal: YAML 1.1 `0755` and `0o755`
            both("0755", Int(493)),
            both("-0755", Int(-493)),
            both("0o755", Int(493)),
            both("0O17", Int(15)),
            both("08", Float(8.0)),
            both("09.5", Float(9.5)),
            both("017.5", Float(17.5)),
            both("0o8", Str),
            // hexadecimal and binary
            both("0x1F", Int(31)),
            both("0X1f", Int(31)),
            both("-0x1F", Int(-31)),
            both("0x_1F", Int(31)),
            both("0x", Str),
            both("0xG", Str),
            both("0b101", Int(5)),
            both("0B11", Int(3)),
            both("-0b101", Int(-5)),
            both("0b1_0", Int(2)),
            both("0b2", Str),
            // floats
            both("1.0", Float(1.0)),
            both("1.", Float(1.0)),
            both("2.5", Float(2.5)),
            both("-1.5", Float(-1.5)),
            both("+.5", Float(0.5)),
            both("-.5", Float(-0.5)),
            both(".5", Float(0.5)),
            both(".5_5", Float(0.55)),
            both("._5", Str),
            both(".5e3", Float(500.0)),
            both(".", Str),
            both(".e3", Str),
            both("1e3", Float(1000.0)),
            both("1E3", Float(1000.0)),
            both("1e+3", Float(1000.0)),
            both("1.5e-3", Float(0.0015)),
            both("6.8523015e+5", Float(685_230.15)),
            both("685.230_15e+03", Float(685_230.15)),
            both("1_0.5", Float(10.5)),
            both("1e", Str),
            both("1e400", Str),
            both("1e-400", Float(0.0)),
            both("0x1p3", Str),
            // YAML 1.1 sexagesimal numbers are not supported by go-yaml
            both("190:20:30", Str),
            both("1:20", Str),
            // infinity and not-a-number
            both(".nan", Float(f64::NAN)),
            both(".NaN", Float(f64::NAN)),
            both(".NAN", Float(f64::NAN)),
            both(".inf", Float(f64::INFINITY)),
            both(".Inf", Float(f64::INFINITY)),
            both(".INF", Float(f64::INFINITY)),
            both("+.inf", Float(f64::INFINITY)),
            both("+.Inf", Float(f64::INFINITY)),
            both("+.INF", Float(f64::INFINITY)),
            both("-.inf", Float(f64::NEG_INFINITY)),
            both("-.Inf", Float(f64::NEG_INFINITY)),
            both("-.INF", Float(f64::NEG_INFINITY)),
            both(".iNF", Str),
            both("inf", Str),
            both("NaN", Str),
            both("Infinity", Str),
            // strings
            both("-", Str),
            both("+", Str),
            both("abc", Str),
            both("1.2.3", Str),
            both("v1", Str),
            both("<<", Str),
        ];
        for (s, b) in [
            ("y", true),
            ("Y", true),
            ("yes", true),
            ("Yes", true),
            ("YES", true),
            ("on", true),
            ("On", true),
            ("ON", true),
            ("n", false),
            ("N", false),
            ("no", false),
            ("No", false),
            ("NO", false),
            ("off", false),
            ("Off", false),
            ("OFF", false),
        ] {
            table.push(v2_only_bool(s, b));
        }
        // Timestamps: strings for sigs.k8s.io/yaml, `time.Time` for kyaml.
        table.push((
            "2001-12-14".into(),
            Str,
            Timestamp("2001-12-14T00:00:00Z".into()),
        ));
        for (s, v2, v3) in &table {
            for (schema, want) in [(Schema::Kubernetes, v2), (Schema::Kyaml, v3)] {
                let got = resolve_plain(schema, s);
                let same = match (&got, want) {
                    (Float(a), Float(b)) => a == b || (a.is_nan() && b.is_nan()),
                    (a, b) => a == b,
                };
                assert!(same, "{schema:?} {s:?}: got {got:?}, want {want:?}");
            }
        }
    }

    #[test]
    fn floats_carry_as_json_carries_them() {
        let v = |f: f64| float_value(f).unwrap();
        for (f, want) in [
            (1.0, 1),
            (1000.0, 1000),
            (-0.0, 0),
            (-3.0, -3),
            (15_000_000.0, 15_000_000),
        ] {
            assert_eq!(v(f).as_i64(), Some(want), "{f}");
        }
        // JSON writes the shortest digits padded with zeros, so a float just
        // above i64::MAX reads back as this unsigned integer.
        assert_eq!(
            v(9_223_372_036_854_775_807.0).as_u64(),
            Some(9_223_372_036_854_776_000)
        );
        assert_eq!(
            v(123_456_789_012_345_678.0).as_i64(),
            Some(123_456_789_012_345_680)
        );
        for f in [1.5, 1e20, -1e19, 1e21, 0.1] {
            assert!(v(f).is_f64(), "{f} stays a float");
            assert_eq!(v(f).as_f64(), Some(f));
        }
        assert!(float_value(f64::NAN).is_none());
        assert!(float_value(f64::INFINITY).is_none());
    }

    #[test]
    fn floats_print_as_go_prints_them() {
        for (f, want) in [
            (1_234_567.5, "1.2345675e+06"),
            (685_230.15, "685230.15"),
            (0.0015, "0.0015"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000001, "1e-06"),
            (1e-7, "1e-07"),
            (1e20, "1e+20"),
            (2.5e20, "2.5e+20"),
            (1e21, "1e+21"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (-1.5, "-1.5"),
            (std::f64::consts::E, "2.718281828459045"),
            (100_000.5, "100000.5"),
        ] {
            assert_eq!(go_format_float(f), want, "{f}");
        }
        assert_eq!(go_format_float32(1.1), "1.1");
        assert_eq!(go_format_float32(123_456_789.0), "1.2345679e+08");
    }

    #[test]
    fn kubernetes_keys_follow_sigs_yaml() {
        let k = |s: &str| kubernetes_key(&resolve_plain(Schema::Kubernetes, s), s);
        assert_eq!(k("yes").unwrap(), "true");
        assert_eq!(k("off").unwrap(), "false");
        assert_eq!(k("0755").unwrap(), "493");
        assert_eq!(k("1.0").unwrap(), "1");
        assert_eq!(k("1e3").unwrap(), "1000");
        assert_eq!(k(".inf").unwrap(), ".inf");
        assert_eq!(k("2001-12-14").unwrap(), "2001-12-14");
        assert!(k("~").is_err());
        assert!(k("18446744073709551615").is_err());
    }

    #[test]
    fn kyaml_timestamps_become_rfc3339() {
        for (s, want) in [
            ("2001-12-14", Some("2001-12-14T00:00:00Z")),
            ("2001-1-4", Some("2001-01-04T00:00:00Z")),
            (
                "2001-12-14t21:59:43.10-05:00",
                Some("2001-12-14T21:59:43.1-05:00"),
            ),
            ("2001-12-14 21:59:43.10", Some("2001-12-14T21:59:43.1Z")),
            ("2001-12-14  21:59:43", Some("2001-12-14T21:59:43Z")),
            ("2001-12-14T21:59:43Z", Some("2001-12-14T21:59:43Z")),
            ("2001-12-14T21:59:43+00:00", Some("2001-12-14T21:59:43Z")),
            (
                "2001-12-14T21:59:43.123456789123Z",
                Some("2001-12-14T21:59:43.123456789Z"),
            ),
            ("2001-12-14T21:59:43.000Z", Some("2001-12-14T21:59:43Z")),
            ("2001-12-14T9:5:3Z", Some("2001-12-14T09:05:03Z")),
            ("2000-02-29", Some("2000-02-29T00:00:00Z")),
            ("2001-02-29", None),
            ("2001-02-30", None),
            ("2001-12-14 21:59:43.10 -5", None),
            ("12001-12-14", None),
            ("2001-12-14T24:00:00Z", None),
            ("2001-12-14T21:59:60Z", None),
            ("2001-12-14T21:59:43+0500", None),
            ("2001-12-14T21:59:43", None),
            ("2001-12-14 21:59:43Z", None),
        ] {
            assert_eq!(timestamp(s).as_deref(), want, "{s}");
        }
    }
}

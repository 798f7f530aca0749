//! Go's `fmt` for the kinds templates hold: `Sprint`, `Sprintln`, `Sprintf`
//! and the `%v` form actions print.

use super::value::Value;

/// `fmt.Sprint(v)`: what an action prints for a value.
pub fn value_string(v: &Value) -> String {
    let mut out = String::new();
    print_arg(&mut out, v, 'v', &Spec::default(), true);
    out
}

/// `fmt.Sprint(args...)`: a space between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::String(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_arg(&mut out, a, 'v', &Spec::default(), true);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln(args...)`: spaces between all operands and a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_arg(&mut out, a, 'v', &Spec::default(), true);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
    /// `%#v`: Go syntax.
    sharp_v: bool,
}

/// `fmt.Sprintf(format, args...)`, following Go's `doPrintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let f = format.as_bytes();
    let end = f.len();
    let mut out = String::new();
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut i = 0;
    while i < end {
        let lasti = i;
        while i < end && f[i] != b'%' {
            i += 1;
        }
        if i > lasti {
            out.push_str(&format[lasti..i]);
        }
        if i >= end {
            break;
        }
        i += 1; // the '%'
        let mut spec = Spec::default();
        while i < end {
            match f[i] {
                b'#' => spec.sharp = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b'-' => spec.minus = true,
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        if spec.minus {
            spec.zero = false;
        }
        let mut good_arg_num = true;
        // An explicit argument index: "[n]".
        let arg_number = |arg_num: usize, i: usize, reordered: &mut bool, good: &mut bool| {
            if i >= end || f[i] != b'[' {
                return (arg_num, i, false);
            }
            *reordered = true;
            let (index, wid, ok) = parse_arg_number(&format[i..]);
            if ok && index >= 0 && (index as usize) < args.len() {
                return (index as usize, i + wid, true);
            }
            *good = false;
            (arg_num, i + wid, ok)
        };
        let (n, ni, mut after_index) = arg_number(arg_num, i, &mut reordered, &mut good_arg_num);
        arg_num = n;
        i = ni;
        if i < end && f[i] == b'*' {
            i += 1;
            let (w, ok, n) = int_from_arg(args, arg_num);
            arg_num = n;
            if !ok {
                out.push_str("%!(BADWIDTH)");
            } else if w < 0 {
                spec.minus = true;
                spec.zero = false;
            }
            spec.wid = ok.then_some(w.unsigned_abs() as usize);
            after_index = false;
        } else {
            let (w, ni) = parse_num(f, i, end);
            spec.wid = w;
            i = ni;
            if after_index && spec.wid.is_some() {
                good_arg_num = false;
            }
        }
        if i + 1 < end && f[i] == b'.' {
            i += 1;
            if after_index {
                good_arg_num = false;
            }
            let (n, ni, ai) = arg_number(arg_num, i, &mut reordered, &mut good_arg_num);
            arg_num = n;
            i = ni;
            after_index = ai;
            if i < end && f[i] == b'*' {
                i += 1;
                let (p, ok, n) = int_from_arg(args, arg_num);
                arg_num = n;
                spec.prec = (ok && p >= 0).then_some(p.max(0) as usize);
                if !ok {
                    out.push_str("%!(BADPREC)");
                }
                after_index = false;
            } else {
                let (p, ni) = parse_num(f, i, end);
                spec.prec = Some(p.unwrap_or(0));
                i = ni;
            }
        }
        if !after_index {
            let (n, ni, _) = arg_number(arg_num, i, &mut reordered, &mut good_arg_num);
            arg_num = n;
            i = ni;
        }
        if i >= end {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('?');
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !good_arg_num {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(BADINDEX)");
        } else if arg_num >= args.len() {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
        } else {
            if verb == 'v' {
                spec.sharp_v = spec.sharp;
                spec.sharp = false;
                spec.plus = false;
            }
            print_arg(&mut out, &args[arg_num], verb, &spec, true);
            arg_num += 1;
        }
    }
    if !reordered && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[arg_num..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if matches!(a, Value::Nil) {
                out.push_str("<nil>");
            } else {
                out.push_str(a.type_name());
                out.push('=');
                print_arg(&mut out, a, 'v', &Spec::default(), true);
            }
        }
        out.push(')');
    }
    out
}

/// Go's `parsenum`: a decimal number at `f[i..end]`, if any.
fn parse_num(f: &[u8], mut i: usize, end: usize) -> (Option<usize>, usize) {
    let mut n: Option<usize> = None;
    while i < end && f[i].is_ascii_digit() {
        // Go gives up on absurd widths (over 1e6).
        let v = n.unwrap_or(0) * 10 + (f[i] - b'0') as usize;
        if v > 1_000_000 {
            return (None, end);
        }
        n = Some(v);
        i += 1;
    }
    (n, i)
}

/// Go's `parseArgNumber`: the zero-based index in "[n]", the bytes it
/// takes, and whether it parsed.
fn parse_arg_number(format: &str) -> (i64, usize, bool) {
    let f = format.as_bytes();
    if f.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..f.len() {
        if f[i] == b']' {
            let (n, ni) = parse_num(f, 1, i);
            return match n {
                Some(n) if ni == i => (n as i64 - 1, i + 1, true),
                _ => (0, i + 1, false),
            };
        }
    }
    (0, 1, false)
}

/// Go's `intFromArg`: a `*` width or precision.
fn int_from_arg(args: &[Value], arg_num: usize) -> (i64, bool, usize) {
    match args.get(arg_num) {
        Some(Value::Int(n)) if (-1_000_000..=1_000_000).contains(n) => (*n, true, arg_num + 1),
        Some(_) => (0, false, arg_num + 1),
        None => (0, false, arg_num),
    }
}

fn bad_verb(out: &mut String, v: &Value, verb: char, spec: &Spec) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if matches!(v, Value::Nil) {
        out.push_str("<nil>");
    } else {
        out.push_str(v.type_name());
        out.push('=');
        print_arg(out, v, 'v', spec, true);
    }
    out.push(')');
}

/// `%#v`: the value as Go syntax.
fn go_syntax(out: &mut String, v: &Value, spec: &Spec, top: bool) {
    match v {
        Value::Nil if top => pad(out, "<nil>", spec, false),
        Value::Nil => out.push_str("interface {}(nil)"),
        Value::String(s) => pad(out, &quote(s), spec, false),
        Value::List(l) => {
            out.push_str("[]interface {}{");
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                go_syntax(out, e, spec, false);
            }
            out.push('}');
        }
        Value::Map(m) => {
            out.push_str("map[string]interface {}{");
            for (i, (k, e)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                pad(out, &quote(k), spec, false);
                out.push(':');
                go_syntax(out, e, spec, false);
            }
            out.push('}');
        }
        v => {
            let mut plain = spec.clone();
            plain.sharp_v = false;
            print_arg(out, v, 'v', &plain, top);
        }
    }
}

fn print_arg(out: &mut String, v: &Value, verb: char, spec: &Spec, top: bool) {
    if verb == 'v' && spec.sharp_v {
        return go_syntax(out, v, spec, top);
    }
    if verb == 'T' {
        let t = if matches!(v, Value::Nil) {
            "<nil>"
        } else {
            v.type_name()
        };
        pad(out, t, spec, false);
        return;
    }
    match v {
        Value::Nil => {
            if !top || verb == 'v' {
                pad(out, "<nil>", spec, false);
            } else {
                bad_verb(out, v, verb, spec);
            }
        }
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, spec, false),
            _ => bad_verb(out, v, verb, spec),
        },
        Value::Int(i) => fmt_integer(out, v, *i, verb, spec),
        Value::Float(f) => match verb {
            'v' => fmt_float(out, *f, 'g', None, spec),
            'x' | 'X' => fmt_float(out, *f, verb, spec.prec, spec),
            'g' | 'G' | 'e' | 'E' | 'f' | 'F' => {
                let default = if matches!(verb, 'g' | 'G') {
                    None
                } else {
                    Some(6)
                };
                fmt_float(out, *f, verb, spec.prec.or(default), spec)
            }
            _ => bad_verb(out, v, verb, spec),
        },
        Value::String(s) => fmt_string(out, v, s, verb, spec),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_arg(out, e, verb, spec, false);
            }
            out.push(']');
        }
        Value::Object(o) if o.bytes().is_some() && matches!(verb, 's' | 'q' | 'x' | 'X') => {
            let text = super::value::go_string_from_bytes(o.bytes().unwrap_or(&[]));
            fmt_string(out, v, &text, verb, spec)
        }
        Value::Object(o) => match o.stringer() {
            Some(text) if matches!(verb, 'v' | 's' | 'q') => fmt_string(out, v, &text, verb, spec),
            _ if o.is_pointer() => pad(out, &format!("&{}", o.print()), spec, false),
            _ => pad(out, &o.print(), spec, false),
        },
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_arg(out, &Value::string(k.as_str()), verb, spec, false);
                out.push(':');
                print_arg(out, e, verb, spec, false);
            }
            out.push(']');
        }
    }
}

/// Pads `s` to the width, with spaces or (`zero`) zeros on the left.
fn pad(out: &mut String, s: &str, spec: &Spec, numeric_zero: bool) {
    let width = s.chars().count();
    let Some(w) = spec.wid.filter(|w| *w > width) else {
        out.push_str(s);
        return;
    };
    let fill = w - width;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero || numeric_zero {
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(s);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

fn fmt_integer(out: &mut String, v: &Value, i: i64, verb: char, spec: &Spec) {
    let (base, upper) = match verb {
        'v' | 'd' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            pad(out, &c.to_string(), spec, false);
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            pad(out, &quote_char(c), spec, false);
            return;
        }
        'U' => {
            let mut s = format!("U+{:04X}", i);
            if let (true, Some(c)) = (spec.sharp, char::from_u32(i as u32)) {
                s.push_str(&format!(" '{c}'"));
            }
            pad(out, &s, spec, false);
            return;
        }
        _ => return bad_verb(out, v, verb, spec),
    };
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match base {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        16 if upper => format!("{u:X}"),
        16 => format!("{u:x}"),
        _ => u.to_string(),
    };
    let mut prec = 0usize;
    if let Some(p) = spec.prec {
        if p == 0 && u == 0 {
            let mut s = spec.clone();
            s.zero = false;
            pad(out, "", &s, false);
            return;
        }
        prec = p;
    } else if let (true, Some(w)) = (spec.zero && !spec.minus, spec.wid) {
        prec = w;
        if neg || spec.plus || spec.space {
            prec = prec.saturating_sub(1);
        }
    }
    if digits.len() < prec {
        digits = "0".repeat(prec - digits.len()) + &digits;
    }
    let mut prefix = String::new();
    if spec.sharp {
        match verb {
            'b' => prefix.push_str("0b"),
            'o' if !digits.starts_with('0') => prefix.push('0'),
            'x' => prefix.push_str("0x"),
            'X' => prefix.push_str("0X"),
            _ => {}
        }
    }
    if verb == 'O' {
        prefix.push_str("0o");
    }
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let s = format!("{sign}{prefix}{digits}");
    let mut sp = spec.clone();
    sp.zero = false;
    pad(out, &s, &sp, false);
}

/// Decimal digits of `f` (no sign, no trailing zeros) and the position of
/// the decimal point, rounded to `sig` significant digits or shortest.
fn digits_of(f: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        Some(n) => format!("{:.*e}", n.saturating_sub(1), f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (String::new(), 0);
    }
    (digits, exp + 1)
}

fn fmt_e(digits: &str, dp: i32, prec: usize, e: char) -> String {
    let d = |i: usize| digits.as_bytes().get(i).map(|b| *b as char).unwrap_or('0');
    let mut s = String::new();
    s.push(d(0));
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            s.push(d(i));
        }
    }
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    s.push(e);
    s.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        s.push('0');
    }
    s.push_str(&a.to_string());
    s
}

fn fmt_f(digits: &str, dp: i32, prec: usize) -> String {
    let d = |i: i32| {
        if i < 0 {
            '0'
        } else {
            digits
                .as_bytes()
                .get(i as usize)
                .map(|b| *b as char)
                .unwrap_or('0')
        }
    };
    let mut s = String::new();
    if dp > 0 {
        for i in 0..dp {
            s.push(d(i));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 0..prec as i32 {
            s.push(d(dp + i));
        }
    }
    s
}

/// `strconv.FormatFloat(f, verb, prec, 64)` for finite `f`, without sign.
fn format_float_abs(f: f64, verb: char, prec: Option<usize>) -> String {
    match verb {
        'x' | 'X' => {
            let s = hex_float(f.abs(), prec);
            if verb == 'X' {
                s.to_ascii_uppercase()
            } else {
                s
            }
        }
        'e' | 'E' => {
            let (digits, dp) = match prec {
                Some(p) => digits_of(f, Some(p + 1)),
                None => digits_of(f, None),
            };
            let p = prec.unwrap_or(digits.len().saturating_sub(1));
            fmt_e(&digits, dp, p, verb)
        }
        'f' | 'F' => match prec {
            Some(p) => format!("{:.*}", p, f.abs()),
            None => {
                let (digits, dp) = digits_of(f, None);
                fmt_f(&digits, dp, (digits.len() as i32 - dp).max(0) as usize)
            }
        },
        _ => {
            let shortest = prec.is_none();
            let (digits, dp) = match prec {
                Some(p) => digits_of(f, Some(p.max(1))),
                None => digits_of(f, None),
            };
            let nd = digits.len() as i32;
            let mut p = match prec {
                Some(p) => p.max(1) as i32,
                None => nd,
            };
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            let e = if verb == 'G' { 'E' } else { 'e' };
            if digits.is_empty() {
                return "0".into();
            }
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                return fmt_e(&digits, dp, (p - 1).max(0) as usize, e);
            }
            if p > dp {
                p = nd;
            }
            fmt_f(&digits, dp, (p - dp).max(0) as usize)
        }
    }
}

/// `strconv.FormatFloat(f, 'x', prec, 64)` for finite, non-negative `f`.
fn hex_float(f: f64, prec: Option<usize>) -> String {
    let bits = f.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1u64 << 52) - 1);
    if exp == 0 && mant == 0 {
        let digits = prec
            .map(|p| format!(".{}", "0".repeat(p)))
            .unwrap_or_default();
        return format!("0x0{}p+00", if prec == Some(0) { "" } else { &digits });
    }
    if exp == 0 {
        // Subnormal: normalize so the leading digit is 1.
        exp = -1022;
        while mant & (1u64 << 52) == 0 {
            mant <<= 1;
            exp -= 1;
        }
        mant &= (1u64 << 52) - 1;
    } else {
        exp -= 1023;
    }
    // mant holds 52 fraction bits: 13 hex digits.
    let mut lead = 1u64;
    let mut frac = mant;
    let mut ndig = 13usize;
    if let Some(p) = prec.filter(|p| *p < 13) {
        let shift = 4 * (13 - p);
        let full = (lead << 52) | frac;
        let rem = full & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        let mut kept = full >> shift;
        if rem > half || (rem == half && kept & 1 == 1) {
            kept += 1;
        }
        if kept >> (4 * p) >= 2 {
            kept >>= 1;
            exp += 1;
        }
        lead = kept >> (4 * p);
        frac = kept & ((1u64 << (4 * p)) - 1);
        ndig = p;
    }
    let mut digits = if ndig == 0 {
        String::new()
    } else {
        format!("{:0width$x}", frac, width = ndig)
    };
    match prec {
        None => {
            while digits.ends_with('0') {
                digits.pop();
            }
        }
        Some(p) => {
            while digits.len() < p {
                digits.push('0');
            }
        }
    }
    let sign = if exp < 0 { '-' } else { '+' };
    let a = exp.unsigned_abs();
    let e = if a < 10 {
        format!("0{a}")
    } else {
        a.to_string()
    };
    if digits.is_empty() {
        format!("0x{lead}p{sign}{e}")
    } else {
        format!("0x{lead}.{digits}p{sign}{e}")
    }
}

fn fmt_float(out: &mut String, f: f64, verb: char, prec: Option<usize>, spec: &Spec) {
    let prec = spec.prec.or(prec);
    if f.is_nan() || f.is_infinite() {
        let mut s = if f.is_nan() {
            "NaN".to_string()
        } else {
            "Inf".to_string()
        };
        let sign = if f.is_nan() {
            if spec.plus {
                "+"
            } else if spec.space {
                " "
            } else {
                ""
            }
        } else if f < 0.0 {
            "-"
        } else if spec.plus {
            "+"
        } else if spec.space {
            " "
        } else {
            ""
        };
        s.insert_str(0, sign);
        let mut sp = spec.clone();
        sp.zero = false;
        pad(out, &s, &sp, false);
        return;
    }
    let num = format_float_abs(f, verb, prec);
    let neg = f.is_sign_negative();
    let sign = if neg {
        Some('-')
    } else if spec.plus {
        Some('+')
    } else if spec.space {
        Some(' ')
    } else {
        None
    };
    match sign {
        Some(c) => {
            let len = num.chars().count() + 1;
            if spec.zero && !spec.minus && spec.wid.is_some_and(|w| w > len) {
                out.push(c);
                out.extend(std::iter::repeat_n('0', spec.wid.unwrap_or(0) - len));
                out.push_str(&num);
            } else {
                pad(out, &format!("{c}{num}"), spec, false);
            }
        }
        None => pad(out, &num, spec, false),
    }
}

fn fmt_string(out: &mut String, v: &Value, s: &str, verb: char, spec: &Spec) {
    let truncated: String;
    let s = match spec.prec {
        Some(p) if matches!(verb, 's' | 'v' | 'x' | 'X' | 'q') => {
            truncated = s.chars().take(p).collect();
            truncated.as_str()
        }
        _ => s,
    };
    match verb {
        'v' if spec.sharp => pad(out, &quote(s), spec, false),
        'v' | 's' => pad(out, s, spec, false),
        'q' => {
            let q = if spec.sharp && can_backquote(s) {
                format!("`{s}`")
            } else if spec.plus {
                quote_ascii(s)
            } else {
                quote(s)
            };
            pad(out, &q, spec, false)
        }
        'x' | 'X' => {
            let mut h = String::new();
            for (i, b) in s.bytes().enumerate() {
                if spec.space && i > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            pad(out, &h, spec, false)
        }
        _ => bad_verb(out, v, verb, spec),
    }
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !is_control(c)))
}

fn is_control(c: char) -> bool {
    c.is_control()
}

/// Whether Go's `strconv.IsPrint` holds, closely enough for quoting.
pub(super) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}')
}

fn escape_char(out: &mut String, c: char, quote: char) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_char(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// `strconv.QuoteToASCII`.
fn quote_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() {
            escape_char(&mut out, c, '"');
        } else if (c as u32) < 0x10000 {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push_str(&format!("\\U{:08x}", c as u32));
        }
    }
    out.push('"');
    out
}

fn quote_char(c: char) -> String {
    let mut out = String::from("'");
    escape_char(&mut out, c, '\'');
    out.push('\'');
    out
}

//! Helm's `toYaml`: `sigs.k8s.io/yaml`'s `Marshal`, which writes the value
//! as JSON, reads the JSON back with go-yaml v2 and emits it with go-yaml
//! v2's emitter. The output is go-yaml v2's byte for byte, because charts
//! hash it (`sha256sum` of a rendered ConfigMap in an annotation): keys in
//! its natural order (`a2` before `a10`), strings plain, single- or
//! double-quoted by its rules, multi-line strings as literal blocks, long
//! lines folded at 80 columns, numbers as JSON carried them.

use std::cmp::Ordering;

use super::json::go_json_float;
use super::template::Value;
use crate::yaml::{Scalar, Schema, go_format_float, resolve_plain};

const BEST_INDENT: usize = 2;
const BEST_WIDTH: usize = 80;

/// `sigs.k8s.io/yaml.Marshal(v)`, with the trailing newline (Helm trims it).
pub fn marshal(v: &Value) -> String {
    emit(v, false)
}

/// Helm's `toYamlPretty`: go-yaml v3's encoder with an indent of 2, on the
/// value itself (no JSON round trip): sequences indented under their key,
/// floats as `%g`, YAML 1.1 booleans still quoted.
pub fn marshal_pretty(v: &Value) -> String {
    emit(v, true)
}

fn emit(v: &Value, pretty: bool) -> String {
    let mut e = Emitter {
        pretty,
        ..Emitter::default()
    };
    e.node(v, Ctx::Root, 0);
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    e.out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The document's root node.
    Root,
    /// A mapping's value, after `key:`.
    MapValue,
    /// A sequence item, after `- `.
    SeqItem,
}

#[derive(Default)]
struct Emitter {
    out: String,
    /// Characters written on the current line.
    column: usize,
    /// go-yaml v3 with indent 2 (`toYamlPretty`) rather than v2.
    pretty: bool,
}

/// What a JSON round trip makes of a scalar before go-yaml v2 prints it.
enum Scal {
    Null,
    Bool(bool),
    /// An integer or a float, already in go-yaml's text.
    Number(String),
    Str(String),
}

fn scalar_of(v: &Value) -> Option<Scal> {
    Some(match v {
        Value::Nil => Scal::Null,
        Value::Bool(b) => Scal::Bool(*b),
        Value::Int(i) => Scal::Number(i.to_string()),
        Value::Float(f) => Scal::Number(float_text(*f)),
        Value::String(s) => Scal::Str(s.to_string()),
        // Go's json.Marshal of a struct pointer: not something charts feed
        // to toYaml; fleet's objects have no JSON form.
        Value::Object(_) => Scal::Null,
        Value::List(_) | Value::Map(_) => return None,
    })
}

/// A float as JSON writes it and go-yaml v2 reads and writes it back: an
/// integer text stays an integer (within 64 bits), anything else is a
/// float printed with `%g`.
fn float_text(f: f64) -> String {
    if !f.is_finite() {
        // json.Marshal fails on these; Helm's toYaml then gives "".
        return String::new();
    }
    let json = go_json_float(f);
    if !json.contains(['.', 'e', 'E'])
        && (json.parse::<i64>().is_ok() || json.parse::<u64>().is_ok())
    {
        return json;
    }
    go_format_float(f)
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
    }

    fn puts(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }

    fn newline(&mut self) {
        self.put('\n');
    }

    fn pad_to(&mut self, indent: usize) {
        while self.column < indent {
            self.put(' ');
        }
    }

    /// Emits a node whose first character goes where the cursor is (after
    /// `key:` or `- `, or at the start of the document); `indent` is the
    /// indentation of the collection holding it.
    fn node(&mut self, v: &Value, ctx: Ctx, indent: usize) {
        match v {
            Value::Map(m) => {
                let m = m.borrow();
                if m.is_empty() {
                    self.scalar_text_after(ctx, "{}");
                    return;
                }
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_by(|a, b| natural_cmp(a.0, b.0));
                // A mapping's indentation: a nested mapping goes 2 deeper,
                // one in a sequence item starts on the item's line.
                let map_indent = match ctx {
                    Ctx::Root => 0,
                    Ctx::MapValue => indent + BEST_INDENT,
                    Ctx::SeqItem => indent + BEST_INDENT,
                };
                if ctx == Ctx::SeqItem {
                    self.put(' ');
                }
                for (i, (k, val)) in entries.into_iter().enumerate() {
                    if i > 0 || ctx == Ctx::MapValue {
                        self.newline_if_needed();
                        self.pad_to(map_indent);
                    }
                    self.key(k, map_indent);
                    self.put(':');
                    self.node(val, Ctx::MapValue, map_indent);
                }
            }
            Value::List(l) => {
                if l.is_empty() {
                    self.scalar_text_after(ctx, "[]");
                    return;
                }
                // In a mapping a sequence is not indented (`key:\n- a`).
                let seq_indent = match ctx {
                    Ctx::Root => 0,
                    Ctx::MapValue if self.pretty => indent + BEST_INDENT,
                    Ctx::MapValue => indent,
                    Ctx::SeqItem => indent + BEST_INDENT,
                };
                if ctx == Ctx::SeqItem {
                    self.put(' ');
                }
                for (i, item) in l.iter().enumerate() {
                    if i > 0 || ctx == Ctx::MapValue {
                        self.newline_if_needed();
                        self.pad_to(seq_indent);
                    }
                    self.puts("-");
                    self.node(item, Ctx::SeqItem, seq_indent);
                }
            }
            other => {
                let s = match other {
                    Value::Float(f) if self.pretty => Scal::Number(go_format_float(*f)),
                    other => scalar_of(other).unwrap_or(Scal::Null),
                };
                if ctx != Ctx::Root {
                    self.put(' ');
                }
                // A scalar's own indentation (for folded and block lines).
                let sindent = match ctx {
                    Ctx::Root => BEST_INDENT,
                    _ => indent + BEST_INDENT,
                };
                match s {
                    Scal::Null => self.puts("null"),
                    Scal::Bool(b) => self.puts(if b { "true" } else { "false" }),
                    Scal::Number(n) => self.puts(&n),
                    Scal::Str(s) => self.string(&s, sindent, false),
                }
            }
        }
    }

    fn newline_if_needed(&mut self) {
        if self.column > 0 {
            self.newline();
        }
    }

    fn scalar_text_after(&mut self, ctx: Ctx, text: &str) {
        if ctx != Ctx::Root {
            self.put(' ');
        }
        self.puts(text);
    }

    fn key(&mut self, k: &str, indent: usize) {
        self.string(k, indent + BEST_INDENT, true);
    }

    /// A string scalar, in the style go-yaml v2 picks.
    fn string(&mut self, s: &str, indent: usize, simple_key: bool) {
        let a = analyze(s);
        let can_use_plain = if self.pretty {
            resolves_to_str_v3(s) && !is_base60_float(s) && !is_old_bool(s)
        } else {
            resolves_to_str(s) && !is_base60_float(s)
        };
        let mut style = if s.contains('\n') {
            Style::Literal
        } else if can_use_plain {
            Style::Plain
        } else {
            Style::Double
        };
        if simple_key && a.multiline {
            style = Style::Double;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && simple_key)) {
            style = Style::Single;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || simple_key) {
            style = Style::Double;
        }
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.plain(s, indent, allow_breaks),
            Style::Single => self.single(s, indent, allow_breaks),
            Style::Double => self.double(s, indent, allow_breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    /// go-yaml's `write_indent` inside a scalar: a line break (unless at
    /// the indentation already) and spaces up to `indent`.
    fn write_indent(&mut self, indent: usize, indention: bool, whitespace: bool) {
        if !indention || self.column > indent || (self.column == indent && !whitespace) {
            self.newline();
        }
        self.pad_to(indent);
    }

    fn plain(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_space {
                    self.write_indent(indent, false, false);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
            i += 1;
        }
    }

    fn single(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.put('\'');
        let mut spaces = false;
        let mut breaks = false;
        let mut indention = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                    && !next_space
                {
                    self.write_indent(indent, indention, false);
                } else {
                    self.put(c);
                }
                spaces = true;
                indention = false;
            } else if is_break(c) {
                // Only strings without line breaks come here (they would be
                // literal or double-quoted), but follow go-yaml anyway.
                if !breaks && c == '\n' {
                    self.newline();
                }
                self.newline();
                indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent, indention, true);
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                indention = false;
                spaces = false;
                breaks = false;
            }
            i += 1;
        }
        self.put('\'');
    }

    fn double(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.put('"');
        let mut spaces = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    c => {
                        let v = c as u32;
                        let (letter, width) = if v <= 0xff {
                            ('x', 2)
                        } else if v <= 0xffff {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(letter);
                        self.puts(&format!("{v:0width$X}"));
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                {
                    self.write_indent(indent, false, false);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
            i += 1;
        }
        self.put('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.put('|');
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|c| *c == ' ' || is_break(*c)) {
            self.puts(&BEST_INDENT.to_string());
        }
        // Chomping: `-` without a final break, `+` with two or more.
        let n = chars.len();
        if n == 0 || !is_break(chars[n - 1]) {
            self.put('-');
        } else if n == 1 || is_break(chars[n - 2]) {
            self.put('+');
        }
        self.newline();
        let mut breaks = true;
        let mut indention = true;
        for &c in &chars {
            if is_break(c) {
                self.newline();
                indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent, indention, true);
                }
                self.put(c);
                indention = false;
                breaks = false;
            }
        }
        // A `+` block ends on a break already.
        if self.column == 0 {
            // The next node's newline_if_needed sees column 0: fine.
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// go-yaml's `is_printable` (on the character, with the emitter in unicode mode).
fn is_printable(c: char) -> bool {
    let v = c as u32;
    v == 0x0a
        || (0x20..=0x7e).contains(&v)
        || v == 0x85
        || (0xa0..=0xd7ff).contains(&v)
        || ((0xe000..=0xfffd).contains(&v) && v != 0xfeff)
        || (0x10000..=0x10ffff).contains(&v)
}

/// go-yaml v2's `yaml_emitter_analyze_scalar`, in block context.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut line_breaks = false;
    let mut special = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let (mut previous_space, mut previous_break) = (false, false);
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace =
            i + 1 >= chars.len() || is_blank(chars[i + 1]) || is_break(chars[i + 1]);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' if followed_by_whitespace => {
                    block_indicators = true;
                }
                '-' if followed_by_whitespace => {
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => {
                    block_indicators = true;
                }
                '#' if preceded_by_whitespace => {
                    block_indicators = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + 1 == chars.len() {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + 1 == chars.len() {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank(c) || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.block_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// Whether go-yaml v2 reads `s`, unquoted, back as a string.
fn resolves_to_str(s: &str) -> bool {
    matches!(resolve_plain(Schema::Kubernetes, s), Scalar::Str)
        && crate::yaml::timestamp(s).is_none()
}

/// Whether go-yaml v3 reads `s`, unquoted, back as a string.
fn resolves_to_str_v3(s: &str) -> bool {
    matches!(resolve_plain(Schema::Kyaml, s), Scalar::Str)
}

/// go-yaml v3's `isOldBool`: YAML 1.1 booleans, quoted for older readers.
fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// go-yaml v2's `isBase60Float`: `1:20` was a YAML 1.1 sexagesimal number.
fn is_base60_float(s: &str) -> bool {
    let Some(c) = s.chars().next() else {
        return false;
    };
    if !(c == '+' || c == '-' || c.is_ascii_digit()) || !s.contains(':') {
        return false;
    }
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    let mut i = 0;
    if b[0] == b'+' || b[0] == b'-' {
        i = 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let start = i;
        if i < b.len()
            && (b'0'..=b'5').contains(&b[i])
            && i + 1 < b.len()
            && b[i + 1].is_ascii_digit()
        {
            i += 2;
        } else if i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// go-yaml v2's key order: numbers by value, letters before digits, runs
/// of digits compared as numbers (`a2` < `a10`).
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let less = |x: bool| if x { Ordering::Less } else { Ordering::Greater };
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return less(bl);
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn nested_maps_and_lists_as_go_yaml_v2_writes_them() {
        let v = map(&[
            (
                "b",
                Value::list(vec![
                    Value::from("x"),
                    map(&[("k", Value::Int(1)), ("j", Value::Bool(true))]),
                ]),
            ),
            (
                "a",
                map(&[("c", Value::Float(1.5)), ("d", Value::map(BTreeMap::new()))]),
            ),
            ("e", Value::list(vec![])),
        ]);
        assert_eq!(
            marshal(&v),
            "a:\n  c: 1.5\n  d: {}\nb:\n- x\n- j: true\n  k: 1\ne: []\n"
        );
    }

    #[test]
    fn strings_are_quoted_when_they_would_read_back_as_something_else() {
        let v = map(&[
            ("a", Value::from("yes")),
            ("b", Value::from("1.0")),
            ("c", Value::from("")),
            ("d", Value::from("a: b")),
            ("e", Value::from("line1\nline2")),
            ("f", Value::from("it's")),
        ]);
        assert_eq!(
            marshal(&v),
            "a: \"yes\"\nb: \"1.0\"\nc: \"\"\nd: 'a: b'\ne: |-\n  line1\n  line2\nf: it's\n"
        );
    }

    #[test]
    fn keys_sort_naturally() {
        let mut keys = vec!["a10", "a2", "b", "A", "1"];
        keys.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(keys, vec!["1", "A", "a2", "a10", "b"]);
    }
}

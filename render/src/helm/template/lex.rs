//! The lexer of Go's `text/template` (`text/template/parse/lex.go`): the
//! same items, trim markers and error messages.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum T {
    Error,
    Bool,
    Char,
    CharConstant,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords (Go's items after itemKeyword).
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl T {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            T::Block
                | T::Break
                | T::Continue
                | T::Dot
                | T::Define
                | T::Else
                | T::End
                | T::If
                | T::Nil
                | T::Range
                | T::Template
                | T::With
        )
    }
}

#[derive(Clone, Debug)]
pub(super) struct Item {
    pub typ: T,
    pub pos: usize,
    pub val: String,
    pub line: usize,
}

impl std::fmt::Display for Item {
    /// Go's `item.String`, as parse errors print tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.typ {
            T::Eof => f.write_str("EOF"),
            T::Error => f.write_str(&self.val),
            t if t.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let short: String = self.val.chars().take(10).collect();
                write!(f, "{}...", super::fmt::quote(&short))
            }
            _ => f.write_str(&super::fmt::quote(&self.val)),
        }
    }
}

fn keyword(word: &str) -> Option<T> {
    Some(match word {
        "." => T::Dot,
        "block" => T::Block,
        "break" => T::Break,
        "continue" => T::Continue,
        "define" => T::Define,
        "else" => T::Else,
        "end" => T::End,
        "if" => T::If,
        "range" => T::Range,
        "nil" => T::Nil,
        "template" => T::Template,
        "with" => T::With,
        _ => return None,
    })
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const TRIM_RIGHT: &str = " -}}";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: i32,
    line_cache: (usize, usize),
    items: Vec<Item>,
    break_ok: bool,
    continue_ok: bool,
}

/// Lexes all of `input`; the last item is `Eof` or `Error`.
pub(super) fn lex(input: &str, break_ok: bool, continue_ok: bool) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        paren_depth: 0,
        line_cache: (0, 1),
        items: Vec::new(),
        break_ok,
        continue_ok,
    };
    l.run();
    l.items
}

enum St {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    Inside,
    Done,
}

impl<'a> Lexer<'a> {
    /// The line of `pos`, counted on from the last position asked about
    /// (items come in order), so lexing stays linear.
    fn line_at(&mut self, pos: usize) -> usize {
        let (from, line) = self.line_cache;
        let (from, line) = if pos >= from { (from, line) } else { (0, 1) };
        let line = line
            + self.input[from..pos]
                .bytes()
                .filter(|b| *b == b'\n')
                .count();
        self.line_cache = (pos, line);
        line
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }

    fn emit(&mut self, typ: T) {
        let val = self.input[self.start..self.pos].to_string();
        let line = self.line_at(self.start);
        self.items.push(Item {
            typ,
            pos: self.start,
            val,
            line,
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn error(&mut self, msg: String) -> St {
        let line = self.line_at(self.start);
        self.items.push(Item {
            typ: T::Error,
            pos: self.start,
            val: msg,
            line,
        });
        St::Done
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    /// Whether the input is at a right delimiter, and whether it is trimmed.
    fn at_right_delim(&self) -> (bool, bool) {
        if self.rest().starts_with(TRIM_RIGHT) {
            return (true, true);
        }
        (self.rest().starts_with(RIGHT), false)
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn run(&mut self) {
        let mut st = St::Text;
        loop {
            st = match st {
                St::Text => self.lex_text(),
                St::LeftDelim => self.lex_left_delim(),
                St::Comment => self.lex_comment(),
                St::RightDelim => self.lex_right_delim(),
                St::Inside => self.lex_inside(),
                St::Done => return,
            }
        }
    }

    fn lex_text(&mut self) -> St {
        if let Some(x) = self.rest().find(LEFT) {
            if x > 0 {
                self.pos += x;
                let delim_end = self.pos + LEFT.len();
                let mut trim = 0;
                if has_left_trim(&self.input[delim_end..]) {
                    let text = &self.input[self.start..self.pos];
                    trim = text.len() - text.trim_end_matches(is_space).len();
                }
                self.pos -= trim;
                if self.pos > self.start {
                    self.emit(T::Text);
                }
                self.pos += trim;
                self.ignore();
            }
            return St::LeftDelim;
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(T::Text);
        }
        self.emit(T::Eof);
        St::Done
    }

    fn lex_left_delim(&mut self) -> St {
        self.pos += LEFT.len();
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with("/*") {
            self.pos += after;
            self.ignore();
            return St::Comment;
        }
        self.emit(T::LeftDelim);
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        St::Inside
    }

    fn lex_comment(&mut self) -> St {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            return self.error("unclosed comment".into());
        };
        self.pos += x + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            self.skip_leading_space();
        }
        self.ignore();
        St::Text
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_space).len();
    }

    fn lex_right_delim(&mut self) -> St {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT.len();
        self.emit(T::RightDelim);
        if trim {
            self.skip_leading_space();
            self.ignore();
        }
        St::Text
    }

    fn lex_inside(&mut self) -> St {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return St::RightDelim;
            }
            return self.error("unclosed left paren".into());
        }
        let Some(r) = self.next() else {
            return self.error("unclosed action".into());
        };
        match r {
            c if is_space(c) => {
                self.backup(Some(c));
                self.lex_space()
            }
            '=' => {
                self.emit(T::Assign);
                St::Inside
            }
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.emit(T::Declare);
                St::Inside
            }
            '|' => {
                self.emit(T::Pipe);
                St::Inside
            }
            '"' => self.lex_quote(),
            '`' => self.lex_raw_quote(),
            '$' => self.lex_variable(),
            '\'' => self.lex_char(),
            '.' => {
                if self.peek().is_some_and(|c| !c.is_ascii_digit()) {
                    return self.lex_field_or_variable(T::Field);
                }
                self.backup(Some('.'));
                self.lex_number()
            }
            '+' | '-' | '0'..='9' => {
                self.backup(Some(r));
                self.lex_number()
            }
            c if is_alnum(c) => {
                self.backup(Some(c));
                self.lex_identifier()
            }
            '(' => {
                self.paren_depth += 1;
                self.emit(T::LeftParen);
                St::Inside
            }
            ')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.error("unexpected right paren".into());
                }
                self.emit(T::RightParen);
                St::Inside
            }
            c if c.is_ascii() && !c.is_ascii_control() => {
                self.emit(T::Char);
                St::Inside
            }
            c => self.error(format!("unrecognized character in action: {}", go_u(c))),
        }
    }

    fn lex_space(&mut self) -> St {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            n += 1;
        }
        if self.input[self.pos - 1..].starts_with(TRIM_RIGHT) {
            self.pos -= 1;
            if n == 1 {
                return St::RightDelim;
            }
        }
        self.emit(T::Space);
        St::Inside
    }

    fn lex_identifier(&mut self) -> St {
        loop {
            let r = self.next();
            match r {
                Some(c) if is_alnum(c) => {}
                _ => {
                    self.backup(r);
                    let word = &self.input[self.start..self.pos];
                    if !self.at_terminator() {
                        return self.error(format!("bad character {}", go_u_opt(r)));
                    }
                    let typ = match keyword(word) {
                        Some(T::Break) if !self.break_ok => T::Identifier,
                        Some(T::Continue) if !self.continue_ok => T::Identifier,
                        Some(k) => k,
                        None if word == "true" || word == "false" => T::Bool,
                        None => T::Identifier,
                    };
                    self.emit(typ);
                    return St::Inside;
                }
            }
        }
    }

    fn lex_variable(&mut self) -> St {
        if self.at_terminator() {
            self.emit(T::Variable);
            return St::Inside;
        }
        self.lex_field_or_variable(T::Variable)
    }

    fn lex_field_or_variable(&mut self, typ: T) -> St {
        if self.at_terminator() {
            self.emit(if typ == T::Variable {
                T::Variable
            } else {
                T::Dot
            });
            return St::Inside;
        }
        let mut r;
        loop {
            r = self.next();
            match r {
                Some(c) if is_alnum(c) => {}
                _ => {
                    self.backup(r);
                    break;
                }
            }
        }
        if !self.at_terminator() {
            return self.error(format!("bad character {}", go_u_opt(r)));
        }
        self.emit(typ);
        St::Inside
    }

    fn lex_char(&mut self) -> St {
        loop {
            match self.next() {
                Some('\\') => {
                    if self.next().is_some_and(|c| c != '\n') {
                        continue;
                    }
                    return self.error("unterminated character constant".into());
                }
                None | Some('\n') => return self.error("unterminated character constant".into()),
                Some('\'') => break,
                _ => {}
            }
        }
        self.emit(T::CharConstant);
        St::Inside
    }

    fn lex_number(&mut self) -> St {
        if !self.scan_number() {
            let text = self.input[self.start..self.pos].to_string();
            return self.error(format!("bad number syntax: {}", super::fmt::quote(&text)));
        }
        self.emit(T::Number);
        St::Inside
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return false;
        }
        true
    }

    fn lex_quote(&mut self) -> St {
        loop {
            match self.next() {
                Some('\\') => {
                    if self.next().is_some_and(|c| c != '\n') {
                        continue;
                    }
                    return self.error("unterminated quoted string".into());
                }
                None | Some('\n') => return self.error("unterminated quoted string".into()),
                Some('"') => break,
                _ => {}
            }
        }
        self.emit(T::String);
        St::Inside
    }

    fn lex_raw_quote(&mut self) -> St {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        self.emit(T::RawString);
        St::Inside
    }
}

/// Go's `%#U`: `U+0041 'A'`.
fn go_u(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

fn go_u_opt(c: Option<char>) -> String {
    match c {
        Some(c) => go_u(c),
        None => "U+FFFFFFFF".into(),
    }
}

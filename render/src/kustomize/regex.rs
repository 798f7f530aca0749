//! A small backtracking regular-expression matcher for the patterns kustomize
//! compiles with Go's `regexp`: patch target names (`^(?:NAME)$`) and image
//! names. It covers the RE2 subset real kustomizations use (literals, `.`,
//! classes, escapes, groups, alternation, `* + ? {n,m}`, `^ $`); anything
//! else is refused with an error rather than matched differently.

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    root: Node,
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        let root = p.alt()?;
        if p.i != chars.len() {
            return Err(format!(
                "invalid regular expression {pattern:?}: unexpected ')'"
            ));
        }
        Ok(Regex { root })
    }

    /// Whether the pattern matches anywhere in `text` (Go's `MatchString`).
    pub fn is_match(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        (0..=t.len()).any(|start| m(&self.root, &t, start, &mut |_| true))
    }
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn alt(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.i += 1;
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().expect("one branch")
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let mut node = atom;
        loop {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => match self.braces() {
                    Some(r) => r,
                    None => return Ok(node),
                },
                _ => return Ok(node),
            };
            if self.peek() != Some('{') {
                self.i += 1;
            } else {
                self.skip_braces();
            }
            // A trailing '?' makes the quantifier lazy; for a yes/no match it changes nothing.
            if self.peek() == Some('?') {
                self.i += 1;
            }
            node = Node::Repeat {
                node: Box::new(node),
                min,
                max,
            };
        }
    }

    /// Reads `{n}`, `{n,}` or `{n,m}` at the cursor without moving it.
    fn braces(&self) -> Option<(u32, Option<u32>)> {
        let rest = &self.s[self.i + 1..];
        let end = rest.iter().position(|&c| c == '}')?;
        let inner: String = rest[..end].iter().collect();
        match inner.split_once(',') {
            None => inner.parse::<u32>().ok().map(|n| (n, Some(n))),
            Some((a, "")) => a.parse::<u32>().ok().map(|n| (n, None)),
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if a <= b => Some((a, Some(b))),
                _ => None,
            },
        }
    }

    fn skip_braces(&mut self) {
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == '}' {
                break;
            }
        }
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self.peek().ok_or("unexpected end of pattern")?;
        self.i += 1;
        Ok(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.s[self.i..].starts_with(&['?', ':']) {
                    self.i += 2;
                } else if self.peek() == Some('?') {
                    return Err(
                        "regular expression flags and named groups are not supported".into(),
                    );
                }
                let inner = self.alt()?;
                if self.peek() != Some(')') {
                    return Err("missing closing ')'".into());
                }
                self.i += 1;
                inner
            }
            '[' => self.class()?,
            '\\' => self.escape(false)?,
            '*' | '+' | '?' => {
                return Err(format!("missing argument to repetition operator '{c}'"));
            }
            c => Node::Char(c),
        })
    }

    fn escape(&mut self, in_class: bool) -> Result<Node, String> {
        let c = self.peek().ok_or("trailing backslash")?;
        self.i += 1;
        let digit = vec![('0', '9')];
        let word = vec![('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')];
        let space = vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];
        Ok(match c {
            'd' => Node::Class {
                ranges: digit,
                negated: false,
            },
            'D' => Node::Class {
                ranges: digit,
                negated: true,
            },
            'w' => Node::Class {
                ranges: word,
                negated: false,
            },
            'W' => Node::Class {
                ranges: word,
                negated: true,
            },
            's' => Node::Class {
                ranges: space,
                negated: false,
            },
            'S' => Node::Class {
                ranges: space,
                negated: true,
            },
            'n' => Node::Char('\n'),
            't' => Node::Char('\t'),
            'r' => Node::Char('\r'),
            c if c.is_ascii_punctuation() => Node::Char(c),
            c if in_class => Node::Char(c),
            c => return Err(format!("unsupported escape sequence \\{c}")),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let mut negated = false;
        if self.peek() == Some('^') {
            negated = true;
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or("missing closing ']'")?;
            if c == ']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            self.i += 1;
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Node::Char(ch) => ch,
                    Node::Class {
                        ranges: r,
                        negated: false,
                    } => {
                        ranges.extend(r);
                        continue;
                    }
                    _ => return Err("negated escapes inside a class are not supported".into()),
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|&n| n != ']') {
                self.i += 1;
                let mut hi = self.peek().ok_or("missing closing ']'")?;
                self.i += 1;
                if hi == '\\' {
                    hi = match self.escape(true)? {
                        Node::Char(ch) => ch,
                        _ => return Err("invalid class range".into()),
                    };
                }
                if hi < lo {
                    return Err("invalid class range".into());
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Node::Class { ranges, negated })
    }
}

/// Matches `node` at `pos`, calling `k` with each end position until it accepts.
fn m(node: &Node, t: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match node {
        Node::Char(c) => t.get(pos) == Some(c) && k(pos + 1),
        Node::Any => t.get(pos).is_some_and(|&c| c != '\n') && k(pos + 1),
        Node::Class { ranges, negated } => {
            t.get(pos)
                .is_some_and(|&c| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                && k(pos + 1)
        }
        Node::Start => pos == 0 && k(pos),
        Node::End => pos == t.len() && k(pos),
        Node::Concat(items) => concat(items, t, pos, k),
        Node::Alt(branches) => branches.iter().any(|b| m(b, t, pos, k)),
        Node::Repeat { node, min, max } => repeat(node, *min, *max, t, pos, k, 0),
    }
}

fn concat(items: &[Node], t: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match items.split_first() {
        None => k(pos),
        Some((first, rest)) => m(first, t, pos, &mut |p| concat(rest, t, p, k)),
    }
}

fn repeat(
    node: &Node,
    min: u32,
    max: Option<u32>,
    t: &[char],
    pos: usize,
    k: &mut dyn FnMut(usize) -> bool,
    count: u32,
) -> bool {
    if max.is_none_or(|mx| count < mx)
        && m(node, t, pos, &mut |p| {
            // An empty iteration past the minimum makes no progress: stop there.
            !(p == pos && count >= min) && repeat(node, min, max, t, p, k, count + 1)
        })
    {
        return true;
    }
    count >= min && k(pos)
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn matches(p: &str, s: &str) -> bool {
        Regex::new(p).unwrap().is_match(s)
    }

    #[test]
    fn anchored_names_and_alternation() {
        assert!(matches("^(?:web)$", "web"));
        assert!(!matches("^(?:web)$", "web-2"));
        assert!(matches("^(?:web-.*)$", "web-2"));
        assert!(matches("^(?:a|b)$", "b"));
        assert!(!matches("^(?:a|b)$", "ab"));
        assert!(matches("^(?:.*-(prod|dev))$", "x-dev"));
        assert!(matches("^(?:[a-c]+\\d{2})$", "abc12"));
        assert!(!matches("^(?:[a-c]+\\d{2})$", "abc1"));
        assert!(matches("^(?:[^x]*)$", "abc"));
        assert!(!matches("^(?:[^x]*)$", "axc"));
    }

    #[test]
    fn image_pattern() {
        let p = "^nginx(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?$";
        assert!(matches(p, "nginx"));
        assert!(matches(p, "nginx:1.2"));
        assert!(matches(p, "nginx@sha256:abc"));
        assert!(!matches(p, "nginx-x"));
        assert!(!matches(p, "my/nginx"));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        assert!(Regex::new("(?P<x>a)").is_err());
        assert!(Regex::new("a)").is_err());
        assert!(Regex::new("[a").is_err());
    }
}

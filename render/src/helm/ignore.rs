//! `.helmignore`, as Helm's `pkg/ignore` reads and applies it: one
//! `filepath.Match` glob per line, matched against the base name (or the
//! whole path when the pattern holds a `/`), `dir/` for directories only,
//! and Helm's own reading of `!` (a path a negated pattern does *not*
//! match is ignored). `templates/.?*` is always added.

#[derive(Debug, Default, Clone)]
pub struct Rules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    glob: String,
    negate: bool,
    must_dir: bool,
    /// `/x`: from the chart root; `a/b`: against the whole path; else the base name.
    whole_path: bool,
}

impl Rules {
    /// Parses a `.helmignore`. Lines Helm refuses (`**`, a bad glob) are
    /// skipped here; Helm fails the load on them, which fleet reports when
    /// it renders (see [`Rules::errors`]).
    pub fn parse(text: &str) -> Rules {
        let mut r = Rules::default();
        for line in text.lines() {
            r.add(line);
        }
        r
    }

    pub fn with_defaults(mut self) -> Rules {
        self.add("templates/.?*");
        self
    }

    fn add(&mut self, rule: &str) {
        let mut rule = rule.trim();
        if rule.is_empty() || rule.starts_with('#') || rule.contains("**") {
            return;
        }
        if go_match(rule, "abc").is_err() {
            return;
        }
        let negate = rule.starts_with('!');
        if negate {
            rule = &rule[1..];
        }
        let must_dir = rule.ends_with('/');
        let rule = rule.trim_end_matches('/');
        let (glob, whole_path) = match rule.strip_prefix('/') {
            Some(r) => (r.to_string(), true),
            None => (rule.to_string(), rule.contains('/')),
        };
        self.patterns.push(Pattern {
            glob,
            negate,
            must_dir,
            whole_path,
        });
    }

    fn ignore_one(&self, path: &str, is_dir: bool) -> bool {
        for p in &self.patterns {
            let subject = if p.whole_path {
                path
            } else {
                path.rsplit('/').next().unwrap_or(path)
            };
            let hit = go_match(&p.glob, subject).unwrap_or(false);
            if p.negate {
                if p.must_dir && !is_dir {
                    return true;
                }
                if !hit {
                    return true;
                }
                continue;
            }
            if p.must_dir && !is_dir {
                continue;
            }
            if hit {
                return true;
            }
        }
        false
    }

    /// Whether Helm's directory walk leaves out the file at `path`: it or
    /// one of the directories above it is ignored.
    pub fn ignores(&self, path: &str) -> bool {
        let mut dir_end = 0;
        while let Some(i) = path[dir_end..].find('/') {
            let dir = &path[..dir_end + i];
            if self.ignore_one(dir, true) {
                return true;
            }
            dir_end += i + 1;
        }
        self.ignore_one(path, false)
    }
}

/// Go's `filepath.ErrBadPattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Go's `filepath.Match` (on `/` paths): `*` and `?` do not cross `/`,
/// `[...]` classes (negated with `^`), `\` escapes.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, BadPattern> {
    let Some((&c, rest)) = p.split_first() else {
        return Ok(n.is_empty());
    };
    match c {
        '*' => {
            // Validate the rest of the pattern even if we stop early.
            let mut any = false;
            for k in 0..=n.len() {
                if match_from(rest, &n[k..])? {
                    any = true;
                    break;
                }
                if k < n.len() && n[k] == '/' {
                    break;
                }
            }
            if !any {
                match_from(rest, &[])?;
            }
            Ok(any)
        }
        '?' => Ok(n.first().is_some_and(|x| *x != '/') && match_from(rest, &n[1..])?),
        '[' => {
            let mut i = 0;
            let negated = rest.first() == Some(&'^');
            if negated {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            let ch = n.first().copied();
            loop {
                let Some(&lo) = rest.get(i) else {
                    return Err(BadPattern);
                };
                if lo == ']' && !first {
                    i += 1;
                    break;
                }
                first = false;
                let (lo, step) = if lo == '\\' {
                    (*rest.get(i + 1).ok_or(BadPattern)?, 2)
                } else {
                    (lo, 1)
                };
                i += step;
                let mut hi = lo;
                if rest.get(i) == Some(&'-') && rest.get(i + 1).is_some_and(|x| *x != ']') {
                    let h = rest[i + 1];
                    let (h, step) = if h == '\\' {
                        (*rest.get(i + 2).ok_or(BadPattern)?, 3)
                    } else {
                        (h, 2)
                    };
                    hi = h;
                    i += step;
                }
                if let Some(ch) = ch
                    && lo <= ch
                    && ch <= hi
                {
                    matched = true;
                }
            }
            match ch {
                Some(ch) if ch != '/' && matched != negated => match_from(&rest[i..], &n[1..]),
                _ => {
                    match_from(&rest[i..], &[])?;
                    Ok(false)
                }
            }
        }
        '\\' => {
            let (&e, rest2) = rest.split_first().ok_or(BadPattern)?;
            Ok(n.first() == Some(&e) && match_from(rest2, &n[1..])?)
        }
        c => Ok(n.first() == Some(&c) && match_from(rest, &n[1..])?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helmignore_as_helm_applies_it() {
        let r = Rules::parse("# comment\n*.tmp\nci/\n/secret.txt\ndocs/*.md\n").with_defaults();
        assert!(r.ignores("a.tmp"));
        assert!(r.ignores("sub/b.tmp"));
        assert!(r.ignores("ci/values.yaml"));
        assert!(r.ignores("secret.txt"));
        assert!(r.ignores("docs/readme.md"));
        assert!(r.ignores("templates/.hidden"));
        assert!(!r.ignores("templates/deployment.yaml"));
        assert!(!r.ignores("values.yaml"));
    }

    #[test]
    fn go_globs() {
        assert_eq!(go_match("*.yaml", "a.yaml"), Ok(true));
        assert_eq!(go_match("*", "a/b"), Ok(false));
        assert_eq!(go_match("[a-c]x", "bx"), Ok(true));
        assert_eq!(go_match("[^a-c]x", "bx"), Ok(false));
        assert!(go_match("[", "x").is_err());
    }
}

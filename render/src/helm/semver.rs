//! Masterminds/semver v3.4, as Sprig's `semver`/`semverCompare` and Helm's
//! `kubeVersion` and dependency checks use it: loose versions (`v1.2`,
//! `1.31.0-gke.1`), constraints with `||`, `,` and spaces, `~`, `^`,
//! x-ranges and hyphen ranges, and its prerelease rule (a prerelease only
//! satisfies a constraint that names a prerelease itself: `>=1.19-0`).

use std::cmp::Ordering;
use std::rc::Rc;
use std::sync::LazyLock;

use regex::Regex;

use super::template::{Func, Object, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub metadata: String,
    pub original: String,
}

const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

static LOOSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$")
        .expect("version regex")
});
static CONSTRAINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^\s*({OPS})\s*({CV})\s*$")).expect("constraint regex"));
static RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\s*({CV})\s+-\s+({CV})\s*")).expect("range regex"));
static FIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"({OPS})\s*({CV})")).expect("find regex"));
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
    ))
    .expect("valid regex")
});

impl Version {
    /// `semver.NewVersion` (coercing: missing minor and patch are 0).
    pub fn parse(v: &str) -> Result<Version, String> {
        let m = LOOSE.captures(v).ok_or("invalid semantic version")?;
        let seg = |i: usize| -> Result<u64, String> {
            match m.get(i) {
                None => Ok(0),
                Some(s) => s
                    .as_str()
                    .trim_start_matches('.')
                    .parse::<u64>()
                    .map_err(|e| format!("error parsing version segment: {e}")),
            }
        };
        let pre = m.get(5).map_or("", |x| x.as_str()).to_string();
        let metadata = m.get(8).map_or("", |x| x.as_str()).to_string();
        if !pre.is_empty() {
            for p in pre.split('.') {
                if p.is_empty() {
                    return Err("invalid prerelease string".into());
                }
                if p.bytes().all(|c| c.is_ascii_digit()) && p.len() > 1 && p.starts_with('0') {
                    return Err("version segment starts with 0".into());
                }
            }
        }
        Ok(Version {
            major: seg(1)?,
            minor: seg(2)?,
            patch: seg(3)?,
            pre,
            metadata,
            original: v.to_string(),
        })
    }

    pub fn compare(&self, o: &Version) -> Ordering {
        self.major
            .cmp(&o.major)
            .then(self.minor.cmp(&o.minor))
            .then(self.patch.cmp(&o.patch))
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &o.pre),
            })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let ap: Vec<&str> = a.split('.').collect();
    let bp: Vec<&str> = b.split('.').collect();
    for i in 0..ap.len().max(bp.len()) {
        let d = compare_pre_part(
            ap.get(i).copied().unwrap_or(""),
            bp.get(i).copied().unwrap_or(""),
        );
        if d != Ordering::Equal {
            return d;
        }
    }
    Ordering::Equal
}

fn compare_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => s.cmp(o),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Ok(a), Ok(b)) => a.cmp(&b),
    }
}

impl Object for Version {
    fn type_name(&self) -> &str {
        "*semver.Version"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn method(&self, name: &str) -> Option<Func> {
        let v = self.clone();
        let value = match name {
            "Major" => Value::Int(self.major as i64),
            "Minor" => Value::Int(self.minor as i64),
            "Patch" => Value::Int(self.patch as i64),
            "Prerelease" => Value::from(self.pre.as_str()),
            "Metadata" => Value::from(self.metadata.as_str()),
            "Original" => Value::from(self.original.as_str()),
            "String" => Value::from(v.to_string()),
            "IncPatch" | "IncMinor" | "IncMajor" => {
                let mut n = self.clone();
                match name {
                    "IncPatch" if !n.pre.is_empty() => {}
                    "IncPatch" => n.patch += 1,
                    "IncMinor" => {
                        n.minor += 1;
                        n.patch = 0;
                    }
                    _ => {
                        n.major += 1;
                        n.minor = 0;
                        n.patch = 0;
                    }
                }
                n.pre.clear();
                n.metadata.clear();
                let prefix = if self.original.starts_with('v') {
                    "v"
                } else {
                    ""
                };
                n.original = format!("{prefix}{n}");
                Value::Object(Rc::new(VersionValue(n)))
            }
            "Compare" | "LessThan" | "GreaterThan" | "Equal" => {
                let which = name.to_string();
                return Some(Func::new(
                    vec![super::template::Param::Any],
                    None,
                    move |_, args| {
                        let Value::Object(o) = &args[0] else {
                            return Err("wrong type for value; expected *semver.Version".into());
                        };
                        let other = Version::parse(&o.print()).map_err(|e| e.to_string())?;
                        let c = v.compare(&other);
                        Ok(match which.as_str() {
                            "Compare" => Value::Int(c as i64),
                            "LessThan" => Value::Bool(c == Ordering::Less),
                            "GreaterThan" => Value::Bool(c == Ordering::Greater),
                            _ => Value::Bool(c == Ordering::Equal),
                        })
                    },
                ));
            }
            _ => return None,
        };
        Some(Func::new(vec![], None, move |_, _| Ok(value.clone())))
    }
    fn print(&self) -> String {
        self.to_string()
    }
    fn stringer(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// A `semver.Version` held by value (what `IncPatch` and friends return).
#[derive(Debug)]
pub struct VersionValue(pub Version);

impl Object for VersionValue {
    fn type_name(&self) -> &str {
        "semver.Version"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn method(&self, name: &str) -> Option<Func> {
        self.0.method(name)
    }
    fn is_pointer(&self) -> bool {
        false
    }
    fn print(&self) -> String {
        self.0.to_string()
    }
    fn stringer(&self) -> Option<String> {
        Some(self.0.to_string())
    }
}

/// `semver.Constraints`.
#[derive(Debug, Clone)]
pub struct Constraints {
    groups: Vec<(Vec<Constraint>, bool)>,
}

#[derive(Debug, Clone)]
struct Constraint {
    op: String,
    con: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

impl Constraints {
    /// `semver.NewConstraint`.
    pub fn parse(c: &str) -> Result<Constraints, String> {
        let c = rewrite_range(c);
        let mut groups = Vec::new();
        for or in c.split("||") {
            if !VALID.is_match(or) {
                return Err(format!("improper constraint: {or}"));
            }
            let mut found: Vec<&str> = FIND.find_iter(or).map(|m| m.as_str()).collect();
            if found.is_empty() {
                found.push(or);
            }
            let mut cs = Vec::new();
            let mut has_pre = false;
            for s in found {
                let pc = parse_constraint(s)?;
                if !pc.con.pre.is_empty() {
                    has_pre = true;
                }
                cs.push(pc);
            }
            groups.push((cs, has_pre));
        }
        Ok(Constraints { groups })
    }

    pub fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|(cs, pre)| cs.iter().all(|c| c.check(v, *pre)))
    }
}

fn rewrite_range(i: &str) -> String {
    let mut o = i.to_string();
    for caps in RANGE.captures_iter(i) {
        let whole = caps.get(0).map_or("", |m| m.as_str());
        let a = caps.get(1).map_or("", |m| m.as_str());
        let b = caps.get(11).map_or("", |m| m.as_str());
        o = o.replacen(whole, &format!(">= {a}, <= {b} "), 1);
    }
    o
}

fn parse_constraint(c: &str) -> Result<Constraint, String> {
    if c.is_empty() {
        return Ok(Constraint {
            op: String::new(),
            con: Version::parse("0.0.0")?,
            minor_dirty: false,
            patch_dirty: false,
            dirty: true,
        });
    }
    let m = CONSTRAINT
        .captures(c)
        .ok_or_else(|| format!("improper constraint: {c}"))?;
    let g = |i: usize| m.get(i).map_or("", |x| x.as_str());
    let (mut minor_dirty, mut patch_dirty, mut dirty) = (false, false, false);
    let ver = if is_x(g(3)) || g(3).is_empty() {
        dirty = true;
        format!("0.0.0{}", g(6))
    } else if is_x(g(4).trim_start_matches('.')) || g(4).is_empty() {
        minor_dirty = true;
        dirty = true;
        format!("{}.0.0{}", g(3), g(6))
    } else if is_x(g(5).trim_start_matches('.')) || g(5).is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{}{}.0{}", g(3), g(4), g(6))
    } else {
        g(2).to_string()
    };
    let con = Version::parse(&ver).map_err(|_| "constraint parser error".to_string())?;
    Ok(Constraint {
        op: g(1).to_string(),
        con,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

impl Constraint {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        let cmp = v.compare(c);
        match self.op.as_str() {
            "" | "=" => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    cmp == Ordering::Equal
                }
            }
            "!=" => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                cmp != Ordering::Equal
            }
            ">" => {
                if !self.dirty {
                    return cmp == Ordering::Greater;
                }
                if v.major > c.major {
                    true
                } else if v.major < c.major || self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    cmp == Ordering::Greater
                }
            }
            "<" => cmp == Ordering::Less,
            ">=" | "=>" => cmp != Ordering::Less,
            "<=" | "=<" => {
                if !self.dirty {
                    return cmp != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            "~" | "~>" => self.tilde(v),
            "^" => {
                if cmp == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if c.major == 0 && v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if c.minor == 0 && v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
            _ => false,
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

/// A version value for templates.
pub fn value(v: Version) -> Value {
    Value::Object(Rc::new(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(c: &str, v: &str) -> bool {
        Constraints::parse(c)
            .unwrap()
            .check(&Version::parse(v).unwrap())
    }

    #[test]
    fn constraints_as_masterminds_checks_them() {
        assert!(check(">=1.19-0", "v1.31.0"));
        assert!(check(">=1.19-0", "1.20.0-gke.1"));
        assert!(!check(">=1.19", "1.20.0-gke.1"));
        assert!(check("^1.2.3", "1.9.0"));
        assert!(!check("^1.2.3", "2.0.0"));
        assert!(check("~1.2.3", "1.2.9"));
        assert!(!check("~1.2.3", "1.3.0"));
        assert!(check("1.2.x", "1.2.7"));
        assert!(check("1.2 - 1.4.5", "1.4.0"));
        assert!(!check("1.2 - 1.4.5", "1.4.6"));
        assert!(check("<1.0.0 || >=2.0.0", "2.1.0"));
        assert!(check(">= 1.2, < 3.0.0", "2.5.0"));
        assert!(Constraints::parse("foo").is_err());
    }
}

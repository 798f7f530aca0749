//! Helm's built-in objects as templates see them: `.Chart` (the chart's
//! metadata and `IsRoot`), `.Capabilities` (kube version, API versions,
//! Helm version) and `.Files` (the chart's non-template files, with
//! `Get`, `GetBytes`, `Glob`, `AsConfig`, `AsSecrets` and `Lines`).
//! `.Release`, `.Values`, `.Template` and `.Subcharts` are plain maps.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::chart::Metadata;
use super::template::{Func, Object, Param, Value, sprint};
use super::yaml_v2;

/// A Go struct value with named fields, printed as `fmt` prints it.
#[derive(Debug)]
pub struct Struct {
    type_name: &'static str,
    fields: Vec<(&'static str, Value)>,
}

impl Struct {
    pub fn value(type_name: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
        Value::Object(Rc::new(Struct { type_name, fields }))
    }
}

impl Object for Struct {
    fn type_name(&self) -> &str {
        self.type_name
    }
    fn field(&self, name: &str) -> Option<Value> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
    fn is_pointer(&self) -> bool {
        self.type_name.starts_with('*')
    }
    fn print(&self) -> String {
        let parts: Vec<String> = self.fields.iter().map(|(_, v)| print_field(v)).collect();
        format!("{{{}}}", parts.join(" "))
    }
}

fn print_field(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        Value::Object(o) => o.print(),
        v => sprint(std::slice::from_ref(v)),
    }
}

fn strings(l: &[String]) -> Value {
    Value::list(l.iter().map(|s| Value::from(s.as_str())).collect())
}

/// `.Chart`: `struct { chart.Metadata; IsRoot bool }`.
pub fn chart_value(md: &Metadata, is_root: bool) -> Value {
    let maintainers = Value::list(
        md.maintainers
            .iter()
            .map(|m| {
                Struct::value(
                    "*chart.Maintainer",
                    vec![
                        ("Name", Value::from(m.name.as_str())),
                        ("Email", Value::from(m.email.as_str())),
                        ("URL", Value::from(m.url.as_str())),
                    ],
                )
            })
            .collect(),
    );
    let annotations = if md.annotations.is_empty() {
        Value::Nil
    } else {
        Value::map(
            md.annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect(),
        )
    };
    let dependencies = Value::list(
        md.dependencies
            .iter()
            .map(|d| {
                Struct::value(
                    "*chart.Dependency",
                    vec![
                        ("Name", Value::from(d.name.as_str())),
                        ("Version", Value::from(d.version.as_str())),
                        ("Repository", Value::from(d.repository.as_str())),
                        ("Condition", Value::from(d.condition.as_str())),
                        ("Tags", strings(&d.tags)),
                        ("Enabled", Value::Bool(d.enabled)),
                        (
                            "ImportValues",
                            Value::list(d.import_values.iter().map(Value::from_json).collect()),
                        ),
                        ("Alias", Value::from(d.alias.as_str())),
                    ],
                )
            })
            .collect(),
    );
    let opt_list = |l: &[String]| if l.is_empty() { Value::Nil } else { strings(l) };
    Struct::value(
        "struct { chart.Metadata; IsRoot bool }",
        vec![
            ("Name", Value::from(md.name.as_str())),
            ("Home", Value::from(md.home.as_str())),
            ("Sources", opt_list(&md.sources)),
            ("Version", Value::from(md.version.as_str())),
            ("Description", Value::from(md.description.as_str())),
            ("Keywords", opt_list(&md.keywords)),
            ("Maintainers", maintainers),
            ("Icon", Value::from(md.icon.as_str())),
            ("APIVersion", Value::from(md.api_version.as_str())),
            ("Condition", Value::from(md.condition.as_str())),
            ("Tags", Value::from(md.tags.as_str())),
            ("AppVersion", Value::from(md.app_version.as_str())),
            ("Deprecated", Value::Bool(md.deprecated)),
            ("Annotations", annotations),
            ("KubeVersion", Value::from(md.kube_version.as_str())),
            ("Dependencies", dependencies),
            ("Type", Value::from(md.chart_type.as_str())),
            ("IsRoot", Value::Bool(is_root)),
        ],
    )
}

/// `.Capabilities.KubeVersion`: a struct whose pointer has `String` and
/// `GitVersion` (templates call both, and printing it prints the version).
#[derive(Debug)]
pub struct KubeVersion {
    pub version: String,
    pub major: String,
    pub minor: String,
}

impl KubeVersion {
    /// Helm's `ParseKubeVersion` (`1.31` -> `v1.31.0`).
    pub fn parse(v: &str) -> Result<KubeVersion, String> {
        let t = v.trim().trim_start_matches('v');
        // k8s.io/apimachinery's ParseGeneric: 2 or 3 numeric components,
        // then anything after `-` or `+`.
        let end = t.find(['-', '+']).unwrap_or(t.len());
        let (nums, rest) = t.split_at(end);
        let parts: Vec<&str> = nums.split('.').collect();
        if parts.len() < 2
            || parts.len() > 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
        {
            return Err(format!(
                "could not parse {} as version",
                super::template::quote(v)
            ));
        }
        let n: Vec<u64> = parts
            .iter()
            .map(|p| {
                p.parse::<u64>()
                    .map_err(|_| format!("illegal version string {}", super::template::quote(v)))
            })
            .collect::<Result<_, _>>()?;
        // k8s.io/apimachinery's Version.String: the components as given.
        let nums: Vec<String> = n.iter().map(u64::to_string).collect();
        Ok(KubeVersion {
            version: format!("v{}{}", nums.join("."), rest),
            major: n[0].to_string(),
            minor: n[1].to_string(),
        })
    }
}

impl Object for KubeVersion {
    fn type_name(&self) -> &str {
        "chartutil.KubeVersion"
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Version" => Value::from(self.version.as_str()),
            "Major" => Value::from(self.major.as_str()),
            "Minor" => Value::from(self.minor.as_str()),
            _ => return None,
        })
    }
    fn method(&self, name: &str) -> Option<Func> {
        match name {
            "String" | "GitVersion" => {
                let v = Value::from(self.version.as_str());
                Some(Func::new(vec![], None, move |_, _| Ok(v.clone())))
            }
            _ => None,
        }
    }
    fn is_pointer(&self) -> bool {
        false
    }
    fn print(&self) -> String {
        format!("{{{} {} {}}}", self.version, self.major, self.minor)
    }
    fn action_print(&self) -> String {
        // text/template prints through the pointer's String method.
        self.version.clone()
    }
}

/// `.Capabilities.APIVersions`: a list of strings with `Has`.
#[derive(Debug)]
pub struct VersionSet(pub Vec<String>);

impl Object for VersionSet {
    fn type_name(&self) -> &str {
        "chartutil.VersionSet"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn method(&self, name: &str) -> Option<Func> {
        match name {
            "Has" => {
                let set = self.0.clone();
                Some(Func::new(vec![Param::String], None, move |_, a| {
                    let want = match &a[0] {
                        Value::String(s) => s.to_string(),
                        _ => String::new(),
                    };
                    Ok(Value::Bool(set.contains(&want)))
                }))
            }
            _ => None,
        }
    }
    fn is_pointer(&self) -> bool {
        false
    }
    fn print(&self) -> String {
        format!("[{}]", self.0.join(" "))
    }
    fn as_list(&self) -> Option<Value> {
        Some(strings(&self.0))
    }
}

/// `.Capabilities`.
pub fn capabilities(kube: KubeVersion, api_versions: Vec<String>, helm_version: &str) -> Value {
    Struct::value(
        "*chartutil.Capabilities",
        vec![
            ("KubeVersion", Value::Object(Rc::new(kube))),
            (
                "APIVersions",
                Value::Object(Rc::new(VersionSet(api_versions))),
            ),
            (
                "HelmVersion",
                Struct::value(
                    "version.BuildInfo",
                    vec![
                        ("Version", Value::from(helm_version)),
                        ("GitCommit", Value::from("")),
                        ("GitTreeState", Value::from("")),
                        ("GoVersion", Value::from("")),
                    ],
                ),
            ),
        ],
    )
}

/// `.Files`: the chart's files outside `templates/` (and other than
/// `Chart.yaml`, `values.yaml`, `values.schema.json` and `charts/`).
#[derive(Debug, Clone, Default)]
pub struct Files(pub Rc<BTreeMap<String, Rc<[u8]>>>);

impl Files {
    fn get(&self, name: &str) -> Option<&Rc<[u8]>> {
        self.0.get(name)
    }
}

/// A Go `[]byte`, as `.Files.GetBytes` gives it.
#[derive(Debug)]
pub struct Bytes(pub Rc<[u8]>);

impl Object for Bytes {
    fn type_name(&self) -> &str {
        "[]uint8"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn is_pointer(&self) -> bool {
        false
    }
    fn print(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(u8::to_string).collect();
        format!("[{}]", parts.join(" "))
    }
    fn as_list(&self) -> Option<Value> {
        Some(Value::list(
            self.0.iter().map(|x| Value::Int(i64::from(*x))).collect(),
        ))
    }
    fn bytes(&self) -> Option<&[u8]> {
        Some(&self.0)
    }
}

fn bytes_value(b: &[u8]) -> Value {
    Value::Object(Rc::new(Bytes(b.into())))
}

impl Object for Files {
    fn type_name(&self) -> &str {
        "engine.files"
    }
    fn field(&self, name: &str) -> Option<Value> {
        // A map type: a key that is not a method is a map lookup.
        Some(match self.get(name) {
            Some(b) => bytes_value(b),
            None => Value::Nil,
        })
    }
    fn method(&self, name: &str) -> Option<Func> {
        let files = self.clone();
        let text = |a: &[Value]| match &a[0] {
            Value::String(s) => s.to_string(),
            _ => String::new(),
        };
        Some(match name {
            "Get" => Func::new(vec![Param::String], None, move |_, a| {
                Ok(Value::from(
                    files
                        .get(&text(a))
                        .map(|b| super::template::go_string_from_bytes(b))
                        .unwrap_or_default(),
                ))
            }),
            "GetBytes" => Func::new(vec![Param::String], None, move |_, a| {
                Ok(bytes_value(
                    files.get(&text(a)).map(|b| &b[..]).unwrap_or(&[]),
                ))
            }),
            "Glob" => Func::new(vec![Param::String], None, move |_, a| {
                let pattern = text(a);
                let matcher = Glob::compile(&pattern)
                    .unwrap_or_else(|| Glob::compile("**").expect("** compiles"));
                let found: BTreeMap<String, Rc<[u8]>> = files
                    .0
                    .iter()
                    .filter(|(n, _)| matcher.matches(n))
                    .map(|(n, b)| (n.clone(), b.clone()))
                    .collect();
                Ok(Value::Object(Rc::new(Files(Rc::new(found)))))
            }),
            "AsConfig" => Func::new(vec![], None, move |_, _| {
                let m: BTreeMap<String, Value> = files
                    .0
                    .iter()
                    .map(|(n, b)| {
                        (
                            super::sprig::path_base(n),
                            Value::from(super::template::go_string_from_bytes(b)),
                        )
                    })
                    .collect();
                Ok(Value::from(
                    yaml_v2::marshal(&Value::map(m))
                        .trim_end_matches('\n')
                        .to_string(),
                ))
            }),
            "AsSecrets" => Func::new(vec![], None, move |_, _| {
                let m: BTreeMap<String, Value> = files
                    .0
                    .iter()
                    .map(|(n, b)| {
                        (
                            super::sprig::path_base(n),
                            Value::from(data_encoding::BASE64.encode(b)),
                        )
                    })
                    .collect();
                Ok(Value::from(
                    yaml_v2::marshal(&Value::map(m))
                        .trim_end_matches('\n')
                        .to_string(),
                ))
            }),
            "Lines" => Func::new(vec![Param::String], None, move |_, a| {
                let Some(b) = files.get(&text(a)) else {
                    return Ok(Value::list(Vec::new()));
                };
                let s = String::from_utf8_lossy(b);
                let s = s.strip_suffix('\n').unwrap_or(&s);
                Ok(Value::list(s.split('\n').map(Value::from).collect()))
            }),
            _ => return None,
        })
    }
    fn is_pointer(&self) -> bool {
        false
    }
    fn print(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}:{}", Bytes(v.clone()).print()))
            .collect();
        format!("map[{}]", parts.join(" "))
    }
    fn as_map(&self) -> Option<Value> {
        Some(Value::map(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), bytes_value(v)))
                .collect(),
        ))
    }
}

/// gobwas/glob with `/` as the separator, as `.Files.Glob` compiles
/// patterns: `*` and `?` stay within a path segment, `**` crosses them,
/// `[abc]`, `[!a-z]` and `{a,b}` alternatives.
#[derive(Debug)]
pub struct Glob {
    tokens: Vec<Tok>,
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    Any,
    Super,
    Single,
    Class {
        neg: bool,
        ranges: Vec<(char, char)>,
    },
    Alt(Vec<Vec<Tok>>),
}

impl Glob {
    pub fn compile(p: &str) -> Option<Glob> {
        let chars: Vec<char> = p.chars().collect();
        let (tokens, rest) = parse_glob(&chars, 0, false)?;
        if rest != chars.len() {
            return None;
        }
        Some(Glob { tokens })
    }

    pub fn matches(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        glob_match(&self.tokens, &chars)
    }
}

fn parse_glob(c: &[char], mut i: usize, in_alt: bool) -> Option<(Vec<Tok>, usize)> {
    let mut out = Vec::new();
    while i < c.len() {
        match c[i] {
            '*' => {
                if c.get(i + 1) == Some(&'*') {
                    out.push(Tok::Super);
                    i += 2;
                } else {
                    out.push(Tok::Any);
                    i += 1;
                }
            }
            '?' => {
                out.push(Tok::Single);
                i += 1;
            }
            '\\' => {
                out.push(Tok::Lit(*c.get(i + 1)?));
                i += 2;
            }
            '[' => {
                i += 1;
                let neg = c.get(i) == Some(&'!');
                if neg {
                    i += 1;
                }
                let mut ranges = Vec::new();
                while i < c.len() && c[i] != ']' {
                    let lo = c[i];
                    if c.get(i + 1) == Some(&'-') && c.get(i + 2).is_some_and(|x| *x != ']') {
                        ranges.push((lo, c[i + 2]));
                        i += 3;
                    } else {
                        ranges.push((lo, lo));
                        i += 1;
                    }
                }
                if i >= c.len() {
                    return None;
                }
                i += 1;
                out.push(Tok::Class { neg, ranges });
            }
            '{' => {
                let mut alts = Vec::new();
                i += 1;
                loop {
                    let (alt, next) = parse_glob(c, i, true)?;
                    alts.push(alt);
                    i = next;
                    match c.get(i) {
                        Some(',') => i += 1,
                        Some('}') => {
                            i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
                out.push(Tok::Alt(alts));
            }
            ',' | '}' if in_alt => return Some((out, i)),
            ch => {
                out.push(Tok::Lit(ch));
                i += 1;
            }
        }
    }
    Some((out, i))
}

fn glob_match(t: &[Tok], s: &[char]) -> bool {
    let Some((first, rest)) = t.split_first() else {
        return s.is_empty();
    };
    match first {
        Tok::Lit(c) => s.first() == Some(c) && glob_match(rest, &s[1..]),
        Tok::Single => s.first().is_some_and(|c| *c != '/') && glob_match(rest, &s[1..]),
        Tok::Class { neg, ranges } => {
            s.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *neg
            }) && glob_match(rest, &s[1..])
        }
        Tok::Any => {
            for k in 0..=s.len() {
                if glob_match(rest, &s[k..]) {
                    return true;
                }
                if k < s.len() && s[k] == '/' {
                    break;
                }
            }
            false
        }
        Tok::Super => (0..=s.len()).any(|k| glob_match(rest, &s[k..])),
        Tok::Alt(alts) => alts.iter().any(|a| {
            let mut joined = a.clone();
            joined.extend_from_slice(rest);
            glob_match(&joined, s)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_gobwas_matches_them() {
        let g = Glob::compile("config/*").unwrap();
        assert!(g.matches("config/a.yaml"));
        assert!(!g.matches("config/sub/a.yaml"));
        assert!(
            Glob::compile("config/**")
                .unwrap()
                .matches("config/sub/a.yaml")
        );
        assert!(Glob::compile("*.{json,yaml}").unwrap().matches("a.yaml"));
        assert!(Glob::compile("file[0-9].txt").unwrap().matches("file3.txt"));
    }

    #[test]
    fn kube_versions_parse_as_helm_parses_them() {
        let k = KubeVersion::parse("1.31").unwrap();
        assert_eq!(
            (k.version.as_str(), k.major.as_str(), k.minor.as_str()),
            ("v1.31", "1", "31")
        );
        assert_eq!(KubeVersion::parse("v1.31.2").unwrap().version, "v1.31.2");
        assert_eq!(
            KubeVersion::parse("v1.30.2-gke.1").unwrap().version,
            "v1.30.2-gke.1"
        );
        assert!(KubeVersion::parse("one").is_err());
    }
}

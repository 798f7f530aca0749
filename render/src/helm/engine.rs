//! Helm's engine (`pkg/engine`): every template of the chart and its
//! subcharts parsed into one set (shallower paths first, then by name,
//! the whole order reversed), each non-partial executed with its chart's
//! scope (`.Values` narrowed to the subchart, `.Chart`, `.Files`,
//! `.Template`), `<no value>` removed from the output, and Helm's own
//! functions: `include`, `tpl`, `required`, `fail`, `lookup`, `toYaml`...
//! Functions whose results change between calls are refused.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::HelmError;
use super::chart::Chart;
use super::objects::{Files, chart_value};
use super::sprig;
use super::template::{Error as TplError, Func, MissingKey, Param, Parsed, Templates, Value};
use super::yaml_v2;

const WARN_START: &str = "HELM_ERR_START";
const WARN_END: &str = "HELM_ERR_END";
/// Helm's `recursionMaxNums`: how deep one template may include itself.
const RECURSION_MAX: u32 = 1000;

/// Sprig functions whose result changes on every call: a render using one
/// would never give the same state twice.
pub const NONDETERMINISTIC: &[&str] = &[
    "now",
    "ago",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "randBytes",
    "randInt",
    "shuffle",
    "uuidv4",
    "genPrivateKey",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "bcrypt",
    "htpasswd",
    "encryptAES",
];

/// Sprig functions fleet does not implement yet: they fail when called
/// (not when parsed, so a chart that never calls them renders).
const NOT_YET: &[&str] = &[
    "date",
    "dateInZone",
    "date_in_zone",
    "dateModify",
    "date_modify",
    "mustDateModify",
    "must_date_modify",
    "duration",
    "durationRound",
    "htmlDate",
    "htmlDateInZone",
    "toDate",
    "mustToDate",
    "unixEpoch",
    "fromToml",
    "urlParse",
    "urlJoin",
    "buildCustomCert",
    "derivePassword",
    "decryptAES",
    "osBase",
    "osClean",
    "osDir",
    "osExt",
    "osIsAbs",
    "hello",
];

/// One template file to execute and the scope it runs in.
struct Renderable {
    text: Rc<str>,
    scope: Value,
    base_path: String,
}

/// The scope map of a chart (`next` in Helm's `recAllTpls`), shared by its
/// templates.
fn rec_all_tpls(
    c: &Chart,
    out: &mut BTreeMap<String, Renderable>,
    parent: &BTreeMap<String, Value>,
    parent_path: Option<&str>,
) -> Value {
    let is_root = parent_path.is_none();
    let full_path = match parent_path {
        None => c.name().to_string(),
        Some(p) => format!("{p}/charts/{}", c.name()),
    };
    let values = if is_root {
        parent.get("Values").cloned().unwrap_or(Value::Nil)
    } else {
        match parent.get("Values") {
            Some(Value::Map(m)) => match m.borrow().get(c.name()) {
                Some(v @ Value::Map(_)) => v.clone(),
                _ => Value::map(BTreeMap::new()),
            },
            _ => Value::map(BTreeMap::new()),
        }
    };
    let files = Files(Rc::new(
        c.files
            .iter()
            .map(|f| (f.name.clone(), f.data.clone()))
            .collect(),
    ));
    let mut next = BTreeMap::new();
    next.insert("Chart".to_string(), chart_value(&c.metadata, is_root));
    next.insert("Files".to_string(), Value::Object(Rc::new(files)));
    next.insert(
        "Release".to_string(),
        parent.get("Release").cloned().unwrap_or(Value::Nil),
    );
    next.insert(
        "Capabilities".to_string(),
        parent.get("Capabilities").cloned().unwrap_or(Value::Nil),
    );
    next.insert("Values".to_string(), values);
    let mut subcharts = BTreeMap::new();
    for child in &c.dependencies {
        let child_scope = rec_all_tpls(child, out, &next, Some(&full_path));
        subcharts.insert(child.name().to_string(), child_scope);
    }
    next.insert("Subcharts".to_string(), Value::map(subcharts));
    let scope = Value::map(next);
    let library = c.metadata.chart_type.eq_ignore_ascii_case("library");
    for t in &c.templates {
        let base = t.name.rsplit('/').next().unwrap_or(&t.name);
        if library && !base.starts_with('_') {
            continue;
        }
        out.insert(
            format!("{full_path}/{}", t.name),
            Renderable {
                text: String::from_utf8_lossy(&t.data).into(),
                scope: scope.clone(),
                base_path: format!("{full_path}/templates"),
            },
        );
    }
    scope
}

/// Helm's `sortTemplates`: by depth, then by name, reversed.
fn sort_templates(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = names.collect();
    keys.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        ca.cmp(&cb).then_with(|| a.cmp(b))
    });
    keys.reverse();
    keys
}

fn warn_wrap(s: &str) -> String {
    format!("{WARN_START}{s}{WARN_END}")
}

/// How a render runs: Helm's `--strict`, and the seed of Sprig's random
/// functions when the app opted in to them (else they are refused).
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    pub strict: bool,
    pub random_seed: Option<[u8; 32]>,
}

/// Functions that may run from a seed when an app opts in: their values
/// are then a function of the seed. Keys, certificates, password hashes
/// and the clock stay refused (a key derived from what the repository
/// holds would be known to everyone who reads it).
pub const SEEDABLE: &[&str] = &[
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "randInt",
    "randBytes",
    "uuidv4",
    "shuffle",
];

/// A stream of bytes from a seed: SHA-256 of the seed and a counter.
struct SeededBytes {
    seed: [u8; 32],
    counter: u64,
    block: Vec<u8>,
}

impl SeededBytes {
    fn next(&mut self) -> u8 {
        if self.block.is_empty() {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            self.counter += 1;
            self.block = h.finalize().iter().rev().copied().collect();
        }
        self.block.pop().unwrap_or(0)
    }

    /// A uniform index below `n` (rejection sampling, no bias).
    fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let mut x = 0u64;
            for _ in 0..8 {
                x = (x << 8) | u64::from(self.next());
            }
            if x < zone {
                return x % n;
            }
        }
    }

    fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

fn install_seeded(t: &mut Templates, seed: [u8; 32]) {
    let rng = Rc::new(RefCell::new(SeededBytes {
        seed,
        counter: 0,
        block: Vec::new(),
    }));
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let count = |a: &[Value]| match a.first() {
        Some(Value::Int(n)) => (*n).max(0) as usize,
        _ => 0,
    };
    for (name, alphabet) in [
        ("randAlphaNum", ALNUM),
        ("randAlpha", &ALNUM[..52]),
        ("randNumeric", &ALNUM[52..]),
    ] {
        let r = rng.clone();
        t.add_func(
            name,
            Func::new(vec![Param::Int], None, move |_, a| {
                Ok(Value::from(r.borrow_mut().pick(alphabet, count(a))))
            }),
        );
    }
    let ascii: Vec<u8> = (32u8..=126).collect();
    let r = rng.clone();
    t.add_func(
        "randAscii",
        Func::new(vec![Param::Int], None, move |_, a| {
            Ok(Value::from(r.borrow_mut().pick(&ascii, count(a))))
        }),
    );
    let r = rng.clone();
    t.add_func(
        "randInt",
        Func::new(vec![Param::Int, Param::Int], None, move |_, a| {
            let (lo, hi) = match (&a[0], &a[1]) {
                (Value::Int(x), Value::Int(y)) => (*x, *y),
                _ => (0, 0),
            };
            if hi <= lo {
                return Err("invalid argument to Intn".into());
            }
            Ok(Value::Int(
                lo + r.borrow_mut().below((hi - lo) as u64) as i64,
            ))
        }),
    );
    let r = rng.clone();
    t.add_func(
        "randBytes",
        Func::new(vec![Param::Int], None, move |_, a| {
            let b: Vec<u8> = (0..count(a)).map(|_| r.borrow_mut().next()).collect();
            Ok(Value::from(data_encoding::BASE64.encode(&b)))
        }),
    );
    let r = rng.clone();
    t.add_func(
        "uuidv4",
        Func::new(vec![], None, move |_, _| {
            let mut b: Vec<u8> = (0..16).map(|_| r.borrow_mut().next()).collect();
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h = hex::encode(&b);
            Ok(Value::from(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )))
        }),
    );
    let r = rng;
    t.add_func(
        "shuffle",
        Func::new(vec![Param::String], None, move |_, a| {
            let mut c: Vec<char> = match &a[0] {
                Value::String(s) => s.chars().collect(),
                _ => Vec::new(),
            };
            for i in (1..c.len()).rev() {
                let j = r.borrow_mut().below(i as u64 + 1) as usize;
                c.swap(i, j);
            }
            Ok(Value::from(c.into_iter().collect::<String>()))
        }),
    );
}

/// Registers Helm's functions over Sprig's, with `include` and `tpl`
/// bound to `set`'s templates when they run.
fn install_funcs(t: &mut Templates, strict: bool) {
    sprig::install(t);
    let included: Rc<RefCell<HashMap<String, u32>>> = Rc::default();
    let inc = included.clone();
    t.add_func(
        "include",
        Func::new(vec![Param::String, Param::Any], None, move |call, a| {
            let name = match &a[0] {
                Value::String(s) => s.to_string(),
                _ => String::new(),
            };
            {
                let mut m = inc.borrow_mut();
                let n = m.entry(name.clone()).or_insert(0);
                if *n > RECURSION_MAX {
                    return Err(format!("rendering template has a nested reference name: {name}: unable to execute template"));
                }
                *n += 1;
            }
            let r = call.execute_template(&name, &a[1]);
            if let Some(n) = inc.borrow_mut().get_mut(&name) {
                *n -= 1;
            }
            r.map(Value::from).map_err(|e| e.to_string())
        }),
    );
    t.add_func(
        "tpl",
        Func::new(vec![Param::String, Param::Any], None, move |call, a| {
            let text = match &a[0] {
                Value::String(s) => s.to_string(),
                _ => String::new(),
            };
            let mut clone = call.templates().clone();
            clone.set_missing_key(if strict {
                MissingKey::Error
            } else {
                MissingKey::Zero
            });
            let root = clone.name().to_string();
            clone.parse(&root, &text).map_err(|e| {
                format!(
                    "cannot parse template {}: {e}",
                    super::template::quote(&text)
                )
            })?;
            let out = call.execute_in(&clone, &root, &a[1]).map_err(|e| {
                format!(
                    "error during tpl function execution for {}: {e}",
                    super::template::quote(&text)
                )
            })?;
            Ok(Value::from(out.replace("<no value>", "")))
        }),
    );
    t.add_func(
        "required",
        Func::new(vec![Param::String, Param::Any], None, |_, a| {
            let warn = match &a[0] {
                Value::String(s) => s.to_string(),
                _ => String::new(),
            };
            match &a[1] {
                Value::Nil => Err(warn_wrap(&warn)),
                Value::String(s) if s.is_empty() => Err(warn_wrap(&warn)),
                v => Ok(v.clone()),
            }
        }),
    );
    t.add_func(
        "fail",
        Func::new(vec![Param::String], None, |_, a| {
            let msg = match &a[0] {
                Value::String(s) => s.to_string(),
                _ => String::new(),
            };
            Err(warn_wrap(&msg))
        }),
    );
    // `helm template` has no cluster: lookup finds nothing.
    t.add_func(
        "lookup",
        Func::new(
            vec![Param::String, Param::String, Param::String, Param::String],
            None,
            |_, _| Ok(Value::map(BTreeMap::new())),
        ),
    );
    t.add_func(
        "toYamlPretty",
        Func::new(vec![Param::Any], None, |_, a| {
            Ok(Value::from(
                yaml_v2::marshal_pretty(&a[0])
                    .trim_end_matches('\n')
                    .to_string(),
            ))
        }),
    );
    t.add_func(
        "toToml",
        Func::new(vec![Param::Any], None, |_, a| {
            Ok(Value::from(super::toml::to_toml(&a[0])))
        }),
    );
    t.add_func(
        "getHostByName",
        Func::new(vec![Param::String], None, |_, _| Ok(Value::from(""))),
    );
    t.add_func(
        "toYaml",
        Func::new(vec![Param::Any], None, |_, a| {
            Ok(Value::from(
                yaml_v2::marshal(&a[0]).trim_end_matches('\n').to_string(),
            ))
        }),
    );
    t.add_func(
        "fromYaml",
        Func::new(vec![Param::String], None, |_, a| {
            let text = match &a[0] {
                Value::String(s) => s.to_string(),
                _ => String::new(),
            };
            Ok(match from_yaml(&text) {
                Ok(Value::Map(m)) => Value::Map(m),
                Ok(Value::Nil) => Value::map(BTreeMap::new()),
                Ok(other) => Value::map(BTreeMap::from([(
                    "Error".to_string(),
                    Value::from(format!(
                        "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                        json_kind(&other)
                    )),
                )])),
                Err(e) => Value::map(BTreeMap::from([("Error".to_string(), Value::from(e))])),
            })
        }),
    );
    t.add_func(
        "fromYamlArray",
        Func::new(vec![Param::String], None, |_, a| {
            let text = match &a[0] {
                Value::String(s) => s.to_string(),
                _ => String::new(),
            };
            Ok(match from_yaml(&text) {
                Ok(Value::List(l)) => Value::List(l),
                Ok(Value::Nil) => Value::list(Vec::new()),
                Ok(other) => Value::list(vec![Value::from(format!(
                    "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
                    json_kind(&other)
                ))]),
                Err(e) => Value::list(vec![Value::from(e)]),
            })
        }),
    );
    for name in NONDETERMINISTIC {
        let n = name.to_string();
        t.add_func(
            name,
            Func::new(vec![], Some(Param::Any), move |_, _| {
                let opt_in = if SEEDABLE.contains(&n.as_str()) {
                    " (an app may opt in to values derived from a seed: helm.seededRandom in app.yaml)"
                } else {
                    ""
                };
                Err(format!(
                    "fleet does not render {n}: its result changes on every render, so the cluster's state would never settle{opt_in}"
                ))
            }),
        );
    }
    for name in NOT_YET {
        let n = name.to_string();
        t.add_func(
            name,
            Func::new(vec![], Some(Param::Any), move |_, _| {
                Err(format!("fleet does not implement {n} yet"))
            }),
        );
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "array",
        Value::Map(_) => "object",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        _ => "number",
    }
}

/// go-yaml's wording of a parse error: `yaml: line N: problem`, the line
/// left out when the problem is on the first one.
pub(crate) fn go_yaml_error(e: &crate::yaml::YamlError) -> String {
    let m = e.to_string();
    let m = m.trim_start_matches(": ");
    let (problem, line) = match m.rfind(" at char ") {
        Some(i) => {
            let tail = &m[i..];
            let line = tail
                .split_whitespace()
                .skip_while(|w| *w != "line")
                .nth(1)
                .and_then(|l| l.parse::<usize>().ok());
            (&m[..i], line)
        }
        None => (m, None),
    };
    match line {
        Some(l) if l > 1 => format!("yaml: line {l}: {problem}"),
        _ => format!("yaml: {problem}"),
    }
}

/// `sigs.k8s.io/yaml.Unmarshal` into `interface{}`: the first document,
/// numbers as `float64`.
fn from_yaml(text: &str) -> Result<Value, String> {
    let docs = crate::yaml::parse_documents("", text.as_bytes())
        .map_err(|e| format!("error converting YAML to JSON: {}", go_yaml_error(&e)))?;
    Ok(docs.first().map(Value::from_json).unwrap_or(Value::Nil))
}

/// Helm's `cleanupParseError`.
fn parse_error(filename: &str, e: &TplError) -> HelmError {
    let msg = e.to_string();
    let tokens: Vec<&str> = msg.split(": ").collect();
    if tokens.len() == 1 {
        return HelmError::Render(format!("parse error in ({filename}): {msg}"));
    }
    HelmError::Render(format!(
        "parse error at ({}): {}",
        tokens[1],
        tokens[tokens.len() - 1]
    ))
}

/// Helm's `cleanupExecError`.
fn exec_error(filename: &str, e: &TplError) -> HelmError {
    let msg = e.to_string();
    if !matches!(e, TplError::Exec { .. }) {
        return HelmError::Render(msg);
    }
    let tokens: Vec<&str> = msg.splitn(3, ": ").collect();
    if tokens.len() != 3 {
        return HelmError::Render(format!("execution error in ({filename}): {msg}"));
    }
    if let Some(start) = tokens[2].find(WARN_START) {
        let after = &tokens[2][start + WARN_START.len()..];
        if let Some(end) = after.rfind(WARN_END) {
            return HelmError::Render(format!(
                "execution error at ({}): {}",
                tokens[1],
                &after[..end]
            ));
        }
    }
    HelmError::Render(msg)
}

thread_local! {
    /// Parsed template files by (path, text): a chart renders for every
    /// cluster with the same templates, and every render registers the same
    /// functions, so a file parses once per thread.
    static PARSED: RefCell<HashMap<(String, Rc<str>), Parsed>> = RefCell::new(HashMap::new());
}

/// How many parsed files a thread keeps before starting over.
const PARSED_MAX: usize = 4096;

fn parse_cached(set: &Templates, name: &str, text: &Rc<str>) -> Result<Parsed, TplError> {
    let key = (name.to_string(), text.clone());
    if let Some(p) = PARSED.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(p);
    }
    let parsed = set.parse_only(name, text)?;
    PARSED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= PARSED_MAX {
            c.clear();
        }
        c.insert(key, parsed.clone());
    });
    Ok(parsed)
}

/// Renders every template: file path -> output.
pub fn render(
    chart: &Chart,
    top: &BTreeMap<String, Value>,
    opts: &EngineOptions,
) -> Result<BTreeMap<String, String>, HelmError> {
    let mut tpls = BTreeMap::new();
    rec_all_tpls(chart, &mut tpls, top, None);
    let mut set = Templates::new("gotpl");
    set.set_missing_key(if opts.strict {
        MissingKey::Error
    } else {
        MissingKey::Zero
    });
    install_funcs(&mut set, opts.strict);
    if let Some(seed) = opts.random_seed {
        install_seeded(&mut set, seed);
    }
    let keys = sort_templates(tpls.keys().cloned());
    for name in &keys {
        let r = &tpls[name];
        let parsed = parse_cached(&set, name, &r.text).map_err(|e| parse_error(name, &e))?;
        set.add_parsed(&parsed);
    }
    let mut rendered = BTreeMap::new();
    for name in &keys {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.starts_with('_') {
            continue;
        }
        let r = &tpls[name];
        if let Value::Map(m) = &r.scope {
            let mut t = BTreeMap::new();
            t.insert("Name".to_string(), Value::from(name.as_str()));
            t.insert("BasePath".to_string(), Value::from(r.base_path.as_str()));
            m.borrow_mut().insert("Template".to_string(), Value::map(t));
        }
        let out = set
            .execute(name, &r.scope)
            .map_err(|e| exec_error(name, &e))?;
        rendered.insert(name.clone(), out.replace("<no value>", ""));
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_shallow_first_reversed() {
        let keys = sort_templates(
            [
                "c/templates/b.yaml",
                "c/charts/s/templates/a.yaml",
                "c/templates/a.yaml",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        assert_eq!(
            keys,
            vec![
                "c/charts/s/templates/a.yaml",
                "c/templates/b.yaml",
                "c/templates/a.yaml"
            ]
        );
    }
}

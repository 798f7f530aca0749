//! Golden tests for the Go `text/template` engine (`fleet_render::helm::template`).
//!
//! Each directory under `tests/gotemplate/` is one case:
//! - `*.tpl` are template files, parsed into one set in Helm's order for
//!   files of one directory (reverse lexicographic), `template.tpl` executed;
//! - `values.yaml` is the data, read as Helm reads values (YAML to JSON,
//!   numbers as float64);
//! - `options` (optional) is Go's `missingkey=` option; without it
//!   `missingkey=zero`, as Helm renders when not strict;
//! - `objects` (optional, empty) adds the test objects below as `.Caps`;
//! - `expected.txt` is what Go's `text/template` wrote, or
//!   `expected-error.txt` the error it returned (and a newline).
//!
//! The expectations were written by a small Go program over stdlib
//! `text/template` and `encoding/json` (see docs/helm.md); Go is not needed
//! to run these tests. Output is compared byte for byte.

mod golden;

use std::path::{Path, PathBuf};

use std::rc::Rc;

use fleet_render::helm::template::{Func, MissingKey, Object, Param, Templates, Value, sprint};
use fleet_render::yaml::parse_documents;

fn cases() -> Vec<PathBuf> {
    golden::cases("gotemplate", "template.tpl", "GOTEMPLATE_CASE")
}

// The test objects the Go program builds too (with an `objects` file in
// the case): Go structs with fields and methods, as Helm's built-in objects.

#[derive(Debug)]
struct VersionSet(Vec<&'static str>);

impl Object for VersionSet {
    fn type_name(&self) -> &str {
        "main.VersionSet"
    }
    fn field(&self, _: &str) -> Option<Value> {
        None
    }
    fn method(&self, name: &str) -> Option<Func> {
        let set = self.0.clone();
        (name == "Has").then(|| {
            Func::new(vec![Param::String], None, move |_, a| {
                Ok(Value::Bool(set.iter().any(|v| *v == string(&a[0]))))
            })
        })
    }
    fn print(&self) -> String {
        format!("[{}]", self.0.join(" "))
    }
}

#[derive(Debug)]
struct KubeVer;

impl Object for KubeVer {
    fn type_name(&self) -> &str {
        "*main.KubeVer"
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Version" => "v1.30.0".into(),
            "Major" => "1".into(),
            "Minor" => "30".into(),
            _ => return None,
        })
    }
    fn method(&self, name: &str) -> Option<Func> {
        (name == "GitVersion").then(|| Func::new(vec![], None, |_, _| Ok("v1.30.0".into())))
    }
    fn print(&self) -> String {
        "{v1.30.0 1 30}".into()
    }
}

#[derive(Debug)]
struct Caps;

impl Object for Caps {
    fn type_name(&self) -> &str {
        "*main.Caps"
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "KubeVersion" => Value::Object(Rc::new(KubeVer)),
            "APIVersions" => Value::Object(Rc::new(VersionSet(vec!["apps/v1", "v1"]))),
            "Name" => "caps".into(),
            _ => return None,
        })
    }
    fn method(&self, name: &str) -> Option<Func> {
        (name == "Greet").then(|| {
            Func::new(vec![Param::String, Param::Int], None, |_, a| match a[1] {
                Value::Int(n) if n < 0 => Err("negative".into()),
                Value::Int(n) => Ok(format!("hi {} ", string(&a[0])).repeat(n as usize).into()),
                _ => Err("n".into()),
            })
        })
    }
    fn print(&self) -> String {
        "{0xc000010000 [apps/v1 v1] caps}".into()
    }
}

fn values(case: &Path) -> Value {
    let mut map = match std::fs::read(case.join("values.yaml")) {
        Err(_) => Default::default(),
        Ok(bytes) => {
            let docs = parse_documents("values.yaml", &bytes).expect("values.yaml parses");
            match docs.first().map(Value::from_json) {
                Some(Value::Map(m)) => m.borrow().clone(),
                _ => Default::default(),
            }
        }
    };
    if case.join("objects").is_file() {
        map.insert("Caps".to_string(), Value::Object(Rc::new(Caps)));
    }
    Value::map(map)
}

fn string(v: &Value) -> &str {
    match v {
        Value::String(s) => s,
        _ => "",
    }
}

/// The test functions the Go program registers too, with the same Go
/// signatures: they check that registered functions get their arguments
/// converted, counted and refused as Go does.
fn register_test_funcs(set: &mut Templates) {
    use Param::{Any, Bool, Float, Int, String};
    set.add_func(
        "upper",
        Func::new(vec![String], None, |_, a| {
            Ok(string(&a[0]).to_uppercase().into())
        }),
    );
    set.add_func(
        "repeat",
        Func::new(vec![Int, String], None, |_, a| {
            let Value::Int(n) = a[0] else {
                return Err("n".into());
            };
            Ok(string(&a[1]).repeat(n.max(0) as usize).into())
        }),
    );
    set.add_func(
        "fail",
        Func::new(vec![String], None, |_, a| match string(&a[0]) {
            "" => Ok("ok".into()),
            m => Err(format!("failed: {m}")),
        }),
    );
    set.add_func(
        "identity",
        Func::new(vec![Any], None, |_, a| Ok(a[0].clone())),
    );
    set.add_func(
        "join",
        Func::new(vec![String], Some(Any), |_, a| {
            let parts: Vec<std::string::String> = a[1..]
                .iter()
                .map(|p| sprint(std::slice::from_ref(p)))
                .collect();
            Ok(parts.join(string(&a[0])).into())
        }),
    );
    set.add_func(
        "half",
        Func::new(vec![Float], None, |_, a| match a[0] {
            Value::Float(f) => Ok(Value::Float(f / 2.0)),
            _ => Err("f".into()),
        }),
    );
    // Helm's include, without its recursion counter.
    set.add_func(
        "include",
        Func::new(vec![String, Any], None, |call, a| {
            call.execute_template(string(&a[0]), &a[1])
                .map(Value::from)
                .map_err(|e| e.to_string())
        }),
    );
    set.add_func(
        "yesno",
        Func::new(vec![Bool], None, |_, a| {
            Ok(if a[0] == Value::Bool(true) {
                "yes"
            } else {
                "no"
            }
            .into())
        }),
    );
}

/// Renders one case: the output, or the error as Go prints it.
fn render(case: &Path) -> Result<String, String> {
    let mut set = Templates::new("gotpl");
    register_test_funcs(&mut set);
    let option = std::fs::read_to_string(case.join("options")).unwrap_or_default();
    set.set_missing_key(match option.trim() {
        "missingkey=error" => MissingKey::Error,
        "missingkey=default" | "missingkey=invalid" => MissingKey::Default,
        _ => MissingKey::Zero,
    });
    let mut files: Vec<String> = std::fs::read_dir(case)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tpl"))
        .collect();
    files.sort();
    files.reverse();
    for f in &files {
        let text = std::fs::read_to_string(case.join(f)).unwrap();
        set.parse(f, &text).map_err(|e| e.to_string())?;
    }
    set.execute("template.tpl", &values(case))
        .map_err(|e| e.to_string())
}

fn check(case: &Path) -> Result<(), String> {
    let got = render(case);
    if let Ok(want) = std::fs::read_to_string(case.join("expected-error.txt")) {
        return match got {
            Ok(out) => Err(format!("rendered, but Go failed with\n  {want}got\n{out}")),
            Err(e) if format!("{e}\n") == want => Ok(()),
            Err(e) => Err(format!(
                "error differs\n  got  {e}\n  want {}",
                want.trim_end()
            )),
        };
    }
    let want = std::fs::read_to_string(case.join("expected.txt")).map_err(|e| e.to_string())?;
    match got {
        Err(e) => Err(format!("failed: {e}\n--- want\n{want}")),
        Ok(out) if out == want => Ok(()),
        Ok(out) => Err(format!("output differs\n--- got\n{out}\n--- want\n{want}")),
    }
}

#[test]
fn gotemplate_goldens_match_go() {
    let cases = cases();
    if std::env::var_os("GOTEMPLATE_CASE").is_none() {
        assert!(cases.len() >= 40, "only {} golden cases", cases.len());
    }
    golden::check_all(&cases, check);
}

#[test]
fn every_case_has_an_expectation() {
    for case in cases() {
        assert!(
            case.join("expected.txt").is_file() || case.join("expected-error.txt").is_file(),
            "{} has neither expected.txt nor expected-error.txt",
            case.display()
        );
    }
}

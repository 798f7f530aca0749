//! Limits and API checks that Go-written goldens cannot cover.

use super::*;

fn run(text: &str) -> Result<String, Error> {
    let mut set = Templates::new("gotpl");
    set.parse("t", text)?;
    set.execute("t", &Value::Nil)
}

/// Runs `f` on a thread with a 2 MiB stack, the size of a tokio worker's.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn runaway_template_recursion_fails_without_exhausting_the_stack() {
    let err =
        on_small_stack(|| run(r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}"#))
            .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("exceeded maximum template depth (1000)"),
        "{err}"
    );
}

#[test]
fn deep_nesting_fails_to_parse_without_exhausting_the_stack() {
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    let err = on_small_stack(move || run(&parens)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: t:1: max expression depth exceeded"
    );
    let ifs = format!("{}x{}", "{{if 1}}".repeat(5000), "{{end}}".repeat(5000));
    let err = on_small_stack(move || run(&ifs)).unwrap_err();
    assert_eq!(err.to_string(), "template: t:1: max nesting depth exceeded");
}

#[test]
fn nesting_at_the_limits_executes_on_a_small_stack() {
    let out = on_small_stack(|| {
        let ifs = format!("{}x{}", "{{if 1}}".repeat(999), "{{end}}".repeat(999));
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(999), ")".repeat(999));
        // 990 nested templates, each inside 50 nested blocks.
        let deep = format!(
            r#"{{{{define "r"}}}}{}{{{{if .}}}}{{{{template "r" (slice . 1)}}}}{{{{else}}}}done{{{{end}}}}{}{{{{end}}}}"#,
            "{{if true}}".repeat(50),
            "{{end}}".repeat(50)
        );
        let mut set = Templates::new("gotpl");
        set.parse("deep", &deep).unwrap();
        let list = Value::List(std::rc::Rc::new(vec![Value::Int(1); 990]));
        assert_eq!(set.execute("r", &list).unwrap(), "done");
        (run(&ifs).unwrap(), run(&parens).unwrap())
    });
    assert_eq!(out, ("x".to_string(), "1".to_string()));
}

#[test]
fn include_like_functions_execute_other_templates() {
    let mut set = Templates::new("gotpl");
    set.add_func(
        "include",
        Func::new(vec![Param::String, Param::Any], None, |call, a| {
            let Value::String(name) = &a[0] else {
                return Err("name".into());
            };
            call.execute_template(name, &a[1])
                .map(Value::from)
                .map_err(|e| e.to_string())
        }),
    );
    set.parse("_helpers.tpl", r#"{{define "name"}}{{.}}-x{{end}}"#)
        .unwrap();
    set.parse(
        "t",
        r#"{{ include "name" "a" | printf "%q" }} {{ include "nope" 1 }}"#,
    )
    .unwrap();
    let err = set.execute("t", &Value::Nil).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"template: t:1:42: executing "t" at <include "nope" 1>: error calling include: template: no template "nope" associated with template "gotpl""#
    );
    set.parse("t2", r#"{{ include "name" "a" | printf "%q" }}"#)
        .unwrap();
    assert_eq!(set.execute("t2", &Value::Nil).unwrap(), r#""a-x""#);
}

#[test]
fn helm_values_are_float64() {
    let v = Value::from_json(&serde_json::json!({"n": 1000000, "l": [1, "a"], "z": null}));
    let mut set = Templates::new("gotpl");
    set.set_missing_key(MissingKey::Zero);
    set.parse("t", "{{ .n }} {{ .l }} {{ .z }} {{ printf \"%T\" .n }}")
        .unwrap();
    assert_eq!(
        set.execute("t", &v).unwrap(),
        "1e+06 [1 a] <no value> float64"
    );
}

/// Random templates from template-ish pieces never panic the engine: they
/// render or fail with an error.
#[test]
fn random_templates_do_not_panic() {
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{{-",
        " -}}",
        " ",
        "\n",
        ".",
        ".a",
        ".b.c",
        "$",
        "$x",
        ":=",
        "=",
        "|",
        "(",
        ")",
        "if",
        "else",
        "end",
        "range",
        "with",
        "define",
        "template",
        "block",
        "break",
        "continue",
        "\"s\"",
        "`r`",
        "'c'",
        "1",
        "-2",
        "1.5",
        "0x1F",
        "1e3",
        "nil",
        "true",
        "len",
        "index",
        "slice",
        "eq",
        "lt",
        "and",
        "or",
        "not",
        "print",
        "printf",
        "\"%d %s %v %q %x %5.2f %[2]d %*d %\"",
        "html",
        "js",
        "urlquery",
        "call",
        "/*",
        "*/",
        ",",
        "é",
        "\"\\u00e9\"",
        "\"\\x\"",
        "9223372036854775808",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let data = Value::from_json(&serde_json::json!({
        "a": [1, "x", null, {"k": "v"}], "b": {"c": 2.5}, "s": "héllo"
    }));
    let (mut parsed, mut executed) = (0, 0);
    for _ in 0..20_000 {
        let n = (next() % 24) as usize;
        let mut text = String::new();
        for _ in 0..n {
            if next() % 2 == 0 {
                // A whole action of a few pieces, so more of them parse.
                text.push_str("{{ ");
                for _ in 0..1 + next() % 3 {
                    text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
                    text.push(' ');
                }
                text.push_str("}}");
                continue;
            }
            text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            if next() % 3 == 0 {
                text.push(' ');
            }
        }
        let mut set = Templates::new("gotpl");
        set.set_missing_key(MissingKey::Zero);
        if set.parse("t", &text).is_ok() {
            parsed += 1;
            if set.execute("t", &data).is_ok() {
                executed += 1;
            }
        }
    }
    // The pieces make enough valid templates to reach the executor.
    assert!(
        parsed > 1_000 && executed > 500,
        "{parsed} parsed, {executed} executed"
    );
}

#[test]
fn endless_loops_run_out_of_steps() {
    let mut set = Templates::new("gotpl");
    set.set_max_steps(10_000);
    set.parse("_h", r#"{{define "h"}}{{range 3}}x{{end}}{{end}}"#)
        .unwrap();
    set.parse("t", "{{ range 1000000000000 }}{{ end }}")
        .unwrap();
    let err = set.execute("t", &Value::Nil).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"template: t:1:9: executing "t" at <1000000000000>: execution exceeded 10000 steps"#
    );
    // The budget is per execution: each one starts afresh.
    set.parse("u", r#"{{ range 2000 }}{{ template "h" }}{{ end }}"#)
        .unwrap();
    assert!(set.execute("u", &Value::Nil).is_err());
    set.parse("v", r#"{{ range 100 }}{{ template "h" }}{{ end }}"#)
        .unwrap();
    assert_eq!(set.execute("v", &Value::Nil).unwrap().len(), 300);
    assert_eq!(set.execute("v", &Value::Nil).unwrap().len(), 300);
}

#[test]
fn huge_output_is_refused() {
    let err = run(r#"{{ range 100000 }}{{ printf "%1000d" 1 }}{{ end }}"#).unwrap_err();
    assert!(
        err.to_string().ends_with("output exceeded 67108864 bytes"),
        "{err}"
    );
}

//! `values.schema.json`, checked as Helm 3.19 checks it (JSON Schema with
//! santhosh-tekuri/jsonschema v6's messages): the chart's schema against
//! its values, each subchart's against its part. The keywords charts use:
//! `type`, `properties`, `required`, `additionalProperties`, `items`,
//! `enum`, `const`, bounds on numbers, strings, arrays and objects,
//! `pattern`, `allOf`/`anyOf`/`oneOf`/`not`, and local `$ref`s. A remote
//! `$ref` is an error: fleet fetches nothing while rendering.

use serde_json::{Map, Value};

use super::chart::Chart;
use super::{HelmError, go_type};

/// `ValidateAgainstSchema`.
pub fn validate(chart: &Chart, values: &Map<String, Value>) -> Result<(), HelmError> {
    let mut report = String::new();
    collect(chart, values, &mut report)?;
    if report.is_empty() {
        return Ok(());
    }
    Err(HelmError::Values(format!(
        "values don't meet the specifications of the schema(s) in the following chart(s):\n{report}"
    )))
}

fn collect(
    chart: &Chart,
    values: &Map<String, Value>,
    report: &mut String,
) -> Result<(), HelmError> {
    if let Some(schema) = &chart.schema {
        let schema: Value = serde_json::from_slice(schema)
            .map_err(|e| HelmError::Values(format!("{}: values.schema.json: {e}", chart.name())))?;
        let mut errors = Vec::new();
        let v = Value::Object(values.clone());
        check(&schema, &schema, &v, "", &mut errors)
            .map_err(|e| HelmError::Values(format!("{}: values.schema.json: {e}", chart.name())))?;
        if !errors.is_empty() {
            errors.sort();
            errors.dedup();
            report.push_str(&format!("{}:\n", chart.name()));
            for (at, msg) in errors {
                report.push_str(&format!("- at '{at}': {msg}\n"));
            }
        }
    }
    for sub in &chart.dependencies {
        match values.get(sub.name()) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => collect(sub, m, report)?,
            Some(other) => report.push_str(&format!(
                "{}:\ninvalid type for values: expected object (map), got {}\n",
                sub.name(),
                go_type(other)
            )),
        }
    }
    Ok(())
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    match want {
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        t => type_of(v) == t || (t == "number" && v.is_number()),
    }
}

fn quote(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

type Errors = Vec<(String, String)>;

/// Checks `v` at `at` against `schema`; leaves go to `errors`. `Err`: the
/// schema itself cannot be used.
fn check(
    root: &Value,
    schema: &Value,
    v: &Value,
    at: &str,
    errors: &mut Errors,
) -> Result<(), String> {
    let s = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => {
            errors.push((at.into(), "false schema".into()));
            return Ok(());
        }
        Value::Object(s) => s,
        _ => return Ok(()),
    };
    if let Some(Value::String(r)) = s.get("$ref") {
        let target = resolve(root, r)?;
        check(root, target, v, at, errors)?;
    }
    if let Some(t) = s.get("type") {
        let wants: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !wants.is_empty() && !wants.iter().any(|w| type_matches(w, v)) {
            let got = match v {
                Value::Number(_) if !wants.contains(&"integer") && !wants.contains(&"number") => {
                    "number"
                }
                _ => type_of(v),
            };
            errors.push((at.into(), format!("got {got}, want {}", wants.join(" or "))));
            return Ok(());
        }
    }
    if let Some(Value::Array(e)) = s.get("enum")
        && !e
            .iter()
            .any(|x| x == v || (x.is_number() && v.is_number() && x.as_f64() == v.as_f64()))
    {
        let all: Vec<String> = e.iter().map(quote).collect();
        errors.push((
            at.into(),
            format!("value must be one of {}", all.join(", ")),
        ));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errors.push((at.into(), format!("value must be {}", quote(c))));
    }
    if let Some(f) = v.as_f64() {
        let bound = |k: &str| s.get(k).and_then(Value::as_f64);
        if let Some(m) = bound("minimum").filter(|m| f < *m) {
            errors.push((
                at.into(),
                format!("must be >= {} but found {}", num(&m.into()), num(v)),
            ));
        }
        if let Some(m) = bound("maximum").filter(|m| f > *m) {
            errors.push((
                at.into(),
                format!("must be <= {} but found {}", num(&m.into()), num(v)),
            ));
        }
        if let Some(m) = bound("exclusiveMinimum").filter(|m| f <= *m) {
            errors.push((
                at.into(),
                format!("must be > {} but found {}", num(&m.into()), num(v)),
            ));
        }
        if let Some(m) = bound("exclusiveMaximum").filter(|m| f >= *m) {
            errors.push((
                at.into(),
                format!("must be < {} but found {}", num(&m.into()), num(v)),
            ));
        }
        if let Some(m) = bound("multipleOf").filter(|m| *m != 0.0 && (f / m).fract() != 0.0) {
            errors.push((
                at.into(),
                format!("{} not multipleOf {}", num(v), num(&m.into())),
            ));
        }
    }
    if let Value::String(text) = v {
        let len = text.chars().count() as u64;
        if let Some(m) = s
            .get("minLength")
            .and_then(Value::as_u64)
            .filter(|m| len < *m)
        {
            errors.push((at.into(), format!("minLength: got {len}, want {m}")));
        }
        if let Some(m) = s
            .get("maxLength")
            .and_then(Value::as_u64)
            .filter(|m| len > *m)
        {
            errors.push((at.into(), format!("maxLength: got {len}, want {m}")));
        }
        if let Some(Value::String(p)) = s.get("pattern") {
            let re = regex::Regex::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?;
            if !re.is_match(text) {
                errors.push((at.into(), format!("'{text}' does not match pattern '{p}'")));
            }
        }
    }
    if let Value::Array(items) = v {
        let n = items.len() as u64;
        if let Some(m) = s.get("minItems").and_then(Value::as_u64).filter(|m| n < *m) {
            errors.push((at.into(), format!("minItems: got {n}, want {m}")));
        }
        if let Some(m) = s.get("maxItems").and_then(Value::as_u64).filter(|m| n > *m) {
            errors.push((at.into(), format!("maxItems: got {n}, want {m}")));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            'outer: for i in 0..items.len() {
                for j in i + 1..items.len() {
                    if items[i] == items[j] {
                        errors.push((at.into(), format!("items at {i} and {j} are equal")));
                        break 'outer;
                    }
                }
            }
        }
        if let Some(item_schema) = s.get("items") {
            match item_schema {
                Value::Array(tuple) => {
                    for (i, (x, sch)) in items.iter().zip(tuple).enumerate() {
                        check(root, sch, x, &format!("{at}/{i}"), errors)?;
                    }
                }
                sch => {
                    for (i, x) in items.iter().enumerate() {
                        check(root, sch, x, &format!("{at}/{i}"), errors)?;
                    }
                }
            }
        }
    }
    if let Value::Object(m) = v {
        if let Some(Value::Array(req)) = s.get("required") {
            let missing: Vec<String> = req
                .iter()
                .filter_map(Value::as_str)
                .filter(|k| !m.contains_key(*k))
                .map(|k| format!("'{k}'"))
                .collect();
            match missing.len() {
                0 => {}
                1 => errors.push((at.into(), format!("missing property {}", missing[0]))),
                _ => errors.push((
                    at.into(),
                    format!("missing properties {}", missing.join(", ")),
                )),
            }
        }
        let n = m.len() as u64;
        if let Some(x) = s
            .get("minProperties")
            .and_then(Value::as_u64)
            .filter(|x| n < *x)
        {
            errors.push((at.into(), format!("minProperties: got {n}, want {x}")));
        }
        if let Some(x) = s
            .get("maxProperties")
            .and_then(Value::as_u64)
            .filter(|x| n > *x)
        {
            errors.push((at.into(), format!("maxProperties: got {n}, want {x}")));
        }
        let props = s.get("properties").and_then(Value::as_object);
        let patterns: Vec<(regex::Regex, &Value)> =
            match s.get("patternProperties").and_then(Value::as_object) {
                Some(pp) => pp
                    .iter()
                    .map(|(p, sch)| {
                        regex::Regex::new(p)
                            .map(|r| (r, sch))
                            .map_err(|e| format!("pattern {p:?}: {e}"))
                    })
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
        let mut extra = Vec::new();
        for (k, x) in m {
            let here = format!("{at}/{}", pointer_escape(k));
            let mut known = false;
            if let Some(sch) = props.and_then(|p| p.get(k)) {
                known = true;
                check(root, sch, x, &here, errors)?;
            }
            for (re, sch) in &patterns {
                if re.is_match(k) {
                    known = true;
                    check(root, sch, x, &here, errors)?;
                }
            }
            if !known {
                match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => extra.push(format!("'{k}'")),
                    Some(sch @ Value::Object(_)) => check(root, sch, x, &here, errors)?,
                    _ => {}
                }
            }
        }
        if !extra.is_empty() {
            errors.push((
                at.into(),
                format!("additional properties {} not allowed", extra.join(", ")),
            ));
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sch in all {
            check(root, sch, v, at, errors)?;
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        let mut ok = false;
        for sch in any {
            let mut e = Vec::new();
            check(root, sch, v, at, &mut e)?;
            if e.is_empty() {
                ok = true;
                break;
            }
        }
        if !ok {
            errors.push((at.into(), "anyOf failed".into()));
        }
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        let mut matched = Vec::new();
        for (i, sch) in one.iter().enumerate() {
            let mut e = Vec::new();
            check(root, sch, v, at, &mut e)?;
            if e.is_empty() {
                matched.push(i);
            }
        }
        match matched.len() {
            1 => {}
            0 => errors.push((at.into(), "oneOf failed, none matched".into())),
            _ => errors.push((
                at.into(),
                format!(
                    "oneOf failed, subschemas {} matched",
                    matched
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    if let Some(not) = s.get("not") {
        let mut e = Vec::new();
        check(root, not, v, at, &mut e)?;
        if e.is_empty() {
            errors.push((at.into(), "not failed".into()));
        }
    }
    Ok(())
}

/// A `$ref` inside the schema (`#`, `#/definitions/x`, `#/$defs/x`).
fn resolve<'a>(root: &'a Value, r: &str) -> Result<&'a Value, String> {
    let Some(ptr) = r.strip_prefix('#') else {
        return Err(format!(
            "$ref {r:?} points outside the schema: fleet fetches nothing while rendering"
        ));
    };
    root.pointer(ptr)
        .ok_or_else(|| format!("$ref {r:?} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(schema: Value, v: Value) -> Errors {
        let mut e = Vec::new();
        check(&schema, &schema, &v, "", &mut e).unwrap();
        e.sort();
        e
    }

    #[test]
    fn messages_as_jsonschema_v6_gives_them() {
        let schema = json!({"type": "object", "required": ["name"], "properties": {
            "n": {"type": "integer", "minimum": 1},
            "p": {"enum": ["A", "B"]},
            "s": {"type": "string", "pattern": "^[a-z]+$"},
            "ref": {"$ref": "#/definitions/x"}
        }, "definitions": {"x": {"type": "boolean"}}});
        let e = errs(schema, json!({"n": "x", "p": "C", "s": "AB", "ref": 1}));
        assert_eq!(
            e,
            vec![
                ("".into(), "missing property 'name'".into()),
                ("/n".into(), "got string, want integer".into()),
                ("/p".into(), "value must be one of 'A', 'B'".into()),
                ("/ref".into(), "got number, want boolean".into()),
                ("/s".into(), "'AB' does not match pattern '^[a-z]+$'".into()),
            ]
        );
    }

    #[test]
    fn remote_refs_are_refused() {
        let schema = json!({"$ref": "https://example.com/s.json"});
        let mut e = Vec::new();
        assert!(
            check(&schema, &schema, &json!({}), "", &mut e)
                .unwrap_err()
                .contains("fetches nothing")
        );
    }
}

//! `buildMetadata` of the kustomization built (kustomize reads only the top
//! one): `managedByLabel` labels every object
//! `app.kubernetes.io/managed-by: kustomize-(devel)` (the value
//! `kubectl kustomize` 1.32 writes), `originAnnotations` records in
//! `config.kubernetes.io/origin` the file each object was read from, or the
//! generator that made it, relative to the directory built, and
//! `transformerAnnotations` lists in `alpha.config.kubernetes.io/transformations`
//! every transformer that ran over the object, in order.
//!
//! As in kustomize, with any option set both annotations are kept on the
//! objects while building (a transformer is recorded on every object present
//! when it runs, changed or not; an object without an origin takes the
//! transformer's as its origin), and at the end each is removed unless its
//! option is set; without options both are removed from every object.

use serde_json::{Map, Value};

use super::resmap::Resource;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// What kubectl 1.32's embedded kustomize reports as its version.
pub const MANAGED_BY_VALUE: &str = "kustomize-(devel)";
pub const ORIGIN: &str = "config.kubernetes.io/origin";
pub const TRANSFORMATIONS: &str = "alpha.config.kubernetes.io/transformations";

/// The options; unknown ones are refused as kustomize refuses them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    pub managed_by: bool,
    pub origin: bool,
    pub transformations: bool,
    /// Any option set: origins and transformations are tracked.
    pub tracking: bool,
}

pub fn parse(list: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    for v in list {
        match v.as_str() {
            "managedByLabel" => o.managed_by = true,
            "originAnnotations" => o.origin = true,
            "transformerAnnotations" => o.transformations = true,
            other => {
                return Err(format!(
                    "invalid option {other:?}: must be one of originAnnotations, transformerAnnotations, managedByLabel"
                ));
            }
        }
    }
    o.tracking = !list.is_empty();
    Ok(o)
}

/// `path` relative to the directory `from` (both repository paths).
pub fn relative(from: &str, path: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let common = f.iter().zip(&p).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; f.len() - common];
    out.extend(&p[common..]);
    out.join("/")
}

fn set_annotation(r: &mut Resource, key: &str, value: String) {
    let meta = r.metadata_mut();
    let a = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !a.is_object() {
        *a = Value::Object(Map::new());
    }
    a.as_object_mut()
        .expect("annotations is a map")
        .insert(key.into(), Value::String(value));
}

/// Origin of an object read from a file.
pub fn file_origin(r: &mut Resource, rel_path: &str) {
    set_annotation(r, ORIGIN, format!("path: {rel_path}\n"));
}

/// Where a generator or transformer was configured: the file (relative to
/// the directory built) and the config's apiVersion, kind, name, namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredBy {
    pub file: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl ConfiguredBy {
    /// A built-in generator or transformer configured by fields of a
    /// kustomization file.
    pub fn builtin(rel_kfile: &str, kind: &str) -> ConfiguredBy {
        ConfiguredBy {
            file: rel_kfile.to_string(),
            api_version: "builtin".into(),
            kind: kind.into(),
            name: String::new(),
            namespace: String::new(),
        }
    }

    /// kustomize's `Origin` as YAML, each line after the first indented by
    /// `indent` spaces.
    fn text(&self, indent: usize) -> String {
        let pad = " ".repeat(indent);
        let mut s = format!(
            "configuredIn: {}\n{pad}configuredBy:\n{pad}  apiVersion: {}\n{pad}  kind: {}\n",
            self.file, self.api_version, self.kind
        );
        for (field, v) in [("name", &self.name), ("namespace", &self.namespace)] {
            if !v.is_empty() {
                s.push_str(&format!("{pad}  {field}: {v}\n"));
            }
        }
        s
    }
}

/// Origin of a generated object: the generator that made it.
pub fn generator_origin(r: &mut Resource, by: &ConfiguredBy) {
    set_annotation(r, ORIGIN, by.text(0));
}

/// The `path` of an object's origin annotation, if it has one.
pub fn origin_path(obj: &Map<String, Value>) -> Option<&str> {
    let text = obj
        .get("metadata")?
        .get("annotations")?
        .get(ORIGIN)?
        .as_str()?;
    text.lines().find_map(|l| l.strip_prefix("path: "))
}

/// Records that the transformer `by` ran over `r` (kustomize's
/// `AddTransformerAnnotation`): appended to its transformations, or, if it
/// has no origin, as its origin.
pub fn record_transformer(r: &mut Resource, by: &ConfiguredBy) {
    let annotations = r
        .obj
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    if !annotations.is_some_and(|a| a.contains_key(ORIGIN)) {
        set_annotation(r, ORIGIN, by.text(0));
        return;
    }
    let mut list = annotations
        .and_then(|a| a.get(TRANSFORMATIONS))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !list.is_empty() && !list.ends_with('\n') {
        list.push('\n');
    }
    list.push_str("- ");
    list.push_str(&by.text(2));
    set_annotation(r, TRANSFORMATIONS, list);
}

/// Removes the origin and transformations annotations the options do not
/// keep (kustomize removes them from every object, also those that came
/// with them).
pub fn strip(r: &mut Resource, o: &Options) {
    let Some(Value::Object(a)) = r
        .obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    else {
        return;
    };
    if !o.origin {
        a.remove(ORIGIN);
    }
    if !o.transformations {
        a.remove(TRANSFORMATIONS);
    }
}

/// `managedByLabel`: the label on every object's metadata.
pub fn managed_by(r: &mut Resource) {
    let meta = r.metadata_mut();
    let l = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !l.is_object() {
        *l = Value::Object(Map::new());
    }
    l.as_object_mut()
        .expect("labels is a map")
        .insert(MANAGED_BY.into(), Value::String(MANAGED_BY_VALUE.into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_out_of_the_build_directory() {
        assert_eq!(
            relative("apps/web/overlays/prod", "apps/web/base/d.yaml"),
            "../../base/d.yaml"
        );
        assert_eq!(relative("apps/web", "apps/web/base/d.yaml"), "base/d.yaml");
        assert_eq!(relative("", "d.yaml"), "d.yaml");
    }

    #[test]
    fn options_and_tracking() {
        let o = parse(&["managedByLabel".into()]).unwrap();
        assert!(o.managed_by && o.tracking && !o.origin && !o.transformations);
        let o = parse(&["transformerAnnotations".into()]).unwrap();
        assert!(o.transformations && o.tracking && !o.origin);
        assert!(!parse(&[]).unwrap().tracking);
        assert!(parse(&["bogus".into()]).is_err());
    }

    #[test]
    fn transformers_are_appended_or_become_the_origin() {
        let mut r = Resource::new(serde_json::from_str(r#"{"metadata": {"name": "a"}}"#).unwrap());
        let by = ConfiguredBy::builtin("kustomization.yaml", "PrefixTransformer");
        record_transformer(&mut r, &by);
        assert_eq!(
            r.string_map("annotations")[ORIGIN],
            "configuredIn: kustomization.yaml\nconfiguredBy:\n  apiVersion: builtin\n  kind: PrefixTransformer\n"
        );
        let named = ConfiguredBy {
            name: "t".into(),
            ..ConfiguredBy::builtin("t.yaml", "LabelTransformer")
        };
        record_transformer(&mut r, &by);
        record_transformer(&mut r, &named);
        assert_eq!(
            r.string_map("annotations")[TRANSFORMATIONS],
            "- configuredIn: kustomization.yaml\n  configuredBy:\n    apiVersion: builtin\n    kind: PrefixTransformer\n\
             - configuredIn: t.yaml\n  configuredBy:\n    apiVersion: builtin\n    kind: LabelTransformer\n    name: t\n"
        );
        strip(&mut r, &Options::default());
        assert!(r.string_map("annotations").is_empty());
    }
}

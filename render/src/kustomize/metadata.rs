//! `buildMetadata` of the kustomization built (kustomize reads only the top
//! one): `managedByLabel` labels every object
//! `app.kubernetes.io/managed-by: kustomize-(devel)` (the value
//! `kubectl kustomize` 1.32 writes), `originAnnotations` records in
//! `config.kubernetes.io/origin` the file each object was read from, or the
//! generator that made it, relative to the directory built.
//! `transformerAnnotations` is refused.

use serde_json::{Map, Value};

use super::resmap::Resource;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// What kubectl 1.32's embedded kustomize reports as its version.
pub const MANAGED_BY_VALUE: &str = "kustomize-(devel)";
pub const ORIGIN: &str = "config.kubernetes.io/origin";

/// The options; unknown ones are refused as kustomize refuses them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    pub managed_by: bool,
    pub origin: bool,
}

pub fn parse(list: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    for v in list {
        match v.as_str() {
            "managedByLabel" => o.managed_by = true,
            "originAnnotations" => o.origin = true,
            "transformerAnnotations" => {
                return Err(
                    "transformerAnnotations is refused: fleet does not record which transformers changed an object"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "invalid option {other:?}: must be one of originAnnotations, transformerAnnotations, managedByLabel"
                ));
            }
        }
    }
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

/// Origin of a generated object: the kustomization file and the generator.
pub fn generator_origin(r: &mut Resource, rel_kfile: &str, kind: &str, name: &str, ns: &str) {
    let mut s = format!(
        "configuredIn: {rel_kfile}\nconfiguredBy:\n  apiVersion: builtin\n  kind: {kind}\n"
    );
    if !name.is_empty() {
        s.push_str(&format!("  name: {name}\n"));
    }
    if !ns.is_empty() {
        s.push_str(&format!("  namespace: {ns}\n"));
    }
    set_annotation(r, ORIGIN, s);
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
    fn options_refuse_transformer_annotations_by_name() {
        assert!(parse(&["managedByLabel".into(), "originAnnotations".into()]).is_ok());
        let e = parse(&["transformerAnnotations".into()]).unwrap_err();
        assert!(e.starts_with("transformerAnnotations is refused"), "{e}");
        assert!(parse(&["bogus".into()]).is_err());
    }
}

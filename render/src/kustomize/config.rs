//! `configurations`: transformer configuration files that tell the built-in
//! transformers where fields live in custom resources (name references,
//! namespaces, labels, annotations, images, replicas, `$(VAR)` references).
//!
//! As in kustomize, a kustomization's configuration is the built-in one
//! merged with its own files and with the configurations of everything it
//! accumulated (its resources' kustomizations and its components); the
//! transformers of a kustomization and the final name-reference and var
//! passes use that merged configuration.

use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::fieldspec::{Builtin, FieldSpec, NameBackRef, builtin};
use super::resmap::{Gvk, ResMap};

/// One configuration file. Unknown keys are ignored, as kustomize ignores
/// them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigFile {
    #[serde(default)]
    pub name_prefix: Vec<FieldSpec>,
    #[serde(default)]
    pub name_suffix: Vec<FieldSpec>,
    #[serde(default)]
    pub namespace: Vec<FieldSpec>,
    #[serde(default)]
    pub common_labels: Vec<FieldSpec>,
    /// Carried by kustomize's config, used by none of its transformers.
    #[serde(default)]
    #[allow(dead_code)]
    pub labels: Vec<FieldSpec>,
    #[serde(default)]
    pub template_labels: Vec<FieldSpec>,
    #[serde(default)]
    pub common_annotations: Vec<FieldSpec>,
    #[serde(default)]
    pub name_reference: Vec<NameBackRef>,
    #[serde(default)]
    pub var_reference: Vec<FieldSpec>,
    #[serde(default)]
    pub images: Vec<FieldSpec>,
    #[serde(default)]
    pub replicas: Vec<FieldSpec>,
}

/// The built-in configuration, shared.
pub fn default_config() -> Arc<Builtin> {
    static D: OnceLock<Arc<Builtin>> = OnceLock::new();
    D.get_or_init(|| Arc::new(builtin().clone())).clone()
}

/// The configuration a resource map's transformers use.
pub fn of(ra: &ResMap) -> Arc<Builtin> {
    ra.config.clone().unwrap_or_else(default_config)
}

/// Parses one configuration file.
pub fn parse(file: &str, bytes: &[u8]) -> Result<ConfigFile, String> {
    let docs = crate::yaml::parse_documents(file, bytes).map_err(|e| e.to_string())?;
    let doc = match docs.len() {
        0 => return Ok(ConfigFile::default()),
        1 => docs.into_iter().next().expect("one document"),
        n => return Err(format!("{file}: expected one YAML document, found {n}")),
    };
    if doc.is_null() {
        return Ok(ConfigFile::default());
    }
    serde_json::from_value(doc).map_err(|e| format!("{file}: {e}"))
}

/// kustomize's `FsSlice.MergeOne`: a spec already there (same path, its
/// GVK selected by the new one's) is kept; a different `create` conflicts.
fn merge_one(list: &mut Vec<FieldSpec>, x: &FieldSpec) -> Result<(), String> {
    let sel = x.gvk();
    match list
        .iter()
        .find(|e| e.path == x.path && sel.selects(&e.group, &e.version, &e.kind))
    {
        Some(e) if e.create != x.create => Err(format!(
            "conflicting fieldspecs: path {:?} for {} is given with create: {} and create: {}",
            x.path,
            gvk_text(&sel),
            e.create,
            x.create
        )),
        Some(_) => Ok(()),
        None => {
            list.push(x.clone());
            Ok(())
        }
    }
}

fn gvk_text(g: &Gvk) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("group", &g.group),
        ("version", &g.version),
        ("kind", &g.kind),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={v}"));
        }
    }
    if parts.is_empty() {
        "every kind".into()
    } else {
        parts.join(",")
    }
}

pub fn merge_all(list: &mut Vec<FieldSpec>, incoming: &[FieldSpec]) -> Result<(), String> {
    incoming.iter().try_for_each(|x| merge_one(list, x))
}

fn merge_refs(list: &mut Vec<NameBackRef>, incoming: &[NameBackRef]) -> Result<(), String> {
    for x in incoming {
        match list
            .iter_mut()
            .find(|e| e.group == x.group && e.version == x.version && e.kind == x.kind)
        {
            Some(e) => merge_all(&mut e.referrers, &x.referrers)?,
            None => list.push(x.clone()),
        }
    }
    Ok(())
}

/// Adds a configuration file's specs to a configuration.
pub fn merge_file(into: &mut Builtin, f: &ConfigFile) -> Result<(), String> {
    fn at(field: &str) -> impl Fn(String) -> String + '_ {
        move |e| format!("{field}: {e}")
    }
    for (field, spec) in [
        ("namePrefix", &f.name_prefix),
        ("nameSuffix", &f.name_suffix),
    ] {
        if spec.iter().any(|s| s.path != "metadata/name") {
            return Err(format!(
                "{field}: field specs other than metadata/name are refused: fleet renames only metadata.name"
            ));
        }
    }
    merge_all(&mut into.namespace, &f.namespace).map_err(at("namespace"))?;
    merge_all(&mut into.common_labels, &f.common_labels).map_err(at("commonLabels"))?;
    merge_all(&mut into.template_labels, &f.template_labels).map_err(at("templateLabels"))?;
    merge_all(&mut into.common_annotations, &f.common_annotations)
        .map_err(at("commonAnnotations"))?;
    merge_refs(&mut into.name_reference, &f.name_reference).map_err(at("nameReference"))?;
    merge_all(&mut into.var_reference, &f.var_reference).map_err(at("varReference"))?;
    merge_all(&mut into.images, &f.images).map_err(at("images"))?;
    merge_all(&mut into.replicas, &f.replicas).map_err(at("replicas"))?;
    // `labels` is carried by kustomize's config but used by no transformer.
    Ok(())
}

/// kustomize's `MergeConfig`: the accumulated configuration plus another.
pub fn merge_into(ra: &mut ResMap, other: Option<Arc<Builtin>>) -> Result<(), String> {
    let Some(other) = other else { return Ok(()) };
    match &ra.config {
        None => ra.config = Some(other),
        Some(mine) if Arc::ptr_eq(mine, &other) => {}
        Some(mine) => {
            let mut merged = (**mine).clone();
            merge_all(&mut merged.namespace, &other.namespace)?;
            merge_all(&mut merged.common_labels, &other.common_labels)?;
            merge_all(&mut merged.template_labels, &other.template_labels)?;
            merge_all(&mut merged.common_annotations, &other.common_annotations)?;
            merge_refs(&mut merged.name_reference, &other.name_reference)?;
            merge_all(&mut merged.var_reference, &other.var_reference)?;
            merge_all(&mut merged.images, &other.images)?;
            merge_all(&mut merged.replicas, &other.replicas)?;
            ra.config = Some(Arc::new(merged));
        }
    }
    Ok(())
}

/// Adds configuration files (already parsed) to `ra`'s configuration.
pub fn add_files(ra: &mut ResMap, files: &[(String, ConfigFile)]) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let mut merged = (*of(ra)).clone();
    for (name, f) in files {
        merge_file(&mut merged, f).map_err(|e| format!("{name}: {e}"))?;
    }
    ra.config = Some(Arc::new(merged));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(kind: &str, path: &str, create: bool) -> FieldSpec {
        FieldSpec {
            kind: kind.into(),
            ..FieldSpec::new(path, create)
        }
    }

    #[test]
    fn merge_keeps_specs_already_there_and_refuses_conflicts() {
        let mut list = vec![fs("Deployment", "spec/replicas", true)];
        merge_all(&mut list, &[fs("Deployment", "spec/replicas", true)]).unwrap();
        assert_eq!(list.len(), 1);
        // An empty GVK selects the existing Deployment spec: already there.
        merge_all(&mut list, &[fs("", "spec/replicas", true)]).unwrap();
        assert_eq!(list.len(), 1);
        merge_all(&mut list, &[fs("MyApp", "spec/replicas", true)]).unwrap();
        assert_eq!(list.len(), 2);
        let e = merge_all(&mut list, &[fs("MyApp", "spec/replicas", false)]).unwrap_err();
        assert!(e.contains("conflicting fieldspecs"), "{e}");
    }

    #[test]
    fn config_files_refuse_custom_prefix_paths() {
        let f = parse("c.yaml", b"namePrefix:\n- path: spec/alias\n  kind: X\n").unwrap();
        let mut b = builtin().clone();
        let e = merge_file(&mut b, &f).unwrap_err();
        assert!(e.starts_with("namePrefix:"), "{e}");
    }
}

//! Kustomize, rendered natively: `build` gives what `kustomize build`
//! (kustomize v5.5, as in `kubectl kustomize` 1.32) gives for the fields
//! fleet supports, and refuses the rest by name.
//!
//! The build follows kustomize's own order. For each kustomization:
//! resources (files, then nested kustomizations, each built on its own),
//! `configurations`, generators (fields, `helmCharts`, then `generators` plugin configs),
//! components (which transform everything accumulated so far), then the
//! transformers: `patchesStrategicMerge`, `patches`, `namespace`,
//! `namePrefix`, `nameSuffix`, `labels` and `commonLabels`,
//! `commonAnnotations`, `patchesJson6902`, `replicas`, `images`,
//! `replacements`, then `transformers` plugin configs and `validators`; its
//! `vars` are bound last. At the very end, generated objects get their
//! content-hash suffix, name references follow every rename
//! ([`namereference`]), `$(VAR)`s are substituted ([`vars`]), and the
//! output is sorted ([`sort`]) and labelled ([`metadata`]).
//!
//! Code map: [`kustomization`] the file model and refused fields,
//! [`resmap`] objects and their previous ids, [`fieldspec`] and
//! [`builtin_config`] where fields live per kind, [`config`] the
//! `configurations` merge, [`transformers`], [`smp`] with [`schema`] (the
//! built-in and `openapi` schemas) for strategic merge, [`json6902`],
//! [`generators`] for ConfigMaps, Secrets and the hash, [`regex`] for target
//! and image patterns, [`path`] dotted field paths, [`replacements`],
//! [`vars`], [`plugins`] built-in plugin configs, [`sort`] `sortOptions`,
//! [`metadata`] `buildMetadata` (origins, and the transformers recorded after
//! each one runs).
//!
//! Each kustomization's `openapi` is applied when it is read, before its
//! resources ([`Builder::set_schema`]), as kustomize's `SetSchema` does.

mod builtin_config;
mod config;
#[cfg(test)]
mod fields_tests;
mod fieldspec;
mod generators;
mod helmcharts;
mod json6902;
mod kustomization;
mod metadata;
mod namereference;
mod path;
mod plugins;
pub mod regex;
mod replacements;
mod resmap;
mod schema;
mod smp;
mod sort;
mod transformers;
mod vars;

use std::cell::Cell;

use serde_json::{Map, Value};

use crate::source::{FileSource, join, normalize};
use crate::yaml::{self, Schema, Seg};

use fieldspec::FieldSpec;
use kustomization::{FILE_NAMES, Kustomization};
use resmap::{Behavior, ResMap, Resource, Selector};

/// A kustomize build error: the kustomization file and what is wrong in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct KustomizeError {
    pub file: String,
    pub reason: String,
}

/// Builds the kustomization in `dir` as `kustomize build` would.
pub fn build(src: &dyn FileSource, dir: &str) -> Result<Vec<Value>, KustomizeError> {
    let dir = normalize(dir).ok_or_else(|| KustomizeError {
        file: dir.to_string(),
        reason: "the directory leaves the repository".into(),
    })?;
    let mut b = Builder {
        src,
        stack: Vec::new(),
        top: None,
        meta: metadata::Options::default(),
        root: dir.clone(),
        schema: schema::Active::new(schema::builtin()),
        schema_set: false,
        unknown_kind_seen: Cell::new(false),
        scopes: resmap::CustomScopes::new(),
        schema_kfile: String::new(),
    };
    let mut m = b.target(&dir, ResMap::default(), false)?;
    let top = b.kustomization_file(&dir).unwrap_or_else(|_| dir.clone());
    let top_k = b.top.take().unwrap_or_default();
    let tc = config::of(&m);
    for r in &mut m.list {
        if r.needs_hash && !r.obj.is_empty() {
            let h = generators::hash(&r.obj);
            r.store_previous_id();
            let name = format!("{}-{h}", r.name());
            r.set_name(&name);
        }
    }
    namereference::fix(&mut m, &tc.name_reference).map_err(|reason| KustomizeError {
        file: top.clone(),
        reason,
    })?;
    vars::resolve(&mut m, &tc.var_reference).map_err(|reason| KustomizeError {
        file: top.clone(),
        reason: format!("vars: {reason}"),
    })?;
    sort::sort(&mut m.list, top_k.sort_options.as_ref());
    if b.meta.managed_by {
        m.list.iter_mut().for_each(metadata::managed_by);
    }
    let mut out = Vec::with_capacity(m.list.len());
    for mut r in m.list {
        if r.obj.is_empty() {
            continue;
        }
        metadata::strip(&mut r, &b.meta);
        finish_annotations(&mut r);
        out.push(Value::Object(r.obj));
    }
    Ok(out)
}

/// kustomize rewrites `metadata.annotations` of every object when it removes
/// its internal build annotations: an empty or null map disappears, and every
/// value becomes a string (what a JSON patch made a number is printed as the
/// Go float64 it became, `7.654321e+06`; `null` is `"null"`).
fn finish_annotations(r: &mut Resource) {
    let Some(Value::Object(meta)) = r.obj.get_mut("metadata") else {
        return;
    };
    let texts = &r.plain_annotations;
    match meta.get_mut("annotations") {
        None => {}
        Some(Value::Object(a)) if !a.is_empty() => {
            for (k, v) in a.iter_mut() {
                let text = match v {
                    Value::String(_) | Value::Object(_) | Value::Array(_) => continue,
                    // `~`, `null` or nothing, as written.
                    Value::Null => texts
                        .iter()
                        .find(|(key, _)| key == k)
                        .map_or_else(|| "null".to_string(), |(_, t)| t.clone()),
                    Value::Bool(b) => b.to_string(),
                    // JSON numbers come back from a JSON patch as Go float64s.
                    Value::Number(n) => yaml::go_format_float(n.as_f64().unwrap_or_default()),
                };
                *v = Value::String(text);
            }
        }
        Some(Value::Object(_) | Value::Null) => {
            meta.remove("annotations");
        }
        Some(_) => {}
    }
}

struct Builder<'a> {
    src: &'a dyn FileSource,
    /// Kustomization directories being built, outermost first.
    stack: Vec<String>,
    /// The kustomization `build` was called on (its `sortOptions` count).
    top: Option<Kustomization>,
    /// `buildMetadata` of the top kustomization.
    meta: metadata::Options,
    /// The directory `build` was called on.
    root: String,
    /// The OpenAPI schema strategic merges use (`openapi`).
    schema: schema::Active,
    /// Whether a kustomization has set the schema (`openapi: path` or
    /// `version`); then those built later cannot.
    schema_set: bool,
    /// Whether an object of a kind outside kyaml's precomputed list has been
    /// read: kyaml then parses its built-in schema too, after a custom one.
    unknown_kind_seen: Cell<bool>,
    /// Kinds the custom schema makes cluster-scoped, for this build.
    scopes: resmap::CustomScopes,
    /// The kustomization that set the custom schema.
    schema_kfile: String,
}

fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("git::")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
        || entry.contains("?ref=")
        || entry.contains(".git//")
}

fn in_root(dir: &str, path: &str) -> bool {
    dir.is_empty() || path == dir || path.starts_with(&format!("{dir}/"))
}

/// Splits parsed documents into objects, expanding `kind: *List` with
/// `items`; each object keeps the paths of its empty-valued fields.
fn objects(docs: Vec<yaml::Doc>, file: &str) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    for mut doc in docs {
        let Value::Object(m) = std::mem::take(&mut doc.value) else {
            return Err(format!("{file}: a resource must be a YAML mapping"));
        };
        let is_list = m
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && m.get("items").is_some_and(Value::is_array);
        if is_list {
            if let Some(Value::Array(items)) = m.get("items") {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Object(o) => {
                            let prefix = [Seg::Key("items".into()), Seg::Index(i)];
                            out.push(with_side_tables(o.clone(), &doc, &prefix));
                        }
                        _ => return Err(format!("{file}: a List item must be a mapping")),
                    }
                }
            }
        } else if !m.is_empty() {
            out.push(with_side_tables(m, &doc, &[]));
        }
    }
    for r in &out {
        if r.kind().is_empty() {
            return Err(format!("{file}: an object has no kind"));
        }
        if r.name().is_empty() {
            return Err(format!("{file}: a {} has no metadata.name", r.kind()));
        }
    }
    Ok(out)
}

/// The strategic merge patches of a file, read as kyaml reads them, each
/// carrying the schema comments of its fields ([`smp::embed`]).
pub(super) fn smp_documents(file: &str, bytes: &[u8]) -> Result<Vec<Value>, yaml::YamlError> {
    Ok(yaml::parse_kyaml(file, bytes)?
        .into_iter()
        .map(|d| {
            let mut v = d.value;
            smp::embed(&mut v, &d.field_comments);
            v
        })
        .collect())
}

/// A resource with the paths its document recorded below `prefix`.
fn with_side_tables(obj: Map<String, Value>, doc: &yaml::Doc, prefix: &[Seg]) -> Resource {
    let below = |p: &Vec<Seg>| p.strip_prefix(prefix).map(<[Seg]>::to_vec);
    let mut r = Resource::new(obj);
    r.empty_nulls = doc.empty_nulls.iter().filter_map(below).collect();
    r.field_comments = doc
        .field_comments
        .iter()
        .filter_map(|fc| {
            Some(yaml::FieldComment {
                path: below(&fc.path)?,
                texts: fc.texts.clone(),
            })
        })
        .collect();
    r.plain_annotations = doc
        .plain_annotations
        .iter()
        .filter_map(|(p, text)| match p.strip_prefix(prefix)? {
            [Seg::Key(m), Seg::Key(a), Seg::Key(k)] if m == "metadata" && a == "annotations" => {
                Some((k.clone(), text.clone()))
            }
            _ => None,
        })
        .collect();
    r
}

impl Builder<'_> {
    /// An error of the custom schema, named by the kustomization that set it.
    fn err_at(&self, reason: String) -> KustomizeError {
        self.err(&self.schema_kfile, reason)
    }

    fn err(&self, file: &str, reason: impl Into<String>) -> KustomizeError {
        KustomizeError {
            file: file.to_string(),
            reason: reason.into(),
        }
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        self.src
            .read(path)
            .map(|o| o.map(|b| b.to_vec()))
            .map_err(|e| e.to_string())
    }

    fn kustomization_file(&self, dir: &str) -> Result<String, KustomizeError> {
        let mut found = Vec::new();
        for name in FILE_NAMES {
            let p = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            if self.read(&p).map_err(|e| self.err(dir, e))?.is_some() {
                found.push(p);
            }
        }
        match found.len() {
            0 => Err(self.err(
                dir,
                "no kustomization.yaml, kustomization.yml or Kustomization in this directory",
            )),
            1 => Ok(found.remove(0)),
            _ => Err(self.err(
                &found[0],
                format!("found multiple kustomization files: {}", found.join(", ")),
            )),
        }
    }

    /// Reads a file the kustomization in `dir` names; it must stay in `dir`.
    fn load(&self, dir: &str, rel: &str) -> Result<Vec<u8>, String> {
        if is_remote(rel) {
            return Err(format!(
                "remote file {rel:?} is refused: fleet builds only what is in the repository"
            ));
        }
        let path = join(dir, rel).ok_or_else(|| format!("{rel:?} leaves the repository"))?;
        if !in_root(dir, &path) {
            return Err(format!(
                "security; file '{path}' is not in or below '{dir}'"
            ));
        }
        self.read(&path)?
            .ok_or_else(|| format!("file '{path}' not found"))
    }

    /// Builds one kustomization onto `ra` (empty for resources, the
    /// accumulated set for components).
    fn target(
        &mut self,
        dir: &str,
        mut ra: ResMap,
        component: bool,
    ) -> Result<ResMap, KustomizeError> {
        let kfile = self.kustomization_file(dir)?;
        if let Some(pos) = self.stack.iter().position(|d| d == dir) {
            let chain = self.stack[pos..].join(" -> ");
            return Err(self.err(&kfile, format!("cycle detected: {chain} -> {dir}")));
        }
        let bytes = self
            .read(&kfile)
            .map_err(|e| self.err(&kfile, e))?
            .unwrap_or_default();
        let docs = yaml::parse_documents(&kfile, &bytes).map_err(|e| self.yaml_err(&kfile, e))?;
        let doc = match docs.len() {
            0 => Value::Object(Map::new()),
            1 => docs.into_iter().next().expect("one document"),
            n => return Err(self.err(&kfile, format!("expected one YAML document, found {n}"))),
        };
        let k = Kustomization::from_value(doc).map_err(|e| self.err(&kfile, e))?;
        if component && !k.is_component() {
            return Err(self.err(
                &kfile,
                format!(
                    "components: expected kind 'Component' for path '{dir}' but got '{}'",
                    k.kind
                ),
            ));
        }
        if !component && k.is_component() && !self.stack.is_empty() {
            return Err(self.err(
                &kfile,
                format!("resources: expected kind != 'Component' for path '{dir}'"),
            ));
        }
        if self.stack.is_empty() {
            self.meta = metadata::parse(&k.build_metadata)
                .map_err(|m| self.err(&kfile, format!("buildMetadata: {m}")))?;
        }
        self.set_schema(dir, &kfile, &k)?;
        if let Some(o) = &k.sort_options {
            sort::validate(o).map_err(|m| self.err(&kfile, format!("sortOptions: {m}")))?;
        }
        self.stack.push(dir.to_string());
        let r = self.accumulate(dir, &kfile, &k, std::mem::take(&mut ra));
        self.stack.pop();
        if self.stack.is_empty() {
            self.top = Some(k);
        }
        r
    }

    fn yaml_err(&self, kfile: &str, e: yaml::YamlError) -> KustomizeError {
        let msg = e.to_string();
        let reason = msg
            .strip_prefix(&format!("{kfile}: "))
            .unwrap_or(&msg)
            .to_string();
        self.err(kfile, reason)
    }

    fn accumulate(
        &mut self,
        dir: &str,
        kfile: &str,
        k: &Kustomization,
        mut ra: ResMap,
    ) -> Result<ResMap, KustomizeError> {
        let e = |reason: String| KustomizeError {
            file: kfile.to_string(),
            reason,
        };

        for entry in k.resources.iter() {
            if is_remote(entry) {
                return Err(e(format!(
                    "resources: remote resource {entry:?} is refused: fleet builds only what is in the repository"
                )));
            }
            let path = join(dir, entry)
                .ok_or_else(|| e(format!("resources: {entry:?} leaves the repository")))?;
            if let Some(bytes) = self.read(&path).map_err(&e)? {
                if !in_root(dir, &path) {
                    return Err(e(format!(
                        "resources: security; file '{path}' is not in or below '{dir}'"
                    )));
                }
                let docs = yaml::parse_kyaml(&path, &bytes).map_err(|y| self.yaml_err(&path, y))?;
                for mut res in objects(docs, &path).map_err(|m| e(format!("resources: {m}")))? {
                    self.saw_kind(res.api_version(), res.kind())
                        .map_err(|m| self.err_at(m))?;
                    if self.meta.tracking {
                        metadata::file_origin(&mut res, &metadata::relative(&self.root, &path));
                    }
                    ra.append(res)
                        .map_err(|m| e(format!("resources: {entry}: {m}")))?;
                }
            } else if self.src.is_dir(&path).map_err(|x| e(x.to_string()))? {
                let mut sub = self.target(&path, ResMap::default(), false)?;
                let (sub_config, sub_vars) = (sub.config.take(), std::mem::take(&mut sub.vars));
                ra.append_all(sub)
                    .map_err(|m| e(format!("resources: {entry}: {m}")))?;
                config::merge_into(&mut ra, sub_config)
                    .map_err(|m| e(format!("resources: {entry}: configurations: {m}")))?;
                vars::add(&mut ra.vars, &sub_vars)
                    .map_err(|m| e(format!("resources: {entry}: vars: {m}")))?;
            } else {
                return Err(e(format!(
                    "resources: {entry:?} not found: no file or directory '{path}'"
                )));
            }
        }

        let mut files = Vec::new();
        for c in &k.configurations {
            let bytes = self
                .load(dir, c)
                .map_err(|m| e(format!("configurations: {m}")))?;
            files.push((
                c.clone(),
                config::parse(c, &bytes).map_err(|m| e(format!("configurations: {m}")))?,
            ));
        }
        config::add_files(&mut ra, &files).map_err(|m| e(format!("configurations: {m}")))?;

        for (kind, list) in [
            (generators::Kind::ConfigMap, &k.config_map_generator),
            (generators::Kind::Secret, &k.secret_generator),
        ] {
            for args in list {
                let load = |p: &str| self.load(dir, p);
                let mut res = generators::generate(kind, args, k.generator_options.as_ref(), &load)
                    .map_err(|m| e(format!("{}: {}: {m}", kind.field(), args.name)))?;
                if self.meta.tracking {
                    let by = match kind {
                        generators::Kind::ConfigMap => "ConfigMapGenerator",
                        generators::Kind::Secret => "SecretGenerator",
                    };
                    let rel = metadata::relative(&self.root, kfile);
                    metadata::generator_origin(
                        &mut res,
                        &metadata::ConfiguredBy::builtin(&rel, by),
                    );
                }
                absorb(&mut ra, res)
                    .map_err(|m| e(format!("{}: {}: {m}", kind.field(), args.name)))?;
            }
        }
        for (i, chart) in k.helm_charts.iter().enumerate() {
            let load = |p: &str| self.load(dir, p);
            let docs = helmcharts::inflate(self.src, dir, chart, k.helm_globals.as_ref(), &load)
                .map_err(|m| e(format!("helmCharts[{i}] {}: {m}", chart.name)))?;
            let file = format!("{dir} (helmCharts {})", chart.name);
            for mut res in objects(docs, &file)
                .map_err(|m| e(format!("helmCharts[{i}] {}: {m}", chart.name)))?
            {
                self.saw_kind(res.api_version(), res.kind())
                    .map_err(|m| self.err_at(m))?;
                if self.meta.tracking {
                    let rel = metadata::relative(&self.root, kfile);
                    metadata::generator_origin(
                        &mut res,
                        &metadata::ConfiguredBy::builtin(&rel, "HelmChartInflationGenerator"),
                    );
                }
                ra.append(res)
                    .map_err(|m| e(format!("helmCharts[{i}] {}: {m}", chart.name)))?;
            }
        }
        if !k.generators.is_empty() {
            let configs = self.plugin_configs(dir, &k.generators, plugins::Role::Generator)?;
            self.run_generators(dir, &configs, &mut ra)
                .map_err(|m| e(format!("generators: {m}")))?;
        }

        for entry in &k.components {
            if is_remote(entry) {
                return Err(e(format!(
                    "components: remote component {entry:?} is refused: fleet builds only what is in the repository"
                )));
            }
            let path = join(dir, entry)
                .ok_or_else(|| e(format!("components: {entry:?} leaves the repository")))?;
            if !self.src.is_dir(&path).map_err(|x| e(x.to_string()))? {
                return Err(e(format!("components: {entry:?} is not a directory")));
            }
            ra = self.target(&path, ra, true)?;
        }

        self.transform(dir, kfile, k, &mut ra).map_err(&e)?;
        if !k.transformers.is_empty() {
            let configs = self.plugin_configs(dir, &k.transformers, plugins::Role::Transformer)?;
            self.run_transformers(dir, &configs, &mut ra)
                .map_err(|m| e(format!("transformers: {m}")))?;
        }
        if !k.validators.is_empty() {
            let configs = self.plugin_configs(dir, &k.validators, plugins::Role::Validator)?;
            self.run_validators(dir, &configs, &ra)
                .map_err(|m| e(format!("validators: {m}")))?;
        }
        vars::merge(&mut ra, &k.vars).map_err(|m| e(format!("vars: {m}")))?;
        Ok(ra)
    }

    /// The patches of one `patchesStrategicMerge` entry (or one `paths`
    /// entry of a `PatchStrategicMergeTransformer` config, which kustomize
    /// reads the same way): the entry itself if it reads as objects, else
    /// the file it names, read with kyaml and its schema comments.
    pub(super) fn smp_entry(&self, dir: &str, entry: &str) -> Result<Vec<Value>, String> {
        let inline = smp_documents("patch", entry.as_bytes())
            .ok()
            .filter(|d| !d.is_empty() && d.iter().all(Value::is_object));
        match inline {
            Some(d) => Ok(d),
            None => {
                let bytes = self.load(dir, entry)?;
                smp_documents(entry, &bytes).map_err(|m| m.to_string())
            }
        }
    }

    fn transform(
        &self,
        dir: &str,
        kfile: &str,
        k: &Kustomization,
        ra: &mut ResMap,
    ) -> Result<(), String> {
        let b = config::of(ra);
        let rel = metadata::relative(&self.root, kfile);
        let by = |kind: &str| metadata::ConfiguredBy::builtin(&rel, kind);
        for (i, entry) in k.patches_strategic_merge.iter().enumerate() {
            let docs = self
                .smp_entry(dir, entry)
                .map_err(|m| format!("patchesStrategicMerge: {m}"))?;
            for patch in docs {
                smp_by_id(ra, &patch, false, false, &self.schema)
                    .map_err(|m| format!("patchesStrategicMerge[{i}]: {m}"))?;
            }
        }
        if !k.patches_strategic_merge.is_empty() {
            self.record(ra, &by("PatchStrategicMergeTransformer"));
        }

        for (i, p) in k.patches.iter().enumerate() {
            self.patch(dir, p, ra)
                .map_err(|m| format!("patches[{i}]: {m}"))?;
            self.record(ra, &by("PatchTransformer"));
        }

        if !k.namespace.is_empty() {
            transformers::namespace(ra, &k.namespace, &b.namespace)
                .map_err(|m| format!("namespace: {m}"))?;
            self.record(ra, &by("NamespaceTransformer"));
        }
        if !k.name_prefix.is_empty() {
            transformers::prefix(ra, &k.name_prefix);
            self.record(ra, &by("PrefixTransformer"));
        }
        if !k.name_suffix.is_empty() {
            transformers::suffix(ra, &k.name_suffix);
            self.record(ra, &by("SuffixTransformer"));
        }

        for (i, l) in k.labels.iter().enumerate() {
            let mut specs: Vec<FieldSpec> = l.fields.clone();
            if l.include_selectors {
                specs.extend(b.common_labels.iter().cloned());
            } else {
                if l.include_templates {
                    specs.extend(b.template_labels.iter().cloned());
                }
                specs.push(FieldSpec::new("metadata/labels", true));
            }
            transformers::set_pairs(ra, &l.pairs, &specs)
                .map_err(|m| format!("labels[{i}]: {m}"))?;
            self.record(ra, &by("LabelTransformer"));
        }
        transformers::set_pairs(ra, &k.common_labels, &b.common_labels)
            .map_err(|m| format!("commonLabels: {m}"))?;
        // kustomize runs one LabelTransformer per `labels` entry and, when
        // there are any labels at all, one for `commonLabels`, empty or not.
        if !k.labels.is_empty() || !k.common_labels.is_empty() {
            self.record(ra, &by("LabelTransformer"));
        }
        transformers::set_pairs(ra, &k.common_annotations, &b.common_annotations)
            .map_err(|m| format!("commonAnnotations: {m}"))?;
        if !k.common_annotations.is_empty() {
            self.record(ra, &by("AnnotationsTransformer"));
        }

        for (i, p) in k.patches_json6902.iter().enumerate() {
            let at = |m: String| format!("patchesJson6902[{i}]: {m}");
            let target = p
                .target
                .as_ref()
                .filter(|t| !t.name.is_empty())
                .ok_or_else(|| at("must specify the target name".into()))?;
            let text = match (p.path.is_empty(), p.patch.is_empty()) {
                (false, true) => {
                    String::from_utf8_lossy(&self.load(dir, &p.path).map_err(at)?).into_owned()
                }
                (true, false) => p.patch.clone(),
                (true, true) => return Err(at("empty file path and empty patch".into())),
                (false, false) => {
                    return Err(at("must specify a file path or patch, not both".into()));
                }
            };
            let ops = parse_json_patch(&text).map_err(at)?;
            json_patch(ra, target, &ops, false).map_err(at)?;
            self.record(ra, &by("PatchJson6902Transformer"));
        }

        // One ReplicaCountTransformer per entry, one ImageTagTransformer per
        // image: they touch no annotation, so recording them after the
        // whole list is the same.
        if !k.replicas.is_empty() {
            transformers::replicas(ra, &k.replicas, &b.replicas)
                .map_err(|m| format!("replicas: {m}"))?;
            for _ in &k.replicas {
                self.record(ra, &by("ReplicaCountTransformer"));
            }
        }
        if !k.images.is_empty() {
            transformers::images(ra, &k.images, &b.images).map_err(|m| format!("images: {m}"))?;
            for _ in &k.images {
                self.record(ra, &by("ImageTagTransformer"));
            }
        }
        if !k.replacements.is_empty() {
            let load = |p: &str| self.load(dir, p);
            let list = replacements::resolve_entries(&k.replacements, &load)
                .map_err(|m| format!("replacements{m}"))?;
            replacements::apply(ra, &list).map_err(|m| format!("replacements{m}"))?;
            self.record(ra, &by("ReplacementTransformer"));
        }
        Ok(())
    }

    /// Records a transformer that ran on every object (`buildMetadata`).
    fn record(&self, ra: &mut ResMap, by: &metadata::ConfiguredBy) {
        if self.meta.tracking {
            for r in &mut ra.list {
                metadata::record_transformer(r, by);
            }
        }
    }

    /// An object of this kind was read: kyaml looked up its scope, which
    /// for a kind it does not precompute needs the schema.
    fn saw_kind(&self, api_version: &str, kind: &str) -> Result<(), String> {
        if !resmap::is_precomputed_kind(api_version, kind) {
            self.unknown_kind_seen.set(true);
            if let Some(e) = self.schema.error() {
                return Err(e.to_string());
            }
        }
        Ok(())
    }

    /// `openapi` of a kustomization, as kustomize's `SetSchema`: the one
    /// built sets the schema; one built later (a base or component) sets it
    /// only if none has been set yet. A custom schema replaces the built-in
    /// one, unless the built-in one was already in use (then both count).
    fn set_schema(
        &mut self,
        dir: &str,
        kfile: &str,
        k: &Kustomization,
    ) -> Result<(), KustomizeError> {
        let top = self.stack.is_empty();
        let path = k.openapi.get("path");
        // kustomize reads the file before it decides whether to use it.
        let bytes = match path {
            Some(p) => Some(
                self.load(dir, p)
                    .map_err(|m| self.err(kfile, format!("openapi: path: {m}")))?,
            ),
            None => None,
        };
        if self.schema_set && !top {
            return Ok(());
        }
        let version = k.openapi.get("version");
        if let (Some(p), Some(bytes)) = (path, bytes) {
            if version.is_some() {
                return Err(self.err(
                    kfile,
                    "openapi: builtin version and custom schema provided, cannot use both",
                ));
            }
            let mode = if top {
                schema::Mode::Alone
            } else if self.schema.used() {
                schema::Mode::AfterBuiltin
            } else if self.unknown_kind_seen.get() {
                schema::Mode::BeforeBuiltin
            } else {
                schema::Mode::Alone
            };
            let file = join(dir, p).unwrap_or_else(|| p.clone());
            let s = match schema::custom(&file, &bytes, mode) {
                Ok(s) => s,
                Err(m) => {
                    let reason = format!("openapi: path: {file}: {m}");
                    if self.schema.used() || self.unknown_kind_seen.get() {
                        return Err(self.err(kfile, reason));
                    }
                    self.schema = schema::Active::broken(reason);
                    self.schema_kfile = kfile.to_string();
                    self.schema_set = true;
                    return Ok(());
                }
            };
            self.scopes.set(
                s.cluster_scoped()
                    .filter(|(a, k)| !resmap::is_precomputed_kind(a, k))
                    .map(|(a, k)| (a.to_string(), k.to_string()))
                    .collect(),
            );
            self.schema = schema::Active::new(s);
            self.schema_set = true;
            return Ok(());
        }
        match version.map(String::as_str) {
            None | Some("") => {}
            Some(schema::BUILTIN_VERSION) => self.schema_set = true,
            Some(v) => {
                return Err(self.err(
                    kfile,
                    format!(
                        "openapi: version: {v:?} is not built in: kustomize v5.5 has only {}",
                        schema::BUILTIN_VERSION
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One entry of `patches`: a strategic merge patch or a JSON patch.
    fn patch(&self, dir: &str, p: &kustomization::Patch, ra: &mut ResMap) -> Result<(), String> {
        let text = match (p.path.is_empty(), p.patch.trim().is_empty()) {
            (true, true) => return Err("must specify one of patch and path".into()),
            (false, false) => return Err("patch and path can't be set at the same time".into()),
            (false, true) => String::from_utf8_lossy(&self.load(dir, &p.path)?).into_owned(),
            (true, false) => p.patch.trim().to_string(),
        };
        let source = if p.path.is_empty() {
            "inline patch".to_string()
        } else {
            p.path.clone()
        };
        for opt in p.options.keys() {
            if opt != "allowNameChange" && opt != "allowKindChange" {
                return Err(format!("unknown patch option {opt:?}"));
            }
        }
        let allow_name = p.options.get("allowNameChange").copied().unwrap_or(false);
        let allow_kind = p.options.get("allowKindChange").copied().unwrap_or(false);
        // kustomize reads a strategic merge patch with kyaml, a JSON patch
        // with sigs.k8s.io/yaml.
        let docs = smp_documents(&source, text.as_bytes()).map_err(|m| m.to_string())?;
        if docs.len() == 1 && docs[0].is_array() {
            let docs =
                yaml::parse_documents(&source, text.as_bytes()).map_err(|m| m.to_string())?;
            let ops = json6902::parse(&docs[0]).map_err(|m| format!("{source}: {m}"))?;
            let target = p
                .target
                .as_ref()
                .ok_or_else(|| format!("must specify a target for JSON patch {source}"))?;
            return json_patch(ra, target, &ops, true);
        }
        if docs.is_empty() || !docs.iter().all(Value::is_object) {
            return Err(format!("unable to parse SM or JSON patch from {source}"));
        }
        match &p.target {
            Some(t) => {
                if docs.len() > 1 {
                    return Err(format!(
                        "multiple strategic merge patches in one `patches` entry cannot have a target: {source}"
                    ));
                }
                let picked = ra.select(t)?;
                let ids: Vec<_> = picked.iter().map(|&i| ra.list[i].cur_id()).collect();
                apply_smp_to(
                    &self.schema,
                    ra,
                    &ids,
                    &without_empty_metadata_maps(&docs[0]),
                    allow_name,
                    allow_kind,
                )
            }
            None => {
                for d in &docs {
                    smp_by_id(ra, d, allow_name, allow_kind, &self.schema)?;
                }
                Ok(())
            }
        }
    }
}

fn resolve_plain_annotations(r: &mut Resource) {
    let keys = std::mem::take(&mut r.plain_annotations);
    let Some(Value::Object(a)) = r
        .obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    else {
        return;
    };
    for (k, text) in keys {
        if let Some(v @ Value::String(_)) = a.get_mut(&k)
            && v.as_str() == Some(text.as_str())
            && let Some(resolved) = yaml::plain_value(Schema::Kyaml, &text)
        {
            *v = resolved;
        }
    }
}

/// A targeted patch is copied onto each target with kustomize's
/// `CopyMergeMetaDataFieldsFrom`, which drops empty or null `labels` and
/// `annotations` from the copy: there they delete nothing.
fn without_empty_metadata_maps(patch: &Value) -> Value {
    let mut p = patch.clone();
    if let Some(Value::Object(meta)) = p.get_mut("metadata") {
        for field in ["labels", "annotations"] {
            if meta
                .get(field)
                .is_some_and(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
            {
                meta.remove(field);
            }
        }
    }
    p
}

fn parse_json_patch(text: &str) -> Result<Vec<json6902::Op>, String> {
    let docs = yaml::parse_documents("patch", text.as_bytes()).map_err(|e| e.to_string())?;
    match docs.as_slice() {
        [doc] => json6902::parse(doc),
        _ => Err("a JSON patch must be one list of operations".into()),
    }
}

fn json_patch(
    ra: &mut ResMap,
    target: &Selector,
    ops: &[json6902::Op],
    store_prev: bool,
) -> Result<(), String> {
    for i in ra.select(target)? {
        let r = &mut ra.list[i];
        if store_prev {
            r.store_previous_id();
        }
        let id = r.cur_id();
        // The object passes through JSON: empty values become plain nulls,
        // and annotations kept as text become the values their text means.
        r.empty_nulls.clear();
        r.field_comments.clear();
        resolve_plain_annotations(r);
        let mut v = Value::Object(std::mem::take(&mut r.obj));
        let res = json6902::apply(&mut v, ops);
        match v {
            Value::Object(o) => r.obj = o,
            _ => return Err(format!("JSON patch turned {id} into a non-object")),
        }
        res.map_err(|m| format!("applying JSON patch to {id}: {m}"))?;
    }
    Ok(())
}

/// A strategic merge patch without a target: it names the object it patches.
fn smp_by_id(
    ra: &mut ResMap,
    patch: &Value,
    allow_name: bool,
    allow_kind: bool,
    sch: &schema::Active,
) -> Result<(), String> {
    let p = Resource::new(patch.as_object().cloned().unwrap_or_default());
    let id = p.cur_id();
    let hits = ra.indexes_by_any_id(&id);
    match hits.len() {
        0 => Err(format!("no resource matches strategic merge patch {id}")),
        1 => {
            let cur = ra.list[hits[0]].cur_id();
            apply_smp_to(sch, ra, &[cur], patch, allow_name, allow_kind)
        }
        n => Err(format!("{n} resources match strategic merge patch {id}")),
    }
}

fn apply_smp_to(
    sch: &schema::Active,
    ra: &mut ResMap,
    ids: &[resmap::ResId],
    patch: &Value,
    allow_name: bool,
    allow_kind: bool,
) -> Result<(), String> {
    for r in &mut ra.list {
        if !ids.contains(&r.cur_id()) {
            continue;
        }
        let (name, ns, kind) = (
            r.name().to_string(),
            r.namespace().to_string(),
            r.kind().to_string(),
        );
        let mut p = patch.clone();
        if let Value::Object(pm) = &mut p {
            pm.insert(
                "apiVersion".into(),
                Value::String(r.api_version().to_string()),
            );
        }
        if allow_name || allow_kind {
            r.store_previous_id();
        }
        let id = r.cur_id();
        let dest = Value::Object(std::mem::take(&mut r.obj));
        let schemas = sch.for_merge()?;
        let comments = std::mem::take(&mut r.field_comments);
        let (merged, kept) = smp::merge_commented(dest, &p, schemas, &comments, &mut r.empty_nulls)
            .map_err(|m| format!("applying strategic merge patch to {id}: {m}"))?;
        r.field_comments = kept;
        match merged {
            Some(Value::Object(o)) if !o.is_empty() => {
                r.obj = o;
                if !allow_kind {
                    r.obj.insert("kind".into(), Value::String(kind));
                }
                if !allow_name {
                    r.set_name(&name);
                }
                r.set_namespace(&ns);
            }
            _ => r.obj = Map::new(),
        }
    }
    ra.list.retain(|r| !r.obj.is_empty());
    Ok(())
}

fn string_map(r: &Resource, field: &str) -> Map<String, Value> {
    r.string_map(field)
}

fn set_string_map(r: &mut Resource, field: &str, m: Map<String, Value>) {
    let meta = r.metadata_mut();
    if m.is_empty() {
        meta.remove(field);
    } else {
        meta.insert(field.into(), Value::Object(m));
    }
}

/// Adds a generated object, merging with or replacing an existing one of
/// the same id as its behavior says (kustomize's `appendReplaceOrMerge`).
fn absorb(ra: &mut ResMap, mut res: Resource) -> Result<(), String> {
    let id = res.cur_id();
    let behavior = res.behavior.unwrap_or(Behavior::Create);
    let hits = ra.indexes_by_any_id(&id);
    match hits.len() {
        0 => match behavior {
            Behavior::Merge | Behavior::Replace => {
                Err(format!("id {id} does not exist; cannot merge or replace"))
            }
            Behavior::Create => ra.append(res),
        },
        1 => {
            let old = &ra.list[hits[0]];
            if behavior == Behavior::Create {
                return Err(format!("id {id} exists; behavior must be merge or replace"));
            }
            let mut labels = string_map(old, "labels");
            labels.extend(string_map(&res, "labels"));
            let mut annotations = string_map(old, "annotations");
            annotations.extend(string_map(&res, "annotations"));
            if behavior == Behavior::Merge
                && let Some(o) = old.string_map("annotations").get(metadata::ORIGIN)
            {
                // kustomize keeps the origin of the object merged into.
                annotations.insert(metadata::ORIGIN.into(), o.clone());
            }
            set_string_map(&mut res, "labels", labels);
            set_string_map(&mut res, "annotations", annotations);
            res.set_name(old.name());
            res.set_namespace(old.namespace());
            if behavior == Behavior::Merge {
                for field in ["data", "binaryData"] {
                    let mut merged = old
                        .obj
                        .get(field)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(Value::Object(new)) = res.obj.get(field) {
                        merged.extend(new.clone());
                    }
                    if !merged.is_empty() {
                        res.obj.insert(field.into(), Value::Object(merged));
                    }
                }
            }
            res.prev = old.prev.clone();
            res.prefixes = old.prefixes.clone();
            res.suffixes = old.suffixes.clone();
            res.needs_hash = res.needs_hash && old.needs_hash;
            res.ref_vars = old.ref_vars.clone();
            ra.list[hits[0]] = res;
            Ok(())
        }
        _ => Err(format!(
            "found multiple objects that could accept merge of {id}"
        )),
    }
}

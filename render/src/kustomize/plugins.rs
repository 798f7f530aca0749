//! `generators`, `transformers` and `validators` entries that configure
//! kustomize's built-in plugins (`apiVersion: builtin`) by a config file,
//! a kustomization directory of config files, or an inline document.
//! Anything else (exec, container or KRM-function plugins, any other
//! apiVersion) is refused with the entry named.
//!
//! Built-in plugins use exactly the field specs their config gives (no
//! defaults), as in kustomize; they run after the kustomization's own
//! fields, in the order listed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::fieldspec::FieldSpec;
use super::kustomization::{GeneratorArgs, Image, Patch, Replica};
use super::replacements;
use super::resmap::{ResMap, Selector};
use super::{Builder, KustomizeError, absorb, generators, json_patch, metadata, parse_json_patch};
use super::{smp_by_id, transformers};
use crate::source::join;
use crate::yaml;

type R<T> = Result<T, String>;

/// Which list an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Generator,
    Transformer,
    Validator,
}

impl Role {
    pub fn field(self) -> &'static str {
        match self {
            Role::Generator => "generators",
            Role::Transformer => "transformers",
            Role::Validator => "validators",
        }
    }
}

const FUNCTION_ANNOTATIONS: &[&str] = &["config.kubernetes.io/function", "config.k8s.io/function"];

const GENERATORS: &[&str] = &["ConfigMapGenerator", "SecretGenerator"];
const TRANSFORMERS: &[&str] = &[
    "AnnotationsTransformer",
    "HashTransformer",
    "ImageTagTransformer",
    "LabelTransformer",
    "NamespaceTransformer",
    "PatchJson6902Transformer",
    "PatchStrategicMergeTransformer",
    "PatchTransformer",
    "PrefixTransformer",
    "SuffixTransformer",
    "ReplicaCountTransformer",
    "ReplacementTransformer",
];

/// One plugin config: where it came from and the object.
pub struct Config {
    pub origin: String,
    /// The file it was read from (the kustomization for an inline entry),
    /// relative to the directory built: its `configuredIn`.
    pub configured_in: String,
    pub obj: Map<String, Value>,
}

impl Config {
    fn kind(&self) -> &str {
        self.obj.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    fn args<T: DeserializeOwned>(&self) -> R<T> {
        let mut m = self.obj.clone();
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("metadata");
        serde_json::from_value(Value::Object(m)).map_err(|e| format!("{}: {e}", self.describe()))
    }

    fn meta(&self, field: &str) -> String {
        self.obj
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// The config as the origin of what it generates or transforms.
    fn configured_by(&self) -> metadata::ConfiguredBy {
        metadata::ConfiguredBy {
            file: self.configured_in.clone(),
            api_version: self
                .obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            kind: self.kind().to_string(),
            name: self.meta("name"),
            namespace: self.meta("namespace"),
        }
    }

    fn describe(&self) -> String {
        format!("{} {:?} in {}", self.kind(), self.meta("name"), self.origin)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairsArgs {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AffixArgs {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    suffix: String,
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamespaceArgs {
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
    #[serde(default)]
    unset_only: bool,
    #[serde(default)]
    set_role_binding_subjects: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageArgs {
    #[serde(default)]
    image_tag: Image,
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplicaArgs {
    #[serde(default)]
    replica: Replica,
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
}

#[derive(Deserialize)]
struct SmpArgs {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    patches: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Json6902Args {
    #[serde(default)]
    target: Option<Selector>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    json_op: String,
}

#[derive(Deserialize)]
struct ReplacementArgs {
    #[serde(default)]
    replacements: Vec<replacements::Entry>,
}

fn refuse_unless_builtin(c: &Config, role: Role) -> R<()> {
    let annotations = c
        .obj
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    if let Some(a) = annotations
        && let Some(key) = FUNCTION_ANNOTATIONS.iter().find(|k| a.contains_key(**k))
    {
        return Err(format!(
            "{}: the plugin has annotation {key}: exec, container and KRM-function plugins are refused: fleet runs no plugin code",
            c.describe()
        ));
    }
    let api = c
        .obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let known = match role {
        Role::Generator => GENERATORS.contains(&c.kind()),
        Role::Transformer | Role::Validator => TRANSFORMERS.contains(&c.kind()),
    };
    if api != "builtin" || !known {
        return Err(format!(
            "{}: apiVersion {api:?} kind {:?} is not one of kustomize's built-in {}: exec, container and KRM-function plugins are refused: fleet runs no plugin code",
            c.describe(),
            c.kind(),
            if role == Role::Generator {
                "generators"
            } else {
                "transformers"
            },
        ));
    }
    Ok(())
}

impl Builder<'_> {
    /// Reads the plugin configs one of `generators`/`transformers`/`validators` lists.
    pub(super) fn plugin_configs(
        &mut self,
        dir: &str,
        entries: &[String],
        role: Role,
    ) -> Result<Vec<Config>, KustomizeError> {
        let kfile = self.kustomization_file(dir)?;
        let e = |m: String| KustomizeError {
            file: kfile.clone(),
            reason: format!("{}: {m}", role.field()),
        };
        // kustomize takes the inline entries first, then the files and
        // directories, each in the order listed.
        let mut out = Vec::new();
        let mut from_paths = Vec::new();
        for entry in entries {
            let inline = yaml::parse_kyaml("inline", entry.as_bytes())
                .ok()
                .filter(|d| !d.is_empty() && d.iter().all(|d| d.value.is_object()));
            if let Some(docs) = inline {
                for o in super::objects(docs, "inline").map_err(&e)? {
                    self.saw_kind(o.api_version(), o.kind())
                        .map_err(|m| self.err_at(m))?;
                    out.push(Config {
                        origin: format!("an inline entry of {kfile}"),
                        configured_in: metadata::relative(&self.root, &kfile),
                        obj: o.obj,
                    });
                }
                continue;
            }
            if super::is_remote(entry) {
                return Err(e(format!(
                    "remote plugin config {entry:?} is refused: fleet builds only what is in the repository"
                )));
            }
            let path =
                join(dir, entry).ok_or_else(|| e(format!("{entry:?} leaves the repository")))?;
            if let Some(bytes) = self.read(&path).map_err(&e)? {
                if !super::in_root(dir, &path) {
                    return Err(e(format!(
                        "security; file '{path}' is not in or below '{dir}'"
                    )));
                }
                let docs = yaml::parse_kyaml(&path, &bytes).map_err(|m| e(m.to_string()))?;
                for o in super::objects(docs, &path).map_err(&e)? {
                    self.saw_kind(o.api_version(), o.kind())
                        .map_err(|m| self.err_at(m))?;
                    from_paths.push(Config {
                        origin: path.clone(),
                        configured_in: metadata::relative(&self.root, &path),
                        obj: o.obj,
                    });
                }
            } else if self.src.is_dir(&path).map_err(|x| e(x.to_string()))? {
                let sub = self.target(&path, ResMap::default(), false)?;
                for r in sub.list {
                    // Read from a file of that kustomization, whose origin
                    // the sub-build recorded.
                    let configured_in = metadata::origin_path(&r.obj)
                        .map_or_else(|| metadata::relative(&self.root, &path), str::to_string);
                    from_paths.push(Config {
                        origin: path.clone(),
                        configured_in,
                        obj: r.obj,
                    });
                }
            } else {
                return Err(e(format!(
                    "{entry:?} not found: no file or directory '{path}'"
                )));
            }
        }
        out.append(&mut from_paths);
        for c in &out {
            refuse_unless_builtin(c, role).map_err(&e)?;
        }
        Ok(out)
    }

    /// Runs built-in generator configs, absorbing what they make into `ra`.
    pub(super) fn run_generators(&self, dir: &str, configs: &[Config], ra: &mut ResMap) -> R<()> {
        for c in configs {
            let kind = match c.kind() {
                "ConfigMapGenerator" => generators::Kind::ConfigMap,
                _ => generators::Kind::Secret,
            };
            let mut args: GeneratorArgs = c.args()?;
            if args.name.is_empty() {
                args.name = c.meta("name");
            }
            if args.namespace.is_empty() {
                args.namespace = c.meta("namespace");
            }
            if !args.env.is_empty() {
                args.envs.push(std::mem::take(&mut args.env));
            }
            let load = |p: &str| self.load(dir, p);
            let at = |m: String| format!("{}: {m}", c.describe());
            let mut res = generators::generate(kind, &args, None, &load).map_err(at)?;
            if self.meta.tracking {
                metadata::generator_origin(&mut res, &c.configured_by());
            }
            absorb(ra, res).map_err(at)?;
        }
        Ok(())
    }

    /// Runs built-in transformer configs over `ra`, in order.
    pub(super) fn run_transformers(&self, dir: &str, configs: &[Config], ra: &mut ResMap) -> R<()> {
        for c in configs {
            self.run_transformer(dir, c, ra)
                .map_err(|m| format!("{}: {m}", c.describe()))?;
            self.record(ra, &c.configured_by());
        }
        Ok(())
    }

    /// Validators: built-in transformers that must not change anything.
    pub(super) fn run_validators(&self, dir: &str, configs: &[Config], ra: &ResMap) -> R<()> {
        for c in configs {
            let mut copy = ra.clone();
            self.run_transformer(dir, c, &mut copy)
                .map_err(|m| format!("{}: {m}", c.describe()))?;
            let before: Vec<&Map<String, Value>> = ra.list.iter().map(|r| &r.obj).collect();
            let after: Vec<&Map<String, Value>> = copy.list.iter().map(|r| &r.obj).collect();
            if before != after {
                return Err(format!(
                    "{}: validator shouldn't modify the resource map",
                    c.describe()
                ));
            }
        }
        Ok(())
    }

    fn run_transformer(&self, dir: &str, c: &Config, ra: &mut ResMap) -> R<()> {
        match c.kind() {
            "LabelTransformer" => {
                let a: PairsArgs = c.args()?;
                transformers::set_pairs(ra, &a.labels, &a.field_specs)
            }
            "AnnotationsTransformer" => {
                let a: PairsArgs = c.args()?;
                transformers::set_pairs(ra, &a.annotations, &a.field_specs)
            }
            "PrefixTransformer" | "SuffixTransformer" => {
                let a: AffixArgs = c.args()?;
                if a.field_specs.is_empty() {
                    return Ok(());
                }
                if a.field_specs.iter().any(|f| {
                    f.path != "metadata/name"
                        || !f.group.is_empty()
                        || !f.version.is_empty()
                        || !f.kind.is_empty()
                }) {
                    return Err(
                        "fieldSpecs other than `path: metadata/name` for every kind are refused"
                            .into(),
                    );
                }
                if c.kind() == "PrefixTransformer" {
                    transformers::prefix(ra, &a.prefix);
                } else {
                    transformers::suffix(ra, &a.suffix);
                }
                Ok(())
            }
            "NamespaceTransformer" => {
                let a: NamespaceArgs = c.args()?;
                if a.unset_only {
                    return Err("unsetOnly: true is refused".into());
                }
                if !matches!(a.set_role_binding_subjects.as_str(), "" | "defaultOnly") {
                    return Err(format!(
                        "setRoleBindingSubjects: {:?} is refused: fleet sets the namespace of subjects named default only",
                        a.set_role_binding_subjects
                    ));
                }
                let ns = c.meta("namespace");
                if ns.is_empty() {
                    return Ok(());
                }
                transformers::namespace(ra, &ns, &a.field_specs)
            }
            "ImageTagTransformer" => {
                let a: ImageArgs = c.args()?;
                transformers::images(ra, std::slice::from_ref(&a.image_tag), &a.field_specs)
            }
            "ReplicaCountTransformer" => {
                let a: ReplicaArgs = c.args()?;
                transformers::replicas(ra, std::slice::from_ref(&a.replica), &a.field_specs)
            }
            "PatchTransformer" => {
                let p: Patch = c.args()?;
                self.patch(dir, &p, ra)
            }
            "PatchStrategicMergeTransformer" => {
                let a: SmpArgs = c.args()?;
                if a.paths.is_empty() && a.patches.is_empty() {
                    return Err("empty file path and empty patch content".into());
                }
                // kustomize reads these patches as it reads those of
                // `patchesStrategicMerge`: with kyaml, schema comments and all.
                let mut docs = Vec::new();
                for p in &a.paths {
                    docs.extend(self.smp_entry(dir, p)?);
                }
                if !a.patches.is_empty() {
                    docs.extend(
                        super::smp_documents("patches", a.patches.as_bytes())
                            .map_err(|m| m.to_string())?,
                    );
                }
                for d in &docs {
                    smp_by_id(ra, d, false, false, &self.schema)?;
                }
                Ok(())
            }
            "PatchJson6902Transformer" => {
                let a: Json6902Args = c.args()?;
                let target = a
                    .target
                    .as_ref()
                    .filter(|t| !t.name.is_empty())
                    .ok_or("must specify the target name")?;
                let text = match (a.path.is_empty(), a.json_op.is_empty()) {
                    (false, true) => {
                        String::from_utf8_lossy(&self.load(dir, &a.path)?).into_owned()
                    }
                    (true, false) => a.json_op.clone(),
                    (true, true) => return Err("empty file path and empty jsonOp".into()),
                    (false, false) => {
                        return Err("must specify a file path or jsonOp, not both".into());
                    }
                };
                let ops = parse_json_patch(&text)?;
                json_patch(ra, target, &ops, false)
            }
            "HashTransformer" => {
                for r in &mut ra.list {
                    if r.needs_hash && !r.obj.is_empty() {
                        let h = generators::hash(&r.obj);
                        r.store_previous_id();
                        let name = format!("{}-{h}", r.name());
                        r.set_name(&name);
                    }
                }
                Ok(())
            }
            "ReplacementTransformer" => {
                let a: ReplacementArgs = c.args()?;
                let load = |p: &str| self.load(dir, p);
                let list = replacements::resolve_entries(&a.replacements, &load)?;
                replacements::apply(ra, &list)
            }
            other => Err(format!("unknown built-in transformer {other}")),
        }
    }
}

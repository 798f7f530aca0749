//! The OpenAPI schema kustomize's strategic merge reads patch strategies and
//! merge keys from: by default the Kubernetes 1.21.2 document compiled into
//! kustomize (kyaml `kubernetesapi/v1_21_2`), or a custom one a kustomization
//! names with `openapi: {path: ...}` ([`custom`]).
//!
//! `schema.txt` is extracted from the built-in document by
//! `render/tests/kustomize/extract_schema.py`. It keeps only the definitions
//! from which a list with an `x-kubernetes-patch-strategy` can be reached:
//! lists anywhere else have no strategy and are replaced by a patch, which is
//! what kustomize does with them too. Lines:
//! `G <group|-> <version> <kind> <definition>` maps a GVK to its definition;
//! `D <definition>` starts a definition, followed by its fields as
//! `F <name|*> <v|l|m> <strategy|-> <key,key|-> <definition|->`
//! (value, list of, map of; `*` is `additionalProperties`).
//!
//! Both kinds of document are read into one form ([`Doc`]) and compiled into
//! a graph of [`Node`]s that answers what kyaml's `ResourceSchema` answers:
//! `Field` (a property, else `additionalProperties`, `$ref`s followed),
//! `Elements` (the `items` of a schema of `type: array`) and
//! `PatchStrategyAndKeyList` (`x-kubernetes-list-map-keys`, else
//! `x-kubernetes-patch-merge-key`, read only where a strategy is set).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A schema as written: a `$ref`, or its own fields.
#[derive(Debug, Default)]
struct Raw {
    reference: Ref,
    props: Vec<(String, Raw)>,
    addl: Option<Box<Raw>>,
    items: Option<Box<Raw>>,
    /// `type: array` (or `[array]`): only then kyaml reads `items`.
    array: bool,
    /// `x-kubernetes-patch-strategy`, if set.
    strategy: Option<String>,
    /// The merge keys, as `PatchStrategyAndKeyList` gives them.
    keys: Vec<String>,
}

#[derive(Debug, Default)]
enum Ref {
    #[default]
    None,
    /// `#/definitions/<name>`, then `properties/<key>` pairs.
    Def(String, Vec<String>),
    /// A reference kyaml cannot follow to a definition: the field has no schema.
    Unresolved,
}

/// One OpenAPI document: its definitions, which of them are the schema of a
/// GVK, and the scopes its `paths` give.
#[derive(Debug, Default)]
struct Doc {
    defs: Vec<(String, Raw)>,
    /// `(apiVersion, kind, index into defs)`.
    gvks: Vec<(String, String, usize)>,
    /// `(apiVersion, kind, namespaced)`, in the order of the paths.
    scopes: Vec<(String, String, bool)>,
}

/// One compiled schema node.
#[derive(Debug, Default)]
struct Node {
    props: HashMap<String, u32>,
    addl: Option<u32>,
    items: Option<u32>,
    merge: bool,
    keys: Vec<String>,
}

/// A compiled schema: what a build's strategic merge patches consult.
#[derive(Debug, Default)]
pub struct Schemas {
    roots: HashMap<(String, String), u32>,
    nodes: Vec<Node>,
    /// The node of every definition, by name (for `$ref`s in comments).
    defs: HashMap<String, u32>,
    /// Scopes of kinds from the document's `paths` (true: namespaced).
    scopes: HashMap<(String, String), bool>,
}

/// The schema a build's strategic merges use now, and whether one has used
/// it (kustomize sets a schema from a base only until one is in use).
///
/// A custom schema file that does not parse is an error only once something
/// needs the schema, as in kustomize, which parses it lazily (and panics):
/// a strategic merge, or the scope of a kind kyaml does not precompute.
pub struct Active {
    schemas: Result<Arc<Schemas>, String>,
    used: Cell<bool>,
}

impl Active {
    pub fn new(schemas: Arc<Schemas>) -> Active {
        Active {
            schemas: Ok(schemas),
            used: Cell::new(false),
        }
    }

    /// A custom schema that failed to parse, with the error.
    pub fn broken(error: String) -> Active {
        Active {
            schemas: Err(error),
            used: Cell::new(false),
        }
    }

    /// The schema, for a strategic merge about to run.
    pub fn for_merge(&self) -> Result<&Schemas, String> {
        self.used.set(true);
        self.schemas.as_deref().map_err(Clone::clone)
    }

    /// The parse error of a custom schema, if it has one.
    pub fn error(&self) -> Option<&str> {
        self.schemas.as_ref().err().map(String::as_str)
    }

    /// Whether a strategic merge has run.
    pub fn used(&self) -> bool {
        self.used.get()
    }
}

/// The schema of one node being merged: none, a node of the schema in use,
/// or one of a schema given in a comment ([`Comments`]).
#[derive(Clone, Copy)]
pub enum Sch<'a> {
    None,
    Base(&'a Schemas, u32),
    Comment(&'a Comments<'a>, u32),
}

/// The one Kubernetes version kustomize v5.5 has built in (`openapi: {version: ...}`).
pub const BUILTIN_VERSION: &str = "v1.21.2";

/// Which documents a custom schema is compiled with, in the order kyaml
/// parses them (a later definition of the same name wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The custom document alone: nothing read the built-in one before.
    Alone,
    /// The built-in document was parsed first (a strategic merge ran before
    /// the custom schema was set), then the custom one.
    AfterBuiltin,
    /// The custom document, then the built-in one (kyaml had deferred parsing
    /// it when it looked up the scope of a kind it does not precompute).
    BeforeBuiltin,
}

fn builtin_doc() -> &'static Doc {
    static D: OnceLock<Doc> = OnceLock::new();
    D.get_or_init(|| parse_table(include_str!("schema.txt")))
}

/// The built-in schema.
pub fn builtin() -> Arc<Schemas> {
    static S: OnceLock<Arc<Schemas>> = OnceLock::new();
    S.get_or_init(|| Arc::new(compile(&[builtin_doc()])))
        .clone()
}

/// A custom schema file (`openapi: {path: ...}`), JSON or YAML, compiled as
/// `mode` says. Compiled schemas are memoized by content, so building the
/// same tree again does not parse the file again.
pub fn custom(file: &str, bytes: &[u8], mode: Mode) -> Result<Arc<Schemas>, String> {
    type Cache = Mutex<HashMap<([u8; 32], Mode), Arc<Schemas>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key: [u8; 32] = Sha256::digest(bytes).into();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = cache.lock().map_or(None, |c| c.get(&(key, mode)).cloned()) {
        return Ok(s);
    }
    let doc = parse_file(file, bytes)?;
    let docs: Vec<&Doc> = match mode {
        Mode::Alone => vec![&doc],
        Mode::AfterBuiltin => vec![builtin_doc(), &doc],
        Mode::BeforeBuiltin => vec![&doc, builtin_doc()],
    };
    let s = Arc::new(compile(&docs));
    if let Ok(mut c) = cache.lock() {
        if c.len() >= 32 {
            c.clear();
        }
        c.insert((key, mode), s.clone());
    }
    Ok(s)
}

fn parse_table(text: &str) -> Doc {
    let mut doc = Doc::default();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut cur: Option<usize> = None;
    let mut gvks = Vec::new();
    let opt = |s: &str| (s != "-").then(|| s.to_string());
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[0] {
            "G" => gvks.push(parts),
            "D" => {
                index.insert(parts[1], doc.defs.len());
                cur = Some(doc.defs.len());
                doc.defs.push((parts[1].to_string(), Raw::default()));
            }
            "F" => {
                let Some(c) = cur else { continue };
                let strategy = opt(parts[3]);
                let keys: Vec<String> = opt(parts[4])
                    .unwrap_or_default()
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect();
                let target = || Raw {
                    reference: opt(parts[5]).map_or(Ref::None, |d| Ref::Def(d, Vec::new())),
                    ..Raw::default()
                };
                let field = match parts[2] {
                    "l" => Raw {
                        array: true,
                        items: opt(parts[5]).map(|_| Box::new(target())),
                        strategy,
                        keys,
                        ..Raw::default()
                    },
                    "m" => Raw {
                        addl: Some(Box::new(target())),
                        strategy,
                        keys,
                        ..Raw::default()
                    },
                    _ => Raw {
                        strategy,
                        keys,
                        ..target()
                    },
                };
                let def = &mut doc.defs[c].1;
                if parts[1] == "*" {
                    def.addl = Some(Box::new(field));
                } else {
                    def.props.push((parts[1].to_string(), field));
                }
            }
            _ => {}
        }
    }
    for parts in gvks {
        if let Some(&d) = index.get(parts[4]) {
            let api = if parts[1] == "-" {
                parts[2].to_string()
            } else {
                format!("{}/{}", parts[1], parts[2])
            };
            doc.gvks.push((api, parts[3].to_string(), d));
        }
    }
    doc
}

/// Reads a schema file as kyaml does: JSON if it starts with `{`, else YAML
/// (`sigs.k8s.io/yaml`), then as an OpenAPI v2 (Swagger) document.
fn parse_file(file: &str, bytes: &[u8]) -> Result<Doc, String> {
    let value = if bytes.first() == Some(&b'{') {
        serde_json::from_slice::<Value>(bytes).map_err(|e| format!("invalid JSON: {e}"))?
    } else if bytes.is_empty() {
        return Err("the file is empty".into());
    } else {
        let docs = crate::yaml::parse_documents(file, bytes).map_err(|e| e.to_string())?;
        docs.into_iter().next().unwrap_or(Value::Null)
    };
    let obj = match &value {
        Value::Null => return Ok(Doc::default()),
        Value::Object(m) => m,
        _ => return Err("an OpenAPI document must be a mapping".into()),
    };
    let mut doc = Doc::default();
    match obj.get("definitions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(defs)) => {
            for (name, s) in defs {
                let at = format!("definitions.{name}");
                let raw = parse_schema(s, &at)?;
                let i = doc.defs.len();
                if let Some(Value::Array(exts)) = s.get("x-kubernetes-group-version-kind") {
                    for e in exts {
                        if let Some((api, kind)) = type_meta(e, &at)? {
                            doc.gvks.push((api, kind, i));
                        }
                    }
                }
                doc.defs.push((name.clone(), raw));
            }
        }
        Some(_) => return Err("definitions: must be a mapping".into()),
    }
    match obj.get("paths") {
        None | Some(Value::Null) => {}
        Some(Value::Object(paths)) => {
            for (path, item) in paths {
                let Some(gvk) = item
                    .get("get")
                    .and_then(|g| g.get("x-kubernetes-group-version-kind"))
                else {
                    continue;
                };
                if let Some((api, kind)) = type_meta(gvk, &format!("paths.{path}.get"))? {
                    doc.scopes
                        .push((api, kind, path.contains("namespaces/{namespace}")));
                }
            }
        }
        Some(_) => return Err("paths: must be a mapping".into()),
    }
    Ok(doc)
}

/// An `x-kubernetes-group-version-kind` entry as a TypeMeta.
fn type_meta(v: &Value, at: &str) -> Result<Option<(String, String)>, String> {
    let Value::Object(m) = v else {
        return Ok(None);
    };
    let field = |f: &str| match m.get(f) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!(
            "{at}: x-kubernetes-group-version-kind: {f} must be a string"
        )),
    };
    let version = field("version")?;
    let kind = field("kind")?;
    let api = match m.get("group") {
        Some(Value::String(g)) if !g.is_empty() => format!("{g}/{version}"),
        _ => version,
    };
    Ok(Some((api, kind)))
}

fn parse_schema(v: &Value, at: &str) -> Result<Raw, String> {
    let Value::Object(m) = v else {
        return Err(format!("{at}: a schema must be a mapping"));
    };
    let mut raw = Raw {
        reference: match m.get("$ref") {
            None => Ref::None,
            Some(Value::String(s)) => definition_ref(s),
            Some(_) => return Err(format!("{at}: $ref must be a string")),
        },
        array: match m.get("type") {
            Some(Value::String(t)) => t == "array",
            Some(Value::Array(ts)) => ts.len() == 1 && ts[0] == "array",
            _ => false,
        },
        ..Raw::default()
    };
    match m.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(props)) => {
            for (name, p) in props {
                raw.props.push((
                    name.clone(),
                    parse_schema(p, &format!("{at}.properties.{name}"))?,
                ));
            }
        }
        Some(_) => return Err(format!("{at}: properties must be a mapping")),
    }
    match m.get("additionalProperties") {
        Some(a @ Value::Object(_)) => {
            raw.addl = Some(Box::new(parse_schema(
                a,
                &format!("{at}.additionalProperties"),
            )?));
        }
        None | Some(Value::Null | Value::Bool(_)) => {}
        Some(_) => {
            return Err(format!(
                "{at}: additionalProperties must be a schema or a boolean"
            ));
        }
    }
    match m.get("items") {
        Some(i @ Value::Object(_)) => {
            raw.items = Some(Box::new(parse_schema(i, &format!("{at}.items"))?));
        }
        // A list of schemas (a tuple) gives kyaml no element schema.
        None | Some(Value::Null | Value::Array(_)) => {}
        Some(_) => return Err(format!("{at}: items must be a schema or a list of schemas")),
    }
    raw.strategy = ext_string(m, "x-kubernetes-patch-strategy", at)?;
    if raw.strategy.is_some() {
        raw.keys = match m.get("x-kubernetes-list-map-keys") {
            Some(Value::Array(keys)) => keys
                .iter()
                .map(|k| {
                    k.as_str().map(str::to_string).ok_or_else(|| {
                        format!("{at}: x-kubernetes-list-map-keys must be a list of strings")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(format!(
                    "{at}: x-kubernetes-list-map-keys must be a list of strings"
                ));
            }
            None => ext_string(m, "x-kubernetes-patch-merge-key", at)?
                .into_iter()
                .collect(),
        };
    }
    Ok(raw)
}

fn ext_string(m: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}: {key} must be a string")),
    }
}

/// A `$ref` as kyaml resolves it: the JSON pointer after `#`, which must
/// lead to a schema: a definition, or a property of one (at any depth).
fn definition_ref(s: &str) -> Ref {
    let pointer = s.split_once('#').map_or("", |(_, p)| p);
    let segs: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
        .collect();
    match segs.as_slice() {
        [d, name, rest @ ..] if d == "definitions" && rest.len() % 2 == 0 => {
            let mut props = Vec::new();
            for pair in rest.chunks(2) {
                if pair[0] != "properties" {
                    return Ref::Unresolved;
                }
                props.push(pair[1].clone());
            }
            Ref::Def(name.clone(), props)
        }
        _ => Ref::Unresolved,
    }
}

struct Compiler<'d> {
    docs: &'d [&'d Doc],
    /// Node of every schema as written, by address.
    ids: HashMap<*const Raw, u32>,
    /// Definition name -> (document, definition), the last parsed winning.
    by_name: HashMap<&'d str, (usize, usize)>,
}

fn compile(docs: &[&Doc]) -> Schemas {
    let mut c = Compiler {
        docs,
        ids: HashMap::new(),
        by_name: HashMap::new(),
    };
    // First every schema gets its node, so references can point anywhere.
    let mut order: Vec<&Raw> = Vec::new();
    for (di, doc) in docs.iter().enumerate() {
        for (dj, (name, raw)) in doc.defs.iter().enumerate() {
            c.by_name.insert(name.as_str(), (di, dj));
            c.alloc(raw, &mut order);
        }
    }
    let nodes = order.iter().map(|raw| c.node(raw)).collect();
    let mut roots = HashMap::new();
    let mut scopes = HashMap::new();
    for doc in docs {
        for (api, kind, d) in &doc.gvks {
            roots.insert((api.clone(), kind.clone()), c.id(&doc.defs[*d].1));
        }
        for (api, kind, namespaced) in &doc.scopes {
            let key = (api.clone(), kind.clone());
            if *namespaced {
                scopes.insert(key, true);
            } else {
                scopes.entry(key).or_insert(false);
            }
        }
    }
    let defs = c
        .by_name
        .iter()
        .filter_map(|(name, &(di, dj))| Some((name.to_string(), c.target(&docs[di].defs[dj].1)?)))
        .collect();
    Schemas {
        roots,
        nodes,
        defs,
        scopes,
    }
}

impl<'d> Compiler<'d> {
    fn alloc(&mut self, raw: &'d Raw, order: &mut Vec<&'d Raw>) {
        self.ids.insert(raw as *const Raw, order.len() as u32);
        order.push(raw);
        for (_, p) in &raw.props {
            self.alloc(p, order);
        }
        for sub in [&raw.addl, &raw.items].into_iter().flatten() {
            self.alloc(sub, order);
        }
    }

    fn id(&self, raw: &Raw) -> u32 {
        self.ids[&(raw as *const Raw)]
    }

    /// The node of a schema as written (its own fields).
    fn node(&self, raw: &'d Raw) -> Node {
        let mut n = own_fields(raw);
        for (name, p) in &raw.props {
            if let Some(t) = self.target(p) {
                n.props.insert(name.clone(), t);
            }
        }
        n.addl = raw.addl.as_deref().and_then(|a| self.target(a));
        if raw.array {
            n.items = raw.items.as_deref().and_then(|i| self.target(i));
        }
        n
    }

    /// The node a field, element or value schema stands for: its `$ref`s
    /// followed (kyaml follows them until a schema has none), or itself.
    fn target(&self, raw: &'d Raw) -> Option<u32> {
        let mut r = raw;
        for _ in 0..64 {
            match &r.reference {
                Ref::None => return Some(self.id(r)),
                Ref::Unresolved => return None,
                Ref::Def(name, props) => {
                    let &(di, dj) = self.by_name.get(name.as_str())?;
                    r = &self.docs[di].defs[dj].1;
                    for key in props {
                        r = r.props.iter().find(|(k, _)| k == key).map(|(_, p)| p)?;
                    }
                }
            }
        }
        None
    }
}

impl Schemas {
    /// The schema of a whole object of this apiVersion and kind.
    pub fn root(&self, api_version: &str, kind: &str) -> Sch<'_> {
        match self.roots.get(&(api_version.to_string(), kind.to_string())) {
            Some(&n) => Sch::Base(self, n),
            None => Sch::None,
        }
    }

    /// Kinds the document's `paths` declare cluster-scoped (and never
    /// namespaced), as `(apiVersion, kind)`.
    pub fn cluster_scoped(&self) -> impl Iterator<Item = (&str, &str)> {
        self.scopes
            .iter()
            .filter(|(_, namespaced)| !**namespaced)
            .map(|((a, k), _)| (a.as_str(), k.as_str()))
    }
}

impl<'a> Sch<'a> {
    pub const NONE: Sch<'static> = Sch::None;

    fn node(self) -> Option<&'a Node> {
        match self {
            Sch::None => None,
            Sch::Base(s, n) => Some(&s.nodes[n as usize]),
            Sch::Comment(c, n) => Some(&c.nodes[n as usize]),
        }
    }

    /// The schema a target of this schema's node stands for.
    fn to(self, t: u32) -> Sch<'a> {
        match self {
            Sch::None => Sch::None,
            Sch::Base(s, _) => Sch::Base(s, t),
            Sch::Comment(c, _) if t & BASE != 0 => Sch::Base(c.base, t & !BASE),
            Sch::Comment(c, _) => Sch::Comment(c, t),
        }
    }

    /// The schema of field `name` of an object node.
    pub fn field(self, name: &str) -> Sch<'a> {
        match self
            .node()
            .and_then(|n| n.props.get(name).copied().or(n.addl))
        {
            Some(t) => self.to(t),
            None => Sch::None,
        }
    }

    /// The schema of the elements of a list node.
    pub fn elements(self) -> Sch<'a> {
        match self.node().and_then(|n| n.items) {
            Some(t) => self.to(t),
            None => Sch::None,
        }
    }

    /// Whether a list merges element-wise (`x-kubernetes-patch-strategy: merge`),
    /// and by which keys.
    pub fn merge_keys(self) -> Option<&'a [String]> {
        self.node().filter(|n| n.merge).map(|n| n.keys.as_slice())
    }

    pub fn is_none(self) -> bool {
        matches!(self, Sch::None)
    }
}

/// In a [`Comments`] node, a target with this bit set is a node of the
/// schema in use.
const BASE: u32 = 1 << 31;

/// Schemas given in comments of the objects a strategic merge reads (kyaml's
/// `fieldmeta`), compiled over the schema in use for one merge. Node 0 is a
/// schema with nothing in it (no fields, no strategy).
pub struct Comments<'a> {
    base: &'a Schemas,
    nodes: Vec<Node>,
    /// Comment text -> the schema it gives (`None`: it gives none).
    by_text: HashMap<String, Option<u32>>,
}

impl<'a> Comments<'a> {
    pub fn new(base: &'a Schemas) -> Comments<'a> {
        Comments {
            base,
            nodes: vec![Node::default()],
            by_text: HashMap::new(),
        }
    }

    /// Reads the comment `text` (its leading `#`s removed) as kyaml does:
    /// kpt's shorthand `{"$openapi": "name"}` (only strings) is the setter
    /// definition `io.k8s.cli.setters.<name>` of the schema in use; any
    /// other JSON object that decodes as a schema and is not the empty one is
    /// that schema, and a `$ref` in it that resolves replaces the rest.
    /// Texts that are not JSON, or not a schema, give none.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        if self.by_text.contains_key(text) {
            return Ok(());
        }
        let t = self.read(text)?;
        self.by_text.insert(text.to_string(), t);
        Ok(())
    }

    /// The schema `text` gave, if [`Comments::add`] found one.
    pub fn get(&'a self, text: &str) -> Option<Sch<'a>> {
        let t = (*self.by_text.get(text)?)?;
        Some(if t & BASE != 0 {
            Sch::Base(self.base, t & !BASE)
        } else {
            Sch::Comment(self, t)
        })
    }

    fn read(&mut self, text: &str) -> Result<Option<u32>, String> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return Ok(None);
        };
        let Value::Object(m) = &v else {
            return Ok(None);
        };
        if let Some(Value::String(name)) = m.get("$openapi")
            && !name.is_empty()
            && m.values().all(Value::is_string)
        {
            // kyaml checks that the setter exists in a schema it never sets,
            // which always passes: the shorthand is always a setter `$ref`,
            // never a substitution, and without the definition it is a
            // schema with nothing in it (so a list is replaced).
            let def = format!("io.k8s.cli.setters.{name}");
            return Ok(Some(self.base.defs.get(&def).map_or(0, |&n| n | BASE)));
        }
        if !decodes_as_schema(&v) || is_zero_schema(m) {
            return Ok(None);
        }
        let raw = parse_schema(&v, "a schema in a comment")?;
        if let Some(t) = self.resolve(&raw.reference) {
            return Ok(Some(t));
        }
        Ok(Some(self.compile(&raw)))
    }

    /// A `$ref` to a definition (or a property of one) of the schema in use.
    fn resolve(&self, r: &Ref) -> Option<u32> {
        let Ref::Def(name, props) = r else {
            return None;
        };
        let mut n = *self.base.defs.get(name)?;
        for p in props {
            n = *self.base.nodes[n as usize].props.get(p)?;
        }
        Some(n | BASE)
    }

    /// A schema as written in a comment; a `$ref` that does not resolve
    /// leaves the schema as it is (kyaml's `Field` and `Elements`).
    fn compile(&mut self, raw: &Raw) -> u32 {
        let mut n = own_fields(raw);
        for (name, p) in &raw.props {
            let t = self.target(p);
            n.props.insert(name.clone(), t);
        }
        n.addl = raw.addl.as_deref().map(|a| self.target(a));
        if raw.array {
            n.items = raw.items.as_deref().map(|i| self.target(i));
        }
        self.nodes.push(n);
        (self.nodes.len() - 1) as u32
    }

    fn target(&mut self, raw: &Raw) -> u32 {
        match self.resolve(&raw.reference) {
            Some(t) => t,
            None => self.compile(raw),
        }
    }
}

/// Whether Go's JSON decoder takes `v` as a `spec.Schema` (kube-openapi):
/// the fields it knows must have their types; others are kept as they are.
fn decodes_as_schema(v: &Value) -> bool {
    let Value::Object(m) = v else {
        return v.is_null();
    };
    let strings = |v: &Value| match v {
        Value::Array(a) => a.iter().all(|x| x.is_string() || x.is_null()),
        _ => v.is_null(),
    };
    let schemas = |v: &Value| match v {
        Value::Array(a) => a.iter().all(decodes_as_schema),
        _ => v.is_null(),
    };
    let schema_map = |v: &Value| match v {
        Value::Object(o) => o.values().all(decodes_as_schema),
        _ => v.is_null(),
    };
    let int = |v: &Value| v.is_null() || v.is_i64() || v.is_u64();
    m.iter().all(|(k, v)| match k.as_str() {
        "id" | "$schema" | "description" | "format" | "title" | "pattern" | "discriminator" => {
            v.is_string() || v.is_null()
        }
        "nullable" | "exclusiveMaximum" | "exclusiveMinimum" | "uniqueItems" | "readOnly" => {
            v.is_boolean() || v.is_null()
        }
        "maximum" | "minimum" | "multipleOf" => v.is_number() || v.is_null(),
        "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties" => {
            int(v)
        }
        "type" => v.is_string() || strings(v),
        "required" => strings(v),
        "enum" => v.is_array() || v.is_null(),
        "items" => v.is_object() && decodes_as_schema(v) || schemas(v),
        "allOf" | "oneOf" | "anyOf" => schemas(v),
        "not" => decodes_as_schema(v),
        "properties" | "patternProperties" | "definitions" => schema_map(v),
        "additionalProperties" | "additionalItems" => v.is_boolean() || decodes_as_schema(v),
        "dependencies" => match v {
            Value::Object(o) => o
                .values()
                .all(|d| d.is_object() && decodes_as_schema(d) || strings(d)),
            _ => v.is_null(),
        },
        "xml" | "externalDocs" => v.is_object() || v.is_null(),
        _ => true,
    })
}

/// Whether a decoded schema equals Go's zero `spec.Schema` (kyaml then
/// ignores it): every field it knows is null or its zero value, and there
/// is no other field (unknown fields and `x-` extensions are kept).
fn is_zero_schema(m: &Map<String, Value>) -> bool {
    const KNOWN: &[&str] = &[
        "id",
        "$schema",
        "description",
        "format",
        "title",
        "pattern",
        "discriminator",
        "nullable",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "uniqueItems",
        "readOnly",
        "maximum",
        "minimum",
        "multipleOf",
        "maxLength",
        "minLength",
        "maxItems",
        "minItems",
        "maxProperties",
        "minProperties",
        "type",
        "required",
        "enum",
        "items",
        "allOf",
        "oneOf",
        "anyOf",
        "not",
        "properties",
        "patternProperties",
        "definitions",
        "additionalProperties",
        "additionalItems",
        "dependencies",
        "xml",
        "externalDocs",
        "$ref",
        "default",
        "example",
    ];
    m.iter().all(|(k, v)| {
        KNOWN.contains(&k.as_str())
            && match v {
                Value::Null => true,
                Value::String(s) => s.is_empty() && !matches!(k.as_str(), "default" | "example"),
                Value::Bool(b) => !b,
                Value::Number(n) => {
                    n.as_f64() == Some(0.0)
                        && !matches!(
                            k.as_str(),
                            "maximum" | "minimum" | "multipleOf" | "default" | "example"
                        )
                }
                _ => false,
            }
    })
}

/// A schema node's own merge fields (strategy and keys), before its
/// properties and items are resolved.
fn own_fields(raw: &Raw) -> Node {
    Node {
        merge: raw
            .strategy
            .as_deref()
            .is_some_and(|s| s.split(',').any(|x| x == "merge")),
        keys: raw.keys.clone(),
        ..Node::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_template_lists_merge_by_name() {
        let s = builtin();
        let d = s.root("apps/v1", "Deployment");
        let containers = d
            .field("spec")
            .field("template")
            .field("spec")
            .field("containers");
        assert_eq!(containers.merge_keys().unwrap(), ["name"]);
        let ports = containers.elements().field("ports");
        assert_eq!(ports.merge_keys().unwrap(), ["containerPort", "protocol"]);
        assert!(containers.elements().field("args").merge_keys().is_none());
        assert!(s.root("example.com/v1", "Thing").is_none());
        let finalizers = d.field("metadata").field("finalizers");
        assert_eq!(finalizers.merge_keys().unwrap(), [] as [String; 0]);
    }

    const CUSTOM: &str = r##"{
      "definitions": {
        "Pipe": {"x-kubernetes-group-version-kind": [{"group": "x.io", "version": "v1", "kind": "Pipe"}],
                 "properties": {"spec": {"$ref": "#/definitions/Spec"}}},
        "Spec": {"properties": {
          "stages": {"type": "array", "items": {"$ref": "#/definitions/Stage"},
                     "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
          "untyped": {"items": {"$ref": "#/definitions/Stage"},
                      "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
          "keyed": {"type": ["array"], "x-kubernetes-patch-strategy": "merge,retainKeys",
                    "x-kubernetes-list-map-keys": ["a", "b"], "x-kubernetes-patch-merge-key": "a"},
          "mapKeysWithoutStrategy": {"type": "array", "x-kubernetes-list-map-keys": ["a"]},
          "refWithStrategy": {"$ref": "#/definitions/Stage", "x-kubernetes-patch-strategy": "merge"},
          "byName": {"additionalProperties": {"$ref": "#/definitions/Stage"}},
          "deep": {"$ref": "#/definitions/Stage/properties/steps"},
          "tuple": {"$ref": "#/definitions/Stage/items"}}},
        "Stage": {"properties": {"steps": {"type": "array", "x-kubernetes-patch-strategy": "merge",
                                           "x-kubernetes-patch-merge-key": "id"}}}
      }
    }"##;

    #[test]
    fn custom_schemas_answer_as_kyaml_does() {
        let s = custom("s.json", CUSTOM.as_bytes(), Mode::Alone).unwrap();
        let spec = s.root("x.io/v1", "Pipe").field("spec");
        let stages = spec.field("stages");
        assert_eq!(stages.merge_keys().unwrap(), ["name"]);
        assert_eq!(
            stages.elements().field("steps").merge_keys().unwrap(),
            ["id"]
        );
        // Without `type: array` kyaml gives the elements no schema.
        assert!(spec.field("untyped").merge_keys().is_some());
        assert!(spec.field("untyped").elements().is_none());
        assert_eq!(spec.field("keyed").merge_keys().unwrap(), ["a", "b"]);
        assert!(spec.field("mapKeysWithoutStrategy").merge_keys().is_none());
        // A `$ref` replaces the schema it is in, extensions and all.
        assert!(spec.field("refWithStrategy").merge_keys().is_none());
        assert_eq!(
            spec.field("byName")
                .field("any")
                .field("steps")
                .merge_keys()
                .unwrap(),
            ["id"]
        );
        assert_eq!(spec.field("deep").merge_keys().unwrap(), ["id"]);
        assert!(spec.field("tuple").is_none());
        // Alone, the custom schema knows no built-in kind.
        assert!(s.root("apps/v1", "Deployment").is_none());
        // Memoized by content and mode.
        let again = custom("other.json", CUSTOM.as_bytes(), Mode::Alone).unwrap();
        assert!(Arc::ptr_eq(&s, &again));
        let both = custom("s.json", CUSTOM.as_bytes(), Mode::AfterBuiltin).unwrap();
        assert!(!Arc::ptr_eq(&s, &both));
        assert!(!both.root("apps/v1", "Deployment").is_none());
        assert!(!both.root("x.io/v1", "Pipe").is_none());
    }

    #[test]
    fn yaml_documents_and_errors() {
        let y = "definitions:\n  T:\n    x-kubernetes-group-version-kind:\n    - {group: '', version: v1, kind: T}\n    properties:\n      l: {type: array, x-kubernetes-patch-strategy: merge}\n";
        let s = custom("s.yaml", y.as_bytes(), Mode::Alone).unwrap();
        assert_eq!(
            s.root("v1", "T").field("l").merge_keys().unwrap(),
            [] as [String; 0]
        );
        assert!(
            custom("s.json", b"{\"definitions\": {", Mode::Alone)
                .unwrap_err()
                .starts_with("invalid JSON")
        );
        assert!(custom("s.json", b"", Mode::Alone).is_err());
        let e = custom(
            "s.json",
            br#"{"definitions": {"T": {"properties": {"l": {"x-kubernetes-patch-strategy": 1}}}}}"#,
            Mode::Alone,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "definitions.T.properties.l: x-kubernetes-patch-strategy must be a string"
        );
        assert!(
            custom("s.yaml", b"# nothing\n", Mode::Alone)
                .unwrap()
                .roots
                .is_empty()
        );
    }
}

//! Patch strategies and merge keys of the built-in Kubernetes types, as
//! kustomize's strategic merge reads them from its compiled-in OpenAPI
//! document (Kubernetes 1.21.2, kyaml `kubernetesapi/v1_21_2`).
//!
//! `schema.txt` is extracted from that document by
//! `render/tests/kustomize/extract_schema.py`. It keeps only the definitions
//! from which a list with an `x-kubernetes-patch-strategy` can be reached:
//! lists anywhere else have no strategy and are replaced by a patch, which is
//! what kustomize does with them too. Lines:
//! `G <group|-> <version> <kind> <definition>` maps a GVK to its definition;
//! `D <definition>` starts a definition, followed by its fields as
//! `F <name|*> <v|l|m> <strategy|-> <key,key|-> <definition|->`
//! (value, list of, map of; `*` is `additionalProperties`).

use std::collections::HashMap;
use std::sync::OnceLock;

pub struct Field {
    pub shape: u8,
    pub strategy: String,
    pub keys: Vec<String>,
    pub def: Option<usize>,
}

pub struct Schemas {
    roots: HashMap<(String, String, String), usize>,
    defs: Vec<HashMap<String, Field>>,
}

/// The schema of one node being merged.
#[derive(Clone, Copy)]
pub enum Sch {
    None,
    /// An object of a definition.
    Object(usize),
    /// A list field: its strategy, keys, and element definition.
    List(&'static Field),
    /// A map whose values are objects of a definition.
    MapOf(usize),
}

pub fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| {
        let text = include_str!("schema.txt");
        let mut index: HashMap<&str, usize> = HashMap::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("D ") {
                let n = index.len();
                index.insert(name, n);
            }
        }
        let mut defs: Vec<HashMap<String, Field>> =
            (0..index.len()).map(|_| HashMap::new()).collect();
        let mut roots = HashMap::new();
        let mut cur = None;
        for line in text.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts[0] {
                "G" => {
                    let group = if parts[1] == "-" { "" } else { parts[1] };
                    if let Some(&d) = index.get(parts[4]) {
                        roots.insert(
                            (
                                group.to_string(),
                                parts[2].to_string(),
                                parts[3].to_string(),
                            ),
                            d,
                        );
                    }
                }
                "D" => cur = index.get(parts[1]).copied(),
                "F" => {
                    let Some(c) = cur else { continue };
                    let opt = |s: &str| {
                        if s == "-" {
                            String::new()
                        } else {
                            s.to_string()
                        }
                    };
                    defs[c].insert(
                        parts[1].to_string(),
                        Field {
                            shape: parts[2].as_bytes()[0],
                            strategy: opt(parts[3]),
                            keys: opt(parts[4])
                                .split(',')
                                .filter(|k| !k.is_empty())
                                .map(str::to_string)
                                .collect(),
                            def: index.get(parts[5]).copied(),
                        },
                    );
                }
                _ => {}
            }
        }
        Schemas { roots, defs }
    })
}

impl Schemas {
    /// The schema of a whole object of this apiVersion and kind.
    pub fn root(&self, api_version: &str, kind: &str) -> Sch {
        let (g, v) = super::resmap::group_version(api_version);
        match self
            .roots
            .get(&(g.to_string(), v.to_string(), kind.to_string()))
        {
            Some(&d) => Sch::Object(d),
            None => Sch::None,
        }
    }
}

impl Sch {
    /// The schema of field `name` of an object node.
    pub fn field(self, name: &str) -> Sch {
        let d = match self {
            Sch::Object(d) => d,
            Sch::MapOf(d) => return Sch::Object(d),
            _ => return Sch::None,
        };
        let s = schemas();
        let Some(f) = s.defs[d].get(name).or_else(|| s.defs[d].get("*")) else {
            return Sch::None;
        };
        match f.shape {
            _ if f.strategy.split(',').any(|x| x == "merge") => Sch::List(f),
            b'l' => Sch::List(f),
            b'm' => f.def.map_or(Sch::None, Sch::MapOf),
            _ => f.def.map_or(Sch::None, Sch::Object),
        }
    }

    /// The schema of the elements of a list node.
    pub fn elements(self) -> Sch {
        match self {
            Sch::List(f) => f.def.map_or(Sch::None, Sch::Object),
            _ => Sch::None,
        }
    }

    /// Whether a list merges element-wise (`x-kubernetes-patch-strategy: merge`),
    /// and by which keys.
    pub fn merge_keys(self) -> Option<&'static [String]> {
        match self {
            Sch::List(f) if f.strategy.split(',').any(|x| x == "merge") => Some(&f.keys),
            _ => None,
        }
    }

    pub fn is_none(self) -> bool {
        matches!(self, Sch::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_template_lists_merge_by_name() {
        let s = schemas();
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
    }
}

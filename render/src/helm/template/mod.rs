//! Go's `text/template`, as Helm 3 runs it, in Rust.
//!
//! [`Templates`] is a set of named templates, like Go's `*template.Template`
//! with its associated templates: [`Templates::parse`] adds a file (its body
//! under the file's name and every `define` and `block` in it, a later file
//! replacing an earlier definition as Go's `AddParseTree` does), and
//! [`Templates::execute`] runs one by name over a [`Value`].
//!
//! Output and errors are Go's byte for byte: the same trim markers, variable
//! scoping, truth, comparison rules, `fmt` printing (`map[a:1]`, `1e+06`,
//! `%!d(float64=1)`), and the same `template: NAME:LINE:COL: executing ...`
//! messages. `render/tests/gotemplate/` holds cases whose expected output
//! Go itself wrote.
//!
//! Code map: [`lex`] the lexer, [`parse`] the parser (trees, node printing
//! for error contexts), [`exec`] the executor, [`funcs`] the builtins
//! (`and`, `index`, `eq`, `printf`...), [`fmt`] Go's `fmt` verbs, [`value`]
//! the values (YAML's kinds, Go's `int`, and [`Object`]s: struct pointers
//! with fields and methods, as Helm's `.Capabilities` is). Functions beyond Go's builtins (Sprig's, Helm's `include`)
//! are registered with [`Templates::add_func`] and declare their Go
//! parameter types ([`Param`]) so arguments convert and fail as in Go.

mod exec;
mod fmt;
mod funcs;
mod lex;
mod parse;
#[cfg(test)]
mod tests;
mod value;

use std::collections::HashMap;
use std::rc::Rc;

pub use fmt::{quote, sprint, sprintf, sprintln, value_string};
pub use funcs::{html_escape, js_escape, query_escape};
pub use value::{Map, Object, Value, go_string_bytes, go_string_from_bytes};

use parse::Tree;

/// Runs `f` with room on the stack: the parser and executor recurse as
/// deep as templates nest, so they grow the stack rather than overflow it
/// (on a tokio worker's 2 MiB stack too). The depth limits
/// (`parse::MAX_STACK_DEPTH`, `exec::MAX_EXEC_DEPTH`) bound the growth.
fn grow_stack<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(128 * 1024, 1024 * 1024, f)
}

/// A template failure, formatted exactly as Go's `text/template` error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// `template: NAME:LINE: MESSAGE`.
    #[error("template: {name}:{line}: {message}")]
    Parse {
        name: String,
        line: usize,
        message: String,
    },
    /// `template: FILE:LINE:COL: executing "NAME" at <NODE>: MESSAGE`, or
    /// `template: NAME: MESSAGE` when no node was being evaluated.
    #[error("template: {location}: {}{message}", exec_context(.template, .context))]
    Exec {
        location: String,
        template: Option<String>,
        context: String,
        message: String,
    },
    /// `template: no template "NAME" associated with template "SET"`.
    #[error("template: no template {} associated with template {}", quote(.name), quote(.set))]
    NoTemplate { name: String, set: String },
}

fn exec_context(template: &Option<String>, context: &str) -> String {
    match template {
        Some(t) => format!("executing {} at <{context}>: ", quote(t)),
        None => String::new(),
    }
}

/// Go's `missingkey` option: what a missing map key gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `missingkey=default`: no value (`<no value>` when printed).
    #[default]
    Default,
    /// `missingkey=zero`: the map's zero value, a nil `interface{}` (Helm's
    /// setting unless strict).
    Zero,
    /// `missingkey=error`: execution fails.
    Error,
}

/// The Go type of a function parameter, which decides how an argument is
/// converted and what error a wrong one gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `interface{}`.
    Any,
    /// `reflect.Value` (Go's builtins): like `Any`, but a missing value stays
    /// missing instead of becoming nil.
    Reflect,
    String,
    Int,
    Float,
    Bool,
    /// `map[string]interface{}`: a map, or nil (a nil map).
    Map,
}

impl Param {
    fn go_type(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Reflect => "reflect.Value",
            Param::String => "string",
            Param::Int => "int",
            Param::Float => "float64",
            Param::Bool => "bool",
            Param::Map => "map[string]interface {}",
        }
    }
}

/// What a registered function is called with: the template set, so that
/// functions like Helm's `include` can execute other templates.
pub struct Call<'a> {
    set: &'a Templates,
    budget: &'a std::cell::Cell<u64>,
    depth: usize,
}

impl Call<'_> {
    /// Executes the template `name` with `data` (Go's `ExecuteTemplate`).
    pub fn execute_template(&self, name: &str, data: &Value) -> Result<String, Error> {
        self.set
            .execute_at_depth(name, data, self.depth + 1, self.budget)
    }

    /// Executes `name` of another set (Helm's `tpl` runs a clone of the
    /// set with the new text in it) within this execution's budget.
    pub fn execute_in(&self, set: &Templates, name: &str, data: &Value) -> Result<String, Error> {
        set.execute_at_depth(name, data, self.depth + 1, self.budget)
    }

    pub fn templates(&self) -> &Templates {
        self.set
    }
}

/// The body of a registered function; `Err` is the Go error's text.
pub type FuncBody = dyn Fn(&Call<'_>, &[Value]) -> Result<Value, String>;

/// A function templates can call, with its Go signature.
#[derive(Clone)]
pub struct Func {
    pub params: Vec<Param>,
    pub variadic: Option<Param>,
    pub f: Rc<FuncBody>,
}

impl Func {
    pub fn new(
        params: Vec<Param>,
        variadic: Option<Param>,
        f: impl Fn(&Call<'_>, &[Value]) -> Result<Value, String> + 'static,
    ) -> Func {
        Func {
            params,
            variadic,
            f: Rc::new(f),
        }
    }
}

/// A parsed file: its body and the templates it defines.
#[derive(Clone)]
pub struct Parsed(Vec<Rc<Tree>>);

/// A set of named templates sharing functions and options.
#[derive(Clone)]
pub struct Templates {
    name: String,
    /// Shared until changed: Helm's `tpl` clones the set for every call.
    trees: Rc<HashMap<String, Rc<Tree>>>,
    funcs: Rc<HashMap<String, Func>>,
    missing_key: MissingKey,
    max_steps: u64,
}

/// How many steps (nodes walked, range iterations) one execution may take
/// by default, with every template it calls. Go has no limit; a chart
/// reaching this one is stuck in a loop (`range 1000000000000`).
pub const DEFAULT_MAX_STEPS: u64 = 100_000_000;

impl Templates {
    /// An empty set named `name` (the name Go's errors give the set).
    pub fn new(name: &str) -> Templates {
        Templates {
            name: name.to_string(),
            trees: Rc::default(),
            funcs: Rc::default(),
            missing_key: MissingKey::Default,
            max_steps: DEFAULT_MAX_STEPS,
        }
    }

    /// The set's name (Go's `t.Name()` of the root template).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn set_missing_key(&mut self, m: MissingKey) {
        self.missing_key = m;
    }

    /// Sets the step budget of one execution ([`DEFAULT_MAX_STEPS`]).
    pub fn set_max_steps(&mut self, steps: u64) {
        self.max_steps = steps;
    }

    /// Registers `f` as `name`; it overrides a builtin of that name, as in
    /// Go. Templates parsed before may not call it.
    pub fn add_func(&mut self, name: &str, f: Func) {
        Rc::make_mut(&mut self.funcs).insert(name.to_string(), f);
    }

    fn has_func(&self, name: &str) -> bool {
        self.funcs.contains_key(name) || funcs::Builtin::by_name(name).is_some()
    }

    /// Parses the file `name` into the set (Go's `t.New(name).Parse(text)`).
    pub fn parse(&mut self, name: &str, text: &str) -> Result<(), Error> {
        let parsed = self.parse_only(name, text)?;
        self.add_parsed(&parsed);
        Ok(())
    }

    /// Parses the file `name` without adding it: the result can be kept
    /// and added to sets with the same functions ([`Templates::add_parsed`]).
    pub fn parse_only(&self, name: &str, text: &str) -> Result<Parsed, Error> {
        let trees = parse::parse(name, text, &|f| self.has_func(f))?;
        Ok(Parsed(trees.into_iter().map(Rc::new).collect()))
    }

    /// Adds a parsed file, as [`Templates::parse`] would.
    pub fn add_parsed(&mut self, parsed: &Parsed) {
        for tree in &parsed.0 {
            // Go's associate: an empty definition does not replace one.
            if parse::is_empty_tree(&tree.root) && self.trees.contains_key(&tree.name) {
                continue;
            }
            Rc::make_mut(&mut self.trees).insert(tree.name.clone(), tree.clone());
        }
    }

    /// Whether a template of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    fn tree(&self, name: &str) -> Option<&Tree> {
        self.trees.get(name).map(|t| &**t)
    }

    /// Executes the template `name` with `data` as dot and `$`.
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, Error> {
        let budget = std::cell::Cell::new(self.max_steps);
        self.execute_at_depth(name, data, 0, &budget)
    }

    fn execute_at_depth(
        &self,
        name: &str,
        data: &Value,
        depth: usize,
        budget: &std::cell::Cell<u64>,
    ) -> Result<String, Error> {
        let Some(tree) = self.tree(name) else {
            return Err(Error::NoTemplate {
                name: name.to_string(),
                set: self.name.clone(),
            });
        };
        if depth >= exec::MAX_EXEC_DEPTH {
            return Err(Error::Exec {
                location: name.to_string(),
                template: None,
                context: String::new(),
                message: format!("exceeded maximum template depth ({})", exec::MAX_EXEC_DEPTH),
            });
        }
        let dot = match data {
            Value::Nil => exec::Rv::Invalid,
            v => exec::Rv::concrete(v.clone()),
        };
        let mut out = String::new();
        exec::execute(self, name, tree, dot, depth, budget, &mut out)?;
        Ok(out)
    }
}

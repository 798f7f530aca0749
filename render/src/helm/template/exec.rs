//! The executor of Go's `text/template` (`text/template/exec.go`): walks a
//! tree with a dot and variables, printing as Go prints, failing as Go fails.

use std::cell::Cell;
use std::fmt::Write as _;

use super::fmt::{quote, value_string};
use super::funcs::{self, Builtin};
use super::parse::{Arg, Branch, Command, Node, Pipe, TemplateCall, Tree};
use super::value::Value;
use super::{Call, Error, Func, MissingKey, Param, Templates};

/// Go's `reflect.Value` as the executor sees it: invalid (no value), or a
/// value that is either concrete or held in an `interface{}` (map and list
/// elements are; pipeline results are not). The difference shows in Go's
/// error messages and in how nil behaves.
#[derive(Clone, Debug)]
pub(super) enum Rv {
    Invalid,
    Val(Value, bool),
}

impl Rv {
    pub fn concrete(v: Value) -> Rv {
        Rv::Val(v, false)
    }

    /// Go's `indirectInterface`: the value inside an interface; nil is invalid.
    pub fn indirect(&self) -> Rv {
        match self {
            Rv::Val(Value::Nil, true) => Rv::Invalid,
            Rv::Val(v, _) => Rv::Val(v.clone(), false),
            Rv::Invalid => Rv::Invalid,
        }
    }

    /// What a Go function taking `interface{}` receives.
    /// An object that is a Go slice or map type (Helm's `VersionSet`,
    /// `.Files`) as the list or map it is, for `range`, `len` and `index`.
    pub fn collection(self) -> Rv {
        match &self {
            Rv::Val(Value::Object(o), iface) => match o.as_list().or_else(|| o.as_map()) {
                Some(v) => Rv::Val(v, *iface),
                None => self,
            },
            _ => self,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Rv::Invalid => Value::Nil,
            Rv::Val(v, _) => v.clone(),
        }
    }

    /// Go's `reflect.Value.Type().String()`.
    pub fn type_name(&self) -> &str {
        match self {
            Rv::Invalid => "<invalid>",
            Rv::Val(_, true) => "interface {}",
            Rv::Val(v, false) => v.type_name(),
        }
    }
}

/// Go's template truth of a value (after `indirectInterface`).
pub(super) fn truth(v: &Rv) -> bool {
    match v.indirect() {
        Rv::Invalid => false,
        Rv::Val(v, _) => v.is_true(),
    }
}

/// Where execution is, for error messages (Go's `state.node`).
#[derive(Clone, Copy)]
enum At<'a> {
    Arg(&'a Arg),
    Cmd(&'a Command),
    Pipe(&'a Pipe),
    Template(&'a TemplateCall),
    Branch(&'a Branch),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Arg(a) => a.pos(),
            At::Cmd(c) => c.pos,
            At::Pipe(p) => p.pos,
            At::Template(t) => t.pos,
            At::Branch(b) => b.pos,
        }
    }

    fn context(&self) -> String {
        match self {
            At::Arg(a) => a.to_string(),
            At::Cmd(c) => c.to_string(),
            At::Pipe(p) => p.to_string(),
            At::Template(t) => t.to_string(),
            At::Branch(b) => format!("{{{{range {}}}}}", b.pipe),
        }
    }
}

pub(super) enum Flow {
    Break,
    Continue,
    Err(Error),
}

impl From<Error> for Flow {
    fn from(e: Error) -> Flow {
        Flow::Err(e)
    }
}

type R<T> = Result<T, Flow>;

/// The most output one execution may write (Go has no limit).
pub(super) const MAX_OUTPUT: usize = 64 << 20;

/// Go's `maxExecDepth` on WebAssembly (100000 elsewhere): fleet stops
/// earlier, so that runaway recursion fails with an error instead of
/// exhausting the stack.
pub(super) const MAX_EXEC_DEPTH: usize = 1000;

pub(super) struct State<'a> {
    set: &'a Templates,
    /// Steps left, shared by every template this execution calls.
    budget: &'a Cell<u64>,
    tmpl: &'a str,
    tree: &'a Tree,
    vars: Vec<(String, Rv)>,
    depth: usize,
    at: Option<At<'a>>,
}

/// Executes `tree` (the template `name`) with `dot`, appending to `out`.
pub(super) fn execute(
    set: &Templates,
    name: &str,
    tree: &Tree,
    dot: Rv,
    depth: usize,
    budget: &Cell<u64>,
    out: &mut String,
) -> Result<(), Error> {
    let mut s = State {
        set,
        budget,
        tmpl: name,
        tree,
        vars: vec![("$".to_string(), dot.clone())],
        depth,
        at: None,
    };
    match s.walk(&dot, &tree.root, out) {
        Ok(()) => Ok(()),
        Err(Flow::Err(e)) => Err(e),
        // The parser refuses break and continue outside range.
        Err(Flow::Break | Flow::Continue) => Ok(()),
    }
}

impl<'a> State<'a> {
    fn at(&mut self, at: At<'a>) {
        self.at = Some(at);
    }

    fn err(&self, message: impl Into<String>) -> Flow {
        let message = message.into();
        Flow::Err(match self.at {
            None => Error::Exec {
                location: self.tmpl.to_string(),
                template: None,
                context: String::new(),
                message,
            },
            Some(at) => {
                let pos = at.pos().min(self.tree.text.len());
                let text = &self.tree.text[..pos];
                let col = match text.rfind('\n') {
                    None => pos,
                    Some(i) => pos - (i + 1),
                };
                let line = 1 + text.bytes().filter(|b| *b == b'\n').count();
                Error::Exec {
                    location: format!("{}:{line}:{col}", self.tree.parse_name),
                    template: Some(self.tmpl.to_string()),
                    context: at.context(),
                    message,
                }
            }
        })
    }

    fn mark(&self) -> usize {
        self.vars.len()
    }

    fn pop(&mut self, mark: usize) {
        self.vars.truncate(mark);
    }

    fn set_var(&mut self, name: &str, v: Rv) -> R<()> {
        for (n, val) in self.vars.iter_mut().rev() {
            if n == name {
                *val = v;
                return Ok(());
            }
        }
        Err(self.err(format!("undefined variable: {name}")))
    }

    fn set_top_var(&mut self, n: usize, v: Rv) {
        let len = self.vars.len();
        self.vars[len - n].1 = v;
    }

    fn var_value(&self, name: &str) -> R<Rv> {
        for (n, val) in self.vars.iter().rev() {
            if n == name {
                return Ok(val.clone());
            }
        }
        Err(self.err(format!("undefined variable: {name}")))
    }

    fn walk(&mut self, dot: &Rv, list: &'a [Node], out: &mut String) -> R<()> {
        super::grow_stack(|| self.walk_list(dot, list, out))
    }

    /// Counts one step against the budget, and checks the output's size.
    fn step(&self, out: &str) -> R<()> {
        let left = self.budget.get();
        if left == 0 {
            return Err(self.err(format!("execution exceeded {} steps", self.set.max_steps)));
        }
        self.budget.set(left - 1);
        if out.len() > MAX_OUTPUT {
            return Err(self.err(format!("output exceeded {MAX_OUTPUT} bytes")));
        }
        Ok(())
    }

    fn walk_list(&mut self, dot: &Rv, list: &'a [Node], out: &mut String) -> R<()> {
        for node in list {
            self.step(out)?;
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let val = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        print_value(&val, out);
                    }
                }
                Node::If(b) => self.walk_if_or_with(false, dot, b, out)?,
                Node::With(b) => self.walk_if_or_with(true, dot, b, out)?,
                Node::Range(b) => self.walk_range(dot, b, out)?,
                Node::Template(t) => self.walk_template(dot, t, out)?,
                Node::Break => return Err(Flow::Break),
                Node::Continue => return Err(Flow::Continue),
            }
        }
        Ok(())
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Rv, b: &'a Branch, out: &mut String) -> R<()> {
        let mark = self.mark();
        let r = (|| {
            let val = self.eval_pipeline(dot, &b.pipe)?;
            if truth(&val) {
                if with {
                    self.walk(&val, &b.list, out)
                } else {
                    self.walk(dot, &b.list, out)
                }
            } else if let Some(e) = &b.else_list {
                self.walk(dot, e, out)
            } else {
                Ok(())
            }
        })();
        self.pop(mark);
        r
    }

    fn walk_range(&mut self, dot: &Rv, r: &'a Branch, out: &mut String) -> R<()> {
        self.at(At::Branch(r));
        let outer = self.mark();
        let res = self.walk_range_inner(dot, r, out);
        self.pop(outer);
        match res {
            Err(Flow::Break) => Ok(()),
            other => other,
        }
    }

    fn one_iteration(&mut self, r: &'a Branch, index: Rv, elem: Rv, out: &mut String) -> R<()> {
        let decl = &r.pipe.decl;
        if !decl.is_empty() {
            if r.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0], index.clone())?;
                } else {
                    self.set_var(&decl[0], elem.clone())?;
                }
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if r.pipe.is_assign {
                self.set_var(&decl[1], elem.clone())?;
            } else {
                self.set_top_var(2, index);
            }
        }
        self.step(out)?;
        let mark = self.mark();
        let res = self.walk(&elem, &r.list, out);
        self.pop(mark);
        match res {
            Err(Flow::Continue) => Ok(()),
            other => other,
        }
    }

    fn walk_range_inner(&mut self, dot: &Rv, r: &'a Branch, out: &mut String) -> R<()> {
        let val = self.eval_pipeline(dot, &r.pipe)?.indirect().collection();
        match &val {
            Rv::Val(Value::List(l), _) => {
                if !l.is_empty() {
                    for (i, e) in l.iter().enumerate() {
                        self.one_iteration(
                            r,
                            Rv::concrete(Value::Int(i as i64)),
                            Rv::Val(e.clone(), true),
                            out,
                        )?;
                    }
                    return Ok(());
                }
            }
            Rv::Val(Value::Map(m), _) => {
                // Go ranges over the keys sorted when the range starts.
                let entries: Vec<(String, Value)> = m
                    .borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !entries.is_empty() {
                    for (k, e) in entries {
                        self.one_iteration(
                            r,
                            Rv::concrete(Value::string(k.as_str())),
                            Rv::Val(e.clone(), true),
                            out,
                        )?;
                    }
                    return Ok(());
                }
            }
            Rv::Val(Value::Int(n), _) => {
                if r.pipe.decl.len() > 1 {
                    return Err(self.err(format!(
                        "can't use {} to iterate over more than one variable",
                        value_string(&Value::Int(*n))
                    )));
                }
                if *n > 0 {
                    for i in 0..*n {
                        self.one_iteration(r, Rv::Invalid, Rv::concrete(Value::Int(i)), out)?;
                    }
                    return Ok(());
                }
            }
            Rv::Invalid => {}
            Rv::Val(v, _) => {
                return Err(self.err(format!("range can't iterate over {}", value_string(v))));
            }
        }
        if let Some(e) = &r.else_list {
            self.walk(dot, e, out)?;
        }
        Ok(())
    }

    fn walk_template(&mut self, dot: &Rv, t: &'a TemplateCall, out: &mut String) -> R<()> {
        self.at(At::Template(t));
        let Some(tree) = self.set.tree(&t.name) else {
            return Err(self.err(format!("template {} not defined", quote(&t.name))));
        };
        if self.depth >= MAX_EXEC_DEPTH {
            return Err(self.err(format!(
                "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
            )));
        }
        let dot = match &t.pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Rv::Invalid,
        };
        let mut s = State {
            set: self.set,
            budget: self.budget,
            tmpl: &tree.name,
            tree,
            vars: vec![("$".to_string(), dot.clone())],
            depth: self.depth + 1,
            at: None,
        };
        match s.walk(&dot, &tree.root, out) {
            Err(Flow::Err(e)) => Err(Flow::Err(e)),
            _ => Ok(()),
        }
    }

    fn eval_pipeline(&mut self, dot: &Rv, pipe: &'a Pipe) -> R<Rv> {
        super::grow_stack(|| self.eval_pipeline_here(dot, pipe))
    }

    fn eval_pipeline_here(&mut self, dot: &Rv, pipe: &'a Pipe) -> R<Rv> {
        self.at(At::Pipe(pipe));
        let mut value: Option<Rv> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // An interface{} result is unwrapped (nil becomes no value).
            value = Some(match v {
                Rv::Val(Value::Nil, true) => Rv::Invalid,
                Rv::Val(v, true) => Rv::Val(v, false),
                v => v,
            });
        }
        let value = value.unwrap_or(Rv::Invalid);
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(var, value.clone())?;
            } else {
                self.vars.push((var.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Rv>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.err(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Rv, cmd: &'a Command, fin: Option<Rv>) -> R<Rv> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { idents, .. } => {
                return self.eval_field_node(dot, first, idents, &cmd.args, fin);
            }
            Arg::Chain { .. } => return self.eval_chain_node(dot, first, &cmd.args, fin),
            Arg::Ident { name, .. } => {
                return self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args, fin);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Var { .. } => return self.eval_variable_node(dot, first, &cmd.args, fin),
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Arg::Bool { val, .. } => Ok(Rv::concrete(Value::Bool(*val))),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => Err(self.err("nil is not a command")),
            Arg::Number(_) => self.ideal_constant(first),
            Arg::Str { text, .. } => Ok(Rv::concrete(Value::string(text.as_str()))),
            _ => Err(self.err(format!(
                "can't evaluate command {}",
                quote(&first.to_string())
            ))),
        }
    }

    fn ideal_constant(&mut self, n: &'a Arg) -> R<Rv> {
        self.at(At::Arg(n));
        let Arg::Number(num) = n else {
            return Ok(Rv::Invalid);
        };
        if let (true, Some(f)) = (num.float_const, num.float) {
            return Ok(Rv::concrete(Value::Float(f)));
        }
        match num.int {
            Some(i) => Ok(Rv::concrete(Value::Int(i))),
            None => Err(self.err(format!("{} overflows int", num.text))),
        }
    }

    fn eval_field_node(
        &mut self,
        dot: &Rv,
        node: &'a Arg,
        idents: &'a [String],
        args: &'a [Arg],
        fin: Option<Rv>,
    ) -> R<Rv> {
        self.at(At::Arg(node));
        self.eval_field_chain(dot, node, dot.clone(), idents, args, fin)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Rv,
        node: &'a Arg,
        args: &'a [Arg],
        fin: Option<Rv>,
    ) -> R<Rv> {
        self.at(At::Arg(node));
        let Arg::Chain {
            node: inner,
            fields,
            ..
        } = node
        else {
            return Ok(Rv::Invalid);
        };
        if let Arg::Nil { .. } = **inner {
            return Err(self.err(format!("indirection through explicit nil in {node}")));
        }
        let pipe = self.eval_arg(dot, None, inner)?;
        self.eval_field_chain(dot, node, pipe, fields, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Rv,
        node: &'a Arg,
        args: &'a [Arg],
        fin: Option<Rv>,
    ) -> R<Rv> {
        self.at(At::Arg(node));
        let Arg::Var { idents, .. } = node else {
            return Ok(Rv::Invalid);
        };
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            if !args.is_empty() {
                self.not_a_function(args, &fin)?;
            }
            return Ok(value);
        }
        self.eval_field_chain(dot, node, value, &idents[1..], args, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Rv,
        node: &'a Arg,
        mut receiver: Rv,
        idents: &'a [String],
        args: &'a [Arg],
        fin: Option<Rv>,
    ) -> R<Rv> {
        let n = idents.len();
        for ident in &idents[..n - 1] {
            receiver = self.eval_field(dot, node, ident, &[], None, receiver)?;
        }
        self.eval_field(dot, node, &idents[n - 1], args, fin, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Rv,
        node: &'a Arg,
        name: &'a str,
        args: &'a [Arg],
        fin: Option<Rv>,
        receiver: Rv,
    ) -> R<Rv> {
        let (v, iface) = match receiver {
            Rv::Invalid => {
                if self.set.missing_key == MissingKey::Error {
                    return Err(self.err(format!("nil data; no entry for key {}", quote(name))));
                }
                return Ok(Rv::Invalid);
            }
            Rv::Val(v, iface) => (v, iface),
        };
        let typ = if iface {
            "interface {}".to_string()
        } else {
            v.type_name().to_string()
        };
        if iface && v == Value::Nil {
            return Err(self.err(format!("nil pointer evaluating {typ}.{name}")));
        }
        let has_args = args.len() > 1 || fin.is_some();
        if let Value::Object(o) = &v {
            if let Some(method) = o.method(name) {
                return self.eval_call(dot, Callee::Func(&method), At::Arg(node), name, args, fin);
            }
            if let Some(field) = o.field(name) {
                if has_args {
                    return Err(self.err(format!(
                        "{name} has arguments but cannot be invoked as function"
                    )));
                }
                return Ok(match field {
                    Value::Nil => Rv::Val(Value::Nil, true),
                    f => Rv::concrete(f),
                });
            }
        }
        if let Value::Map(m) = &v {
            if has_args {
                return Err(self.err(format!("{name} is not a method but has arguments")));
            }
            let found = m.borrow().get(name).cloned();
            return match found {
                Some(x) => Ok(Rv::Val(x, true)),
                None => match self.set.missing_key {
                    MissingKey::Default => Ok(Rv::Invalid),
                    MissingKey::Zero => Ok(Rv::Val(Value::Nil, true)),
                    MissingKey::Error => {
                        Err(self.err(format!("map has no entry for key {}", quote(name))))
                    }
                },
            };
        }
        Err(self.err(format!("can't evaluate field {name} in type {typ}")))
    }

    fn eval_function(
        &mut self,
        dot: &Rv,
        node: &'a Arg,
        name: &'a str,
        ctx: At<'a>,
        args: &'a [Arg],
        fin: Option<Rv>,
    ) -> R<Rv> {
        self.at(At::Arg(node));
        if let Some(f) = self.set.funcs.get(name) {
            let f = f.clone();
            return self.eval_call(dot, Callee::Func(&f), ctx, name, args, fin);
        }
        match Builtin::by_name(name) {
            Some(b) => self.eval_call(dot, Callee::Builtin(b), ctx, name, args, fin),
            None => Err(self.err(format!("{} is not a defined function", quote(name)))),
        }
    }

    fn eval_call(
        &mut self,
        dot: &Rv,
        callee: Callee<'_>,
        ctx: At<'a>,
        name: &str,
        args: &'a [Arg],
        fin: Option<Rv>,
    ) -> R<Rv> {
        let args = if args.is_empty() { args } else { &args[1..] };
        let (fixed, variadic): (Vec<Param>, Option<Param>) = match &callee {
            Callee::Builtin(b) => b.signature(),
            Callee::Func(f) => (f.params.clone(), f.variadic),
        };
        let num_params = fixed.len() + usize::from(variadic.is_some());
        let num_in = args.len() + usize::from(fin.is_some());
        if variadic.is_some() {
            if num_in < fixed.len() {
                return Err(self.err(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    fixed.len(),
                    args.len()
                )));
            }
        } else if num_in != num_params {
            return Err(self.err(format!(
                "wrong number of args for {name}: want {num_params} got {num_in}"
            )));
        }
        // and/or evaluate their arguments only as far as needed.
        if let Callee::Builtin(b @ (Builtin::And | Builtin::Or)) = callee {
            let or = b == Builtin::Or;
            let mut v = Rv::Invalid;
            for arg in args {
                v = self.eval_arg(dot, Some(Param::Reflect), arg)?;
                if truth(&v) == or {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = self.validate_type(f, Some(Param::Reflect))?;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        for (i, arg) in args.iter().enumerate() {
            let t = fixed.get(i).copied().or(variadic);
            argv.push(self.eval_arg(dot, t, arg)?);
        }
        if let Some(f) = fin {
            let t = if variadic.is_some() && num_in > fixed.len() {
                variadic
            } else {
                fixed.last().copied()
            };
            argv.push(self.validate_type(f, t)?);
        }
        let result = match callee {
            Callee::Builtin(Builtin::Call) => {
                let callee_name = args.first().map(|a| a.to_string()).unwrap_or_default();
                funcs::call(&callee_name, &argv)
            }
            Callee::Builtin(b) => funcs::builtin(b, &argv),
            Callee::Func(f) => {
                let values: Vec<Value> = argv.iter().map(Rv::to_value).collect();
                let call = Call {
                    set: self.set,
                    budget: self.budget,
                    depth: self.depth,
                };
                (f.f)(&call, &values).map(|v| match v {
                    Value::Nil => Rv::Val(Value::Nil, true),
                    v => Rv::concrete(v),
                })
            }
        };
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.at(ctx);
                Err(self.err(format!("error calling {name}: {e}")))
            }
        }
    }

    fn eval_arg(&mut self, dot: &Rv, typ: Option<Param>, n: &'a Arg) -> R<Rv> {
        self.at(At::Arg(n));
        match n {
            Arg::Dot { .. } => return self.validate_type(dot.clone(), typ),
            Arg::Nil { .. } => {
                return match typ {
                    Some(Param::Reflect) | None => Ok(Rv::Invalid),
                    Some(Param::Any) => Ok(Rv::Val(Value::Nil, true)),
                    Some(Param::Map) => Ok(Rv::concrete(Value::Nil)),
                    Some(t) => Err(self.err(format!("cannot assign nil to {}", t.go_type()))),
                };
            }
            Arg::Field { idents, .. } => {
                let v = self.eval_field_node(dot, n, idents, std::slice::from_ref(n), None)?;
                return self.validate_type(v, typ);
            }
            Arg::Var { .. } => {
                let v = self.eval_variable_node(dot, n, &[], None)?;
                return self.validate_type(v, typ);
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, p)?;
                return self.validate_type(v, typ);
            }
            Arg::Ident { name, .. } => {
                let v = self.eval_function(dot, n, name, At::Arg(n), &[], None)?;
                return self.validate_type(v, typ);
            }
            Arg::Chain { .. } => {
                let v = self.eval_chain_node(dot, n, &[], None)?;
                return self.validate_type(v, typ);
            }
            _ => {}
        }
        match typ {
            Some(Param::Bool) => match n {
                Arg::Bool { val, .. } => Ok(Rv::concrete(Value::Bool(*val))),
                _ => Err(self.err(format!("expected bool; found {n}"))),
            },
            Some(Param::String) => match n {
                Arg::Str { text, .. } => Ok(Rv::concrete(Value::string(text.as_str()))),
                _ => Err(self.err(format!("expected string; found {n}"))),
            },
            Some(Param::Int) => match n {
                Arg::Number(num) if num.int.is_some() => {
                    Ok(Rv::concrete(Value::Int(num.int.unwrap_or(0))))
                }
                _ => Err(self.err(format!("expected integer; found {n}"))),
            },
            Some(Param::Float) => match n {
                Arg::Number(num) if num.float.is_some() => {
                    Ok(Rv::concrete(Value::Float(num.float.unwrap_or(0.0))))
                }
                _ => Err(self.err(format!("expected float; found {n}"))),
            },
            Some(Param::Map) => Err(self.err(format!(
                "can't handle {n} for arg of type map[string]interface {{}}"
            ))),
            Some(Param::Any | Param::Reflect) | None => match n {
                Arg::Bool { val, .. } => Ok(Rv::concrete(Value::Bool(*val))),
                Arg::Number(_) => self.ideal_constant(n),
                Arg::Str { text, .. } => Ok(Rv::concrete(Value::string(text.as_str()))),
                _ => Err(self.err(format!(
                    "can't handle assignment of {n} to empty interface argument"
                ))),
            },
        }
    }

    fn validate_type(&self, value: Rv, typ: Option<Param>) -> R<Rv> {
        let Some(typ) = typ else {
            return Ok(value);
        };
        let (v, iface) = match value {
            Rv::Invalid => {
                return match typ {
                    Param::Reflect => Ok(Rv::Invalid),
                    Param::Any => Ok(Rv::Val(Value::Nil, true)),
                    Param::Map => Ok(Rv::concrete(Value::Nil)),
                    t => Err(self.err(format!("invalid value; expected {}", t.go_type()))),
                };
            }
            Rv::Val(v, iface) => (v, iface),
        };
        let fits = |v: &Value| match typ {
            Param::Any | Param::Reflect => true,
            Param::Bool => matches!(v, Value::Bool(_)),
            Param::String => matches!(v, Value::String(_)),
            Param::Int => matches!(v, Value::Int(_)),
            Param::Float => matches!(v, Value::Float(_)),
            Param::Map => matches!(v, Value::Map(_)),
        };
        // A nil interface holding nothing becomes a nil map, as Go's
        // reflect.Zero does for types that can be nil.
        if typ == Param::Map && v == Value::Nil {
            return Ok(Rv::concrete(Value::Nil));
        }
        if matches!(typ, Param::Any | Param::Reflect) || (!iface && fits(&v)) {
            return Ok(Rv::Val(v, iface));
        }
        if iface && v != Value::Nil {
            if fits(&v) {
                return Ok(Rv::concrete(v));
            }
            return Err(self.err(format!(
                "wrong type for value; expected {}; got {}",
                typ.go_type(),
                v.type_name()
            )));
        }
        let got = if iface { "interface {}" } else { v.type_name() };
        Err(self.err(format!(
            "wrong type for value; expected {}; got {got}",
            typ.go_type()
        )))
    }
}

enum Callee<'f> {
    Builtin(Builtin),
    Func(&'f Func),
}

/// Go's `printValue`: what an action writes for its value.
fn print_value(v: &Rv, out: &mut String) {
    match v {
        Rv::Invalid | Rv::Val(Value::Nil, _) => out.push_str("<no value>"),
        // Go prints what a pointer points to.
        Rv::Val(Value::Object(o), _) => out.push_str(&o.action_print()),
        Rv::Val(v, _) => {
            let _ = write!(out, "{}", value_string(v));
        }
    }
}

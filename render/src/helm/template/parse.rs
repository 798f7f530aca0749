//! The parser of Go's `text/template` (`text/template/parse/parse.go`):
//! templates to trees, with Go's error messages and line numbers.

use std::fmt::{self, Display, Write as _};
use std::rc::Rc;

use super::Error;
use super::lex::{Item, T, lex};

/// One named template: a file's body, or a `define`/`block`.
#[derive(Debug)]
pub(super) struct Tree {
    pub name: String,
    /// The name of the file the tree was parsed from.
    pub parse_name: Rc<str>,
    /// The whole text of that file, for error positions.
    pub text: Rc<str>,
    pub root: Vec<Node>,
}

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template(TemplateCall),
    Break,
    Continue,
}

#[derive(Debug)]
pub(super) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(super) struct TemplateCall {
    pub pos: usize,
    pub name: String,
    pub pipe: Option<Pipe>,
}

#[derive(Debug)]
pub(super) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug)]
pub(super) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(super) struct Number {
    pub pos: usize,
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Go's `idealConstant` makes this a float64 (it has `.`, `e` or `p`).
    pub float_const: bool,
}

#[derive(Debug)]
pub(super) enum Arg {
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    Ident {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Var {
        pos: usize,
        idents: Vec<String>,
    },
    Bool {
        pos: usize,
        val: bool,
    },
    Number(Number),
    Str {
        pos: usize,
        quoted: String,
        text: String,
    },
    Pipe(Box<Pipe>),
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Ident { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Var { pos, .. }
            | Arg::Bool { pos, .. }
            | Arg::Str { pos, .. } => *pos,
            Arg::Number(n) => n.pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

// Node printing, as Go's `Node.String` (used in error contexts).

impl Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(p) = &**node {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Ident { name, .. } => f.write_str(name),
            Arg::Dot { .. } => f.write_str("."),
            Arg::Nil { .. } => f.write_str("nil"),
            Arg::Var { idents, .. } => f.write_str(&idents.join(".")),
            Arg::Bool { val, .. } => write!(f, "{val}"),
            Arg::Number(n) => f.write_str(&n.text),
            Arg::Str { quoted, .. } => f.write_str(quoted),
            Arg::Pipe(p) => write!(f, "{p}"),
        }
    }
}

impl Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            if let Arg::Pipe(p) = a {
                write!(f, "({p})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

impl Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl Display for TemplateCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{template {}", super::fmt::quote(&self.name))?;
        if let Some(p) = &self.pipe {
            write!(f, " {p}")?;
        }
        f.write_str("}}")
    }
}

/// How deep parenthesized pipelines may nest: Go's `maxStackDepth` on
/// WebAssembly (10000 elsewhere), so that parsing fails instead of
/// overflowing the stack. Go does not limit nested `if`/`with`/`range`
/// blocks; fleet limits them to the same depth for the same reason.
pub(super) const MAX_STACK_DEPTH: usize = 1000;

/// What a list ended on.
enum End {
    End,
    Else,
}

struct Parser<'a> {
    items: Vec<Item>,
    i: usize,
    max_read: usize,
    name: Rc<str>,
    text: Rc<str>,
    funcs: &'a dyn Fn(&str) -> bool,
    vars: Vec<String>,
    range_depth: usize,
    /// Parenthesized pipelines and control blocks open now.
    paren_depth: usize,
    block_depth: usize,
    action_line: usize,
    trees: Vec<Tree>,
}

type PResult<T> = Result<T, Error>;

/// Parses `text` as the file `name`: its body (named `name`) and every
/// template it defines, in Go's tree-set order (body last).
pub(super) fn parse(
    name: &str,
    text: &str,
    has_func: &dyn Fn(&str) -> bool,
) -> Result<Vec<Tree>, Error> {
    let items = lex(text, !has_func("break"), !has_func("continue"));
    let mut p = Parser {
        items,
        i: 0,
        max_read: 0,
        name: name.into(),
        text: text.into(),
        funcs: has_func,
        vars: vec!["$".into()],
        range_depth: 0,
        paren_depth: 0,
        block_depth: 0,
        action_line: 0,
        trees: Vec::new(),
    };
    let root = p.parse_root()?;
    let body = Tree {
        name: name.to_string(),
        parse_name: p.name.clone(),
        text: p.text.clone(),
        root,
    };
    p.add(body)?;
    Ok(p.trees)
}

/// Go's `parse.IsEmptyTree`: nothing but space and comments.
pub(super) fn is_empty_tree(list: &[Node]) -> bool {
    list.iter().all(|n| match n {
        Node::Text(t) => t
            .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
            .is_empty(),
        _ => false,
    })
}

impl Parser<'_> {
    fn next(&mut self) -> Item {
        // Past the end, the last item (EOF or an error) repeats.
        let idx = self.i.min(self.items.len() - 1);
        self.i += 1;
        self.max_read = self.max_read.max(idx);
        self.items[idx].clone()
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> Item {
        let it = self.next();
        self.backup();
        it
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let it = self.next();
            if it.typ != T::Space {
                return it;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let it = self.next_non_space();
        self.backup();
        it
    }

    fn errorf(&self, msg: impl Into<String>) -> Error {
        let line = self.items[self.max_read.min(self.items.len() - 1)].line;
        Error::Parse {
            name: self.name.to_string(),
            line,
            message: msg.into(),
        }
    }

    fn unexpected(&self, token: &Item, context: &str) -> Error {
        if token.typ == T::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{token}{extra}"));
        }
        self.errorf(format!("unexpected {token} in {context}"))
    }

    fn expect(&mut self, typ: T, context: &str) -> PResult<Item> {
        let token = self.next_non_space();
        if token.typ != typ {
            return Err(self.unexpected(&token, context));
        }
        Ok(token)
    }

    /// Go's `Tree.add`: a second non-empty definition in one file fails.
    fn add(&mut self, tree: Tree) -> PResult<()> {
        if let Some(i) = self.trees.iter().position(|t| t.name == tree.name) {
            if is_empty_tree(&self.trees[i].root) {
                self.trees[i] = tree;
                return Ok(());
            }
            if !is_empty_tree(&tree.root) {
                return Err(self.errorf(format!(
                    "template: multiple definition of template {}",
                    super::fmt::quote(&tree.name)
                )));
            }
            return Ok(());
        }
        self.trees.push(tree);
        Ok(())
    }

    fn parse_root(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        loop {
            let p = self.peek();
            if p.typ == T::Eof {
                break;
            }
            if p.typ == T::LeftDelim {
                let save = self.i;
                self.next();
                if self.next_non_space().typ == T::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.i = save;
            }
            match self.text_or_action()? {
                Ok(n) => root.push(n),
                Err(End::End) => return Err(self.errorf("unexpected {{end}}")),
                Err(End::Else) => return Err(self.errorf("unexpected {{else}}")),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        let context = "define clause";
        let token = self.next_non_space();
        if token.typ != T::String && token.typ != T::RawString {
            return Err(self.unexpected(&token, context));
        }
        let name = unquote(&token.val).map_err(|e| self.errorf(e))?;
        self.expect(T::RightDelim, context)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_depth = std::mem::take(&mut self.range_depth);
        let (root, end) = self.item_list()?;
        self.vars = saved_vars;
        self.range_depth = saved_depth;
        if let End::Else = end {
            return Err(self.errorf(format!("unexpected {{{{else}}}} in {context}")));
        }
        let tree = Tree {
            name,
            parse_name: self.name.clone(),
            text: self.text.clone(),
            root,
        };
        self.add(tree)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, End)> {
        let mut list = Vec::new();
        while self.peek_non_space().typ != T::Eof {
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err(end) => return Ok((list, end)),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Result<Node, End>> {
        let token = self.next_non_space();
        match token.typ {
            T::Text => Ok(Ok(Node::Text(token.val))),
            T::LeftDelim => {
                self.action_line = token.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> PResult<Result<Node, End>> {
        let token = self.next_non_space();
        match token.typ {
            T::Block => return self.block_control().map(Ok),
            T::Break | T::Continue => {
                let is_break = token.typ == T::Break;
                let what = if is_break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let t = self.next_non_space();
                if t.typ != T::RightDelim {
                    return Err(self.unexpected(&t, what));
                }
                if self.range_depth == 0 {
                    return Err(self.errorf(format!("{what} outside {{{{range}}}}")));
                }
                return Ok(Ok(if is_break {
                    Node::Break
                } else {
                    Node::Continue
                }));
            }
            T::Else => {
                let peek = self.peek_non_space();
                if peek.typ != T::If && peek.typ != T::With {
                    self.expect(T::RightDelim, "else")?;
                }
                return Ok(Err(End::Else));
            }
            T::End => {
                self.expect(T::RightDelim, "end")?;
                return Ok(Err(End::End));
            }
            T::If => return self.if_control().map(Ok),
            T::Range => {
                let b = self.parse_control("range")?;
                return Ok(Ok(Node::Range(b)));
            }
            T::Template => return self.template_control().map(Ok),
            T::With => return self.with_control().map(Ok),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", T::RightDelim)?;
        Ok(Ok(Node::Action(pipe)))
    }

    fn if_control(&mut self) -> PResult<Node> {
        Ok(Node::If(self.parse_control("if")?))
    }

    fn with_control(&mut self) -> PResult<Node> {
        Ok(Node::With(self.parse_control("with")?))
    }

    fn parse_control(&mut self, context: &str) -> PResult<Branch> {
        if self.block_depth >= MAX_STACK_DEPTH {
            return Err(self.errorf("max nesting depth exceeded"));
        }
        self.block_depth += 1;
        let nvars = self.vars.len();
        let r = super::grow_stack(|| self.parse_control_inner(context));
        self.vars.truncate(nvars);
        self.block_depth -= 1;
        r
    }

    fn parse_control_inner(&mut self, context: &str) -> PResult<Branch> {
        let pipe = self.pipeline(context, T::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = r?;
        let mut else_list = None;
        if let End::Else = next {
            if context == "if" && self.peek().typ == T::If {
                self.next();
                else_list = Some(vec![self.if_control()?]);
            } else if context == "with" && self.peek().typ == T::With {
                self.next();
                else_list = Some(vec![self.with_control()?]);
            } else {
                let (l, next) = self.item_list()?;
                if let End::Else = next {
                    return Err(self.errorf("expected end; found {{else}}"));
                }
                else_list = Some(l);
            }
        }
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn parse_template_name(&mut self, token: &Item, context: &str) -> PResult<String> {
        match token.typ {
            T::String | T::RawString => unquote(&token.val).map_err(|e| self.errorf(e)),
            _ => Err(self.unexpected(token, context)),
        }
    }

    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, context)?;
        let mut pipe = None;
        if self.next_non_space().typ != T::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(context, T::RightDelim)?);
        }
        Ok(Node::Template(TemplateCall {
            pos: token.pos,
            name,
            pipe,
        }))
    }

    fn block_control(&mut self) -> PResult<Node> {
        let context = "block clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, context)?;
        let pipe = self.pipeline(context, T::RightDelim)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_depth = std::mem::take(&mut self.range_depth);
        let r = self.item_list();
        self.vars = saved_vars;
        self.range_depth = saved_depth;
        let (root, end) = r?;
        if let End::Else = end {
            return Err(self.errorf(format!("unexpected {{{{else}}}} in {context}")));
        }
        let tree = Tree {
            name: name.clone(),
            parse_name: self.name.clone(),
            text: self.text.clone(),
            root,
        };
        self.add(tree)?;
        Ok(Node::Template(TemplateCall {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        }))
    }

    fn pipeline(&mut self, context: &str, end: T) -> PResult<Pipe> {
        super::grow_stack(|| self.pipeline_here(context, end))
    }

    fn pipeline_here(&mut self, context: &str, end: T) -> PResult<Pipe> {
        let token = self.peek_non_space();
        let mut pipe = Pipe {
            pos: token.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.typ != T::Variable {
                break;
            }
            let save = self.i;
            self.next_non_space();
            let after = self.peek();
            let next = self.peek_non_space();
            match next.typ {
                T::Assign | T::Declare => {
                    pipe.is_assign = next.typ == T::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                }
                T::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().typ {
                            T::Variable | T::RightDelim | T::RightParen => continue 'decls,
                            _ => return Err(self.errorf("range can only initialize variables")),
                        }
                    }
                    return Err(self.errorf(format!("too many declarations in {context}")));
                }
                _ => {
                    let _ = after;
                    self.i = save;
                }
            }
            break;
        }
        loop {
            let token = self.next_non_space();
            if token.typ == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match token.typ {
                T::Bool
                | T::CharConstant
                | T::Dot
                | T::Field
                | T::Identifier
                | T::Number
                | T::Nil
                | T::RawString
                | T::String
                | T::Variable
                | T::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool { .. }
                    | Arg::Dot { .. }
                    | Arg::Nil { .. }
                    | Arg::Number(_)
                    | Arg::Str { .. }
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let token = self.next();
            match token.typ {
                T::Space => continue,
                T::RightDelim | T::RightParen => self.backup(),
                T::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != T::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == T::Field {
            fields.push(self.next().val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field { pos, idents }
            }
            Arg::Var { mut idents, .. } => {
                idents.extend(fields);
                Arg::Var { pos, idents }
            }
            Arg::Bool { .. }
            | Arg::Str { .. }
            | Arg::Number(_)
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return Err(self.errorf(format!(
                    "unexpected . after term {}",
                    super::fmt::quote(&node.to_string())
                )));
            }
            node => Arg::Chain {
                pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        Ok(Some(match token.typ {
            T::Identifier => {
                if !(self.funcs)(&token.val) {
                    return Err(self.errorf(format!(
                        "function {} not defined",
                        super::fmt::quote(&token.val)
                    )));
                }
                Arg::Ident {
                    pos: token.pos,
                    name: token.val,
                }
            }
            T::Dot => Arg::Dot { pos: token.pos },
            T::Nil => Arg::Nil { pos: token.pos },
            T::Variable => {
                if !self.vars.contains(&token.val) {
                    return Err(self.errorf(format!(
                        "undefined variable {}",
                        super::fmt::quote(&token.val)
                    )));
                }
                Arg::Var {
                    pos: token.pos,
                    idents: vec![token.val],
                }
            }
            T::Field => Arg::Field {
                pos: token.pos,
                idents: vec![token.val[1..].to_string()],
            },
            T::Bool => Arg::Bool {
                pos: token.pos,
                val: token.val == "true",
            },
            T::CharConstant | T::Number => {
                Arg::Number(number(token.pos, &token.val, token.typ).map_err(|e| self.errorf(e))?)
            }
            T::LeftParen => {
                if self.paren_depth >= MAX_STACK_DEPTH {
                    return Err(self.errorf("max expression depth exceeded"));
                }
                self.paren_depth += 1;
                let p = self.pipeline("parenthesized pipeline", T::RightParen);
                self.paren_depth -= 1;
                Arg::Pipe(Box::new(p?))
            }
            T::String | T::RawString => {
                let text = unquote(&token.val).map_err(|e| self.errorf(e))?;
                Arg::Str {
                    pos: token.pos,
                    quoted: token.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// Go's `parse.newNumber` for the kinds templates use (no complex numbers).
fn number(pos: usize, text: &str, typ: T) -> Result<Number, String> {
    if typ == T::CharConstant {
        let inner =
            unquote_char(text).ok_or_else(|| format!("malformed character constant: {text}"))?;
        return Ok(Number {
            pos,
            text: text.to_string(),
            int: Some(inner as i64),
            float: Some(inner as u32 as f64),
            float_const: false,
        });
    }
    if text.ends_with('i') {
        return Err(format!(
            "complex numbers are not supported: {}",
            super::fmt::quote(text)
        ));
    }
    let int = parse_int(text);
    let is_hex = {
        let t = text.trim_start_matches(['+', '-']);
        t.starts_with("0x") || t.starts_with("0X")
    };
    let looks_float = !is_hex && text.contains(['.', 'e', 'E', 'p', 'P']);
    let mut float = int.map(|i| i as f64);
    if int.is_none() && parse_uint(text).is_some() {
        // Fits u64 but not int: Go reports it when executed.
        return Ok(Number {
            pos,
            text: text.to_string(),
            int: None,
            float: None,
            float_const: false,
        });
    }
    if int.is_none() {
        let clean: String = text.chars().filter(|c| *c != '_').collect();
        match clean.parse::<f64>() {
            Ok(f) if !is_hex => {
                if !looks_float {
                    return Err(format!("integer overflow: {}", super::fmt::quote(text)));
                }
                float = Some(f);
            }
            _ => {
                return Err(format!(
                    "illegal number syntax: {}",
                    super::fmt::quote(text)
                ));
            }
        }
    }
    let int = int.or_else(|| {
        float
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    });
    Ok(Number {
        pos,
        text: text.to_string(),
        int,
        float,
        float_const: looks_float,
    })
}

fn parse_uint(text: &str) -> Option<u64> {
    let (base, digits) = base_of(text.strip_prefix('+').unwrap_or(text))?;
    u64::from_str_radix(&digits, base).ok()
}

fn base_of(t: &str) -> Option<(u32, String)> {
    let clean = |s: &str| -> String { s.chars().filter(|c| *c != '_').collect() };
    let lower = t.to_ascii_lowercase();
    let (base, rest) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r.to_string())
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r.to_string())
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    let rest = clean(&rest);
    if rest.is_empty() || rest.contains(['.', 'p']) || (base != 16 && rest.contains('e')) {
        return None;
    }
    Some((base, rest))
}

/// `strconv.ParseInt(text, 0, 64)`.
fn parse_int(text: &str) -> Option<i64> {
    let (neg, t) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (base, digits) = base_of(t)?;
    let u = u64::from_str_radix(&digits, base).ok()?;
    if neg {
        if u <= i64::MAX as u64 + 1 {
            Some((u as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

fn unquote_char(text: &str) -> Option<char> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut chars = inner.chars().peekable();
    let c = read_escaped(&mut chars, '\'').ok()?;
    if chars.next().is_some() {
        return None;
    }
    Some(c)
}

fn read_escaped(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    quote: char,
) -> Result<char, ()> {
    let c = chars.next().ok_or(())?;
    if c != '\\' {
        if c == quote {
            return Err(());
        }
        return Ok(c);
    }
    let e = chars.next().ok_or(())?;
    let hex =
        |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Result<char, ()> {
            let s: String = (0..n).filter_map(|_| chars.next()).collect();
            if s.len() != n {
                return Err(());
            }
            let v = u32::from_str_radix(&s, 16).map_err(|_| ())?;
            char::from_u32(v).ok_or(())
        };
    Ok(match e {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        '\\' => '\\',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        '0'..='7' => {
            let mut v = e.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                let d = chars.next().and_then(|c| c.to_digit(8)).ok_or(())?;
                v = v * 8 + d;
            }
            if v > 255 {
                return Err(());
            }
            char::from_u32(v).ok_or(())?
        }
        c if c == quote => c,
        _ => return Err(()),
    })
}

/// `strconv.Unquote` for Go string literals.
fn unquote(s: &str) -> Result<String, String> {
    if let Some(raw) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(raw.replace('\r', ""));
    }
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| "invalid syntax".to_string())?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        out.push(read_escaped(&mut chars, '"').map_err(|_| "invalid syntax".to_string())?);
    }
    Ok(out)
}

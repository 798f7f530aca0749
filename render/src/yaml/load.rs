//! YAML text to `serde_json::Value`, one parser event at a time, with hard
//! budgets (depth, nodes including alias expansions, aliases, anchors,
//! documents, scalar bytes) so an alias bomb or a pathological document fails
//! with an error instead of eating the hub's memory.
//!
//! Scalars resolve as the Go library of the chosen [`Schema`] resolves them
//! ([`super::resolve`]); mapping keys, merge keys (`<<`) and duplicate keys
//! behave as that library behaves.

use std::collections::HashMap;

use granit_parser::{Event, Options, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Value};

use super::resolve::{Scalar, Schema, kubernetes_key, resolve_plain};

/// Deepest nesting of collections.
pub const MAX_DEPTH: usize = 100;
/// Nodes of one file, alias expansions included.
pub const MAX_NODES: usize = 500_000;
/// Alias uses (`*name`) in one file.
pub const MAX_ALIASES: usize = 1_000;
/// Anchor definitions (`&name`) in one file.
pub const MAX_ANCHORS: usize = 1_000;
/// Documents in one file.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Parser events in one file.
pub const MAX_EVENTS: usize = 2_000_000;
/// Scalar bytes of one file, alias expansions included.
pub const MAX_SCALAR_BYTES: usize = 64 * 1024 * 1024;

/// Where a mapping sits, for the one place kyaml's output depends on the
/// path: kustomize rewrites `metadata.annotations` of every object as strings,
/// keeping each value's text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Metadata,
    Annotations,
    Items,
    Other,
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        nodes: usize,
        role: Role,
    },
    Map {
        map: Map<String, Value>,
        /// The key whose value comes next (`None`: a key comes next).
        key: Option<Key>,
        /// go-yaml v3 applies `<<` after the explicit keys.
        merge: Option<Value>,
        anchor: usize,
        nodes: usize,
        role: Role,
        /// The document root (go-yaml v3 keeps non-string keys as text there).
        root: bool,
    },
}

enum Key {
    Name(String),
    Merge,
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A parsed document, and for go-yaml v3 the paths of the fields written
/// with an empty value (`key:`): kyaml's strategic merge drops those from the
/// object it patches and keeps fields written `key: null`.
///
/// kustomize also rewrites `metadata.annotations` of every object as strings
/// of their text (`0755` stays `"0755"`), unless a JSON patch turned the
/// object into JSON first. Such an annotation holds its text, or null when
/// its text means null (so that it deletes in a patch); `plain_annotations`
/// are the paths and texts of the annotations written as plain scalars.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub value: Value,
    pub empty_nulls: Vec<Vec<Seg>>,
    pub plain_annotations: Vec<(Vec<Seg>, String)>,
    /// Fields with comments that may be a schema ([`FieldComment`]).
    pub field_comments: Vec<FieldComment>,
}

/// The comments of one mapping field (or, for a path ending in an index, of
/// one list element: the one-line comment right above its `-`) that kyaml
/// may read as its schema, in the order it tries them: for a value on the key's line (a
/// scalar or a flow collection) the line comment, then the one-line comment
/// right above the key; for a block collection the key's line comment, or
/// if it has none the comment above. Each text has its leading `#`s
/// removed, and only texts that start (after blanks) with `{` are kept,
/// since only a JSON object can be a schema. Read only for go-yaml v3
/// ([`Schema::Kyaml`]) and only when the file has such a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldComment {
    pub path: Vec<Seg>,
    pub texts: Vec<String>,
}

struct Loader<'a> {
    schema: Schema,
    empty_nulls: Vec<Vec<Seg>>,
    plain_annotations: Vec<(Vec<Seg>, String)>,
    text: &'a str,
    anchors: HashMap<usize, (Value, usize, usize)>,
    stack: Vec<Frame>,
    /// The finished root of the current document.
    root: Option<Value>,
    in_document: bool,
    docs: Vec<Doc>,
    nodes: usize,
    aliases: usize,
    anchor_defs: usize,
    scalar_bytes: usize,
    line: usize,
}

/// Parses every document of `text`. An empty document is `Value::Null`.
pub fn load(text: &str, schema: Schema) -> Result<Vec<Doc>, String> {
    let mut l = Loader {
        schema,
        empty_nulls: Vec::new(),
        plain_annotations: Vec::new(),
        text,
        anchors: HashMap::new(),
        stack: Vec::new(),
        root: None,
        in_document: false,
        docs: Vec::new(),
        nodes: 0,
        aliases: 0,
        anchor_defs: 0,
        scalar_bytes: 0,
        line: 0,
    };
    // Comments are never needed. Turning their events off also keeps the
    // parser from buffering them (where a budget refused more than a few
    // dozen consecutive comment lines), even if feature unification enables
    // comment support.
    let mut options = Options::default();
    options.set_emit_comments(false);
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut events = 0usize;
    while let Some(ev) = parser.next_event() {
        let (event, span) = ev.map_err(|e| e.to_string())?;
        events += 1;
        if events > MAX_EVENTS {
            return Err(format!("more than {MAX_EVENTS} YAML events"));
        }
        l.line = span.start.line();
        l.event(event, &span)
            .map_err(|e| format!("line {}: {e}", l.line))?;
    }
    let mut docs = l.docs;
    if schema == Schema::Kyaml && may_have_schema_comment(text) {
        let comments = field_comments(text)?;
        for (doc, fc) in docs.iter_mut().zip(comments) {
            doc.field_comments = fc;
        }
    }
    Ok(docs)
}

/// Whether `text` has a `#` followed by blanks or more `#`s and then `{`:
/// the only comments that can be a schema. Files without one (nearly all)
/// are read once, without comments.
fn may_have_schema_comment(text: &str) -> bool {
    let b = text.as_bytes();
    text.match_indices('#').any(|(i, _)| {
        b[i + 1..]
            .iter()
            .find(|&&c| !matches!(c, b'#' | b' ' | b'\t'))
            == Some(&b'{')
    })
}

/// A comment as read: line, column, whether it has a line of its own, text.
struct Comment {
    line: usize,
    col: usize,
    own_line: bool,
    text: String,
}

/// A mapping key as read: the path of its value, line, column, and whether
/// the value starts on the key's line; or a list element, with the column
/// of its `-`.
struct KeyAt {
    path: Vec<Seg>,
    line: usize,
    col: usize,
    inline: bool,
    /// The first key of its mapping: blank lines may separate it from its
    /// head comment (after a sibling they make the comment a foot comment).
    first: bool,
}

enum CFrame {
    /// The index of the next element.
    Seq(usize),
    /// The key whose value comes next, and whether a key was read.
    Map(Option<String>, bool),
}

/// The second reading of a file that may hold schema comments: the same
/// events, whose positions place the comments of the text (found line by
/// line, outside multi-line scalars) on mapping fields as go-yaml v3 places
/// them (a comment on a key's line is the line comment of the first key of
/// that line, or of its value when the value starts on that line; a comment
/// alone on the line right above a key, at the key's column, is the key's
/// head comment, and a block of several such lines does not parse as JSON).
/// The parser still skips comments, so no comment is ever buffered.
fn field_comments(text: &str) -> Result<Vec<Vec<FieldComment>>, String> {
    let mut options = Options::default();
    options.set_emit_comments(false);
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut docs: Vec<Vec<KeyAt>> = Vec::new();
    let mut stack: Vec<CFrame> = Vec::new();
    let mut keys: Vec<KeyAt> = Vec::new();
    // The key whose value comes next, as an index into `keys`.
    let mut awaiting: Vec<Option<usize>> = Vec::new();
    // Lines inside multi-line scalars, and where the last token of a line ends.
    let mut inside: Vec<(usize, usize, usize)> = Vec::new();
    let mut line_end: HashMap<usize, usize> = HashMap::new();
    let mut events = 0usize;
    while let Some(ev) = parser.next_event() {
        let (event, span) = ev.map_err(|e| e.to_string())?;
        events += 1;
        if events > MAX_EVENTS {
            return Err(format!("more than {MAX_EVENTS} YAML events"));
        }
        let line = span.start.line();
        if span.end.index() > span.start.index() {
            let end = line_end.entry(span.end.line()).or_insert(0);
            *end = (*end).max(span.end.col());
            if span.end.line() > line {
                inside.push((line, span.end.line(), span.end.col()));
            }
        }
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        let expecting_key = matches!(stack.last(), Some(CFrame::Map(None, _)));
        if is_node && !expecting_key {
            // A value: of the pending key, or an element of a list.
            if let Some(Some(k)) = awaiting.last_mut().map(Option::take) {
                keys[k].inline = line == keys[k].line;
            }
            // An element: its head comment is the one above its `-`.
            if let Some(CFrame::Seq(..)) = stack.last() {
                keys.push(KeyAt {
                    path: comment_path(&stack),
                    line,
                    col: span.start.col(),
                    inline: true,
                    first: false,
                });
            }
        }
        match event {
            Event::DocumentStart(..) => {
                keys.clear();
                stack.clear();
                awaiting.clear();
            }
            Event::DocumentEnd => docs.push(std::mem::take(&mut keys)),
            Event::Scalar(t, ..) if expecting_key => {
                let mut path = comment_path(&stack);
                path.push(Seg::Key(t.to_string()));
                let first = matches!(stack.last(), Some(CFrame::Map(_, false)));
                keys.push(KeyAt {
                    path,
                    line,
                    col: span.start.col(),
                    inline: false,
                    first,
                });
                if let Some(a) = awaiting.last_mut() {
                    *a = Some(keys.len() - 1);
                }
                if let Some(CFrame::Map(k, seen)) = stack.last_mut() {
                    *k = Some(t.into_owned());
                    *seen = true;
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let seq = matches!(event, Event::SequenceStart(..));
                stack.push(if seq {
                    CFrame::Seq(0)
                } else {
                    CFrame::Map(None, false)
                });
                awaiting.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                awaiting.pop();
                value_done(&mut stack);
            }
            Event::Scalar(..) | Event::Alias(..) => value_done(&mut stack),
            _ => {}
        }
    }
    let comments = text_comments(text, &inside, &line_end);
    Ok(docs
        .iter()
        .map(|keys| attach(text, &comments, keys))
        .collect())
}

/// The comments of `text`: lines whose first non-blank is `#`, and the rest
/// of a line after its last token when that rest (past blanks and a `:` or
/// `-`) starts with `#`. Multi-line scalars (`inside`: first line, last
/// line, column where they end) hold none.
fn text_comments(
    text: &str,
    inside: &[(usize, usize, usize)],
    line_end: &HashMap<usize, usize>,
) -> Vec<Comment> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let n = i + 1;
        if !l.contains('#') || inside.iter().any(|&(a, b, _)| a < n && n < b) {
            continue;
        }
        let chars: Vec<char> = l.chars().collect();
        let first = chars.iter().position(|c| !c.is_whitespace());
        if let Some(f) = first
            && chars[f] == '#'
            && !inside.iter().any(|&(a, b, end)| a < n && n == b && f < end)
        {
            out.push(Comment {
                line: n,
                col: f,
                own_line: true,
                text: chars[f + 1..].iter().collect(),
            });
            continue;
        }
        let Some(&end) = line_end.get(&n) else {
            continue;
        };
        let mut j = end.min(chars.len());
        while j < chars.len() && matches!(chars[j], ' ' | '\t' | ':' | '-') {
            j += 1;
        }
        if j > end && chars.get(j) == Some(&'#') && matches!(chars[j - 1], ' ' | '\t') {
            out.push(Comment {
                line: n,
                col: j,
                own_line: false,
                text: chars[j + 1..].iter().collect(),
            });
        }
    }
    out
}

/// A value is complete: its map expects a key next, its list the next index.
fn value_done(stack: &mut [CFrame]) {
    match stack.last_mut() {
        Some(CFrame::Map(k, _)) => *k = None,
        Some(CFrame::Seq(i)) => *i += 1,
        None => {}
    }
}

/// The column of the `-` of a block list element whose node starts at
/// column `col` of `line` (none for a flow list).
fn dash_col(line: &str, col: usize) -> Option<usize> {
    let chars: Vec<char> = line.chars().take(col).collect();
    let i = chars.iter().rposition(|c| *c != ' ')?;
    (chars[i] == '-').then_some(i)
}

/// Line `line` of the parser's numbering (the first line is 1).
fn line_text<'t>(lines: &[&'t str], line: usize) -> Option<&'t str> {
    lines.get(line.checked_sub(1)?).copied()
}

fn comment_path(stack: &[CFrame]) -> Vec<Seg> {
    stack
        .iter()
        .filter_map(|f| match f {
            CFrame::Seq(i) => Some(Seg::Index(*i)),
            CFrame::Map(Some(k), _) => Some(Seg::Key(k.clone())),
            CFrame::Map(None, _) => None,
        })
        .collect()
}

fn attach(text: &str, comments: &[Comment], keys: &[KeyAt]) -> Vec<FieldComment> {
    let own_at = |line: usize| comments.iter().find(|c| c.own_line && c.line == line);
    let lines: Vec<&str> = text.lines().collect();
    // The comment alone on its line above `k`, at its column, and alone in
    // its block (go-yaml v3 joins a block's lines, which then are not JSON).
    let head_of = |k: &KeyAt| {
        let mut above = k.line.checked_sub(1)?;
        while k.first && above > 0 && own_at(above).is_none() {
            let blank = line_text(&lines, above).is_some_and(|l| l.trim().is_empty());
            if !blank {
                return None;
            }
            above -= 1;
        }
        own_at(above).filter(|c| c.col == k.col && (c.line == 0 || own_at(c.line - 1).is_none()))
    };
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if matches!(k.path.last(), Some(Seg::Index(_))) {
            // A list element: only its head comment, at the column of its
            // `-`, can be a schema.
            let Some(dash) = line_text(&lines, k.line).and_then(|l| dash_col(l, k.col)) else {
                continue;
            };
            let at_dash = KeyAt {
                path: Vec::new(),
                col: dash,
                ..*k
            };
            let head = head_of(&at_dash);
            let text = head.map(|c| c.text.trim_start_matches('#'));
            if let Some(t) = text.filter(|t| t.trim_start().starts_with('{')) {
                out.push(FieldComment {
                    path: k.path.clone(),
                    texts: vec![t.to_string()],
                });
            }
            continue;
        }
        // The line comment goes to the first key of its line (keys after it
        // on the line are inside its flow collection value).
        let first_on_line = keys[..i].iter().all(|o| o.line != k.line);
        let line_comment = comments
            .iter()
            .find(|c| !c.own_line && c.line == k.line && first_on_line)
            .map(|c| c.text.as_str());
        let head = head_of(k).map(|c| c.text.as_str());
        let texts: Vec<&str> = match (k.inline, line_comment, head) {
            (true, l, h) => [l, h].into_iter().flatten().collect(),
            (false, Some(l), _) => vec![l],
            (false, None, h) => h.into_iter().collect(),
        };
        let texts: Vec<String> = texts
            .into_iter()
            .map(|t| t.trim_start_matches('#'))
            .filter(|t| t.trim_start().starts_with('{'))
            .map(str::to_string)
            .collect();
        if !texts.is_empty() {
            out.push(FieldComment {
                path: k.path.clone(),
                texts,
            });
        }
    }
    out
}

fn tag_name(tag: &Tag) -> Option<String> {
    tag.suffix_in_namespace("tag:yaml.org,2002:")
        .map(|s| s.into_owned())
}

impl Loader<'_> {
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), String> {
        match event {
            Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(..) => {
                self.in_document = true;
                self.root = None;
                self.empty_nulls.clear();
                self.plain_annotations.clear();
                if self.docs.len() >= MAX_DOCUMENTS {
                    return Err(format!("more than {MAX_DOCUMENTS} YAML documents"));
                }
            }
            Event::DocumentEnd => {
                self.in_document = false;
                self.docs.push(Doc {
                    value: self.root.take().unwrap_or(Value::Null),
                    empty_nulls: std::mem::take(&mut self.empty_nulls),
                    plain_annotations: std::mem::take(&mut self.plain_annotations),
                    field_comments: Vec::new(),
                });
                // Anchors do not reach across documents.
                self.anchors.clear();
            }
            Event::Alias(id) => {
                self.aliases += 1;
                if self.aliases > MAX_ALIASES {
                    return Err(format!("more than {MAX_ALIASES} aliases"));
                }
                let (v, n, bytes) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or("alias to an unknown or unfinished anchor")?;
                self.count(n, bytes)?;
                self.node(v, 0, n)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, text.len())?;
                let mut text = text.into_owned();
                // The parser reports an empty value (`key:`) as `~`; its span is empty.
                if style == ScalarStyle::Plain
                    && tag.is_none()
                    && text == "~"
                    && span.start.index() == span.end.index()
                {
                    text.clear();
                }
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    self.trim_block_at_eof(&mut text, span);
                }
                if self.expecting_key() {
                    let key = self.key(&text, style, tag.as_deref())?;
                    if let Some(Frame::Map { key: k, .. }) = self.stack.last_mut() {
                        *k = Some(key);
                    }
                    if anchor != 0 {
                        let bytes = text.len();
                        self.define(anchor, Value::String(text), 1, bytes)?;
                    }
                    return Ok(());
                }
                if self.schema == Schema::Kyaml
                    && style == ScalarStyle::Plain
                    && tag.is_none()
                    && text.is_empty()
                    && matches!(
                        self.stack.last(),
                        Some(Frame::Map {
                            key: Some(Key::Name(_)),
                            ..
                        })
                    )
                {
                    let path = self.path();
                    self.empty_nulls.push(path);
                }
                if style == ScalarStyle::Plain && tag.is_none() && self.in_annotations() {
                    let path = self.path();
                    self.plain_annotations.push((path, text.clone()));
                }
                let v = self.scalar(text, style, tag.as_deref())?;
                self.node(v, anchor, 1)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.open()?;
                let role = self.child_role(true);
                self.count(1, 0)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    nodes: self.nodes,
                    role,
                });
            }
            Event::MappingStart(_, anchor, _) => {
                self.open()?;
                let role = self.child_role(false);
                let root = self.stack.is_empty();
                self.count(1, 0)?;
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    merge: None,
                    anchor,
                    nodes: self.nodes,
                    role,
                    root,
                });
            }
            Event::SequenceEnd => {
                let Some(Frame::Seq {
                    items,
                    anchor,
                    nodes,
                    ..
                }) = self.stack.pop()
                else {
                    return Err("unbalanced sequence".into());
                };
                let n = self.nodes - nodes + 1;
                self.node(Value::Array(items), anchor, n)?;
            }
            Event::MappingEnd => {
                let Some(Frame::Map {
                    mut map,
                    merge,
                    anchor,
                    nodes,
                    ..
                }) = self.stack.pop()
                else {
                    return Err("unbalanced mapping".into());
                };
                if let Some(m) = merge {
                    // go-yaml v3: explicit keys win, then the sources in order.
                    for src in merge_sources(m)? {
                        for (k, v) in src {
                            map.entry(k).or_insert(v);
                        }
                    }
                }
                let n = self.nodes - nodes + 1;
                self.node(Value::Object(map), anchor, n)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn count(&mut self, nodes: usize, bytes: usize) -> Result<(), String> {
        self.nodes += nodes;
        self.scalar_bytes += bytes;
        if self.nodes > MAX_NODES {
            return Err(format!(
                "more than {MAX_NODES} YAML nodes (aliases included)"
            ));
        }
        if self.scalar_bytes > MAX_SCALAR_BYTES {
            return Err(format!(
                "more than {MAX_SCALAR_BYTES} bytes of scalars (aliases included)"
            ));
        }
        Ok(())
    }

    fn open(&mut self) -> Result<(), String> {
        if self.expecting_key() {
            return Err("a mapping key must be a scalar".into());
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    /// The role of a collection about to open at the current position.
    fn child_role(&self, seq: bool) -> Role {
        match self.stack.last() {
            None => Role::Root,
            Some(Frame::Map {
                key: Some(Key::Name(k)),
                role,
                ..
            }) => match (*role, k.as_str(), seq) {
                (Role::Root, "metadata", false) => Role::Metadata,
                (Role::Root, "items", true) => Role::Items,
                (Role::Metadata, "annotations", false) => Role::Annotations,
                _ => Role::Other,
            },
            Some(Frame::Seq {
                role: Role::Items, ..
            }) if !seq => Role::Root,
            _ => Role::Other,
        }
    }

    /// The path of the node about to be added.
    fn path(&self) -> Vec<Seg> {
        self.stack
            .iter()
            .filter_map(|f| match f {
                Frame::Seq { items, .. } => Some(Seg::Index(items.len())),
                Frame::Map {
                    key: Some(Key::Name(k)),
                    ..
                } => Some(Seg::Key(k.clone())),
                Frame::Map { .. } => None,
            })
            .collect()
    }

    fn in_annotations(&self) -> bool {
        self.schema == Schema::Kyaml
            && matches!(
                self.stack.last(),
                Some(Frame::Map {
                    role: Role::Annotations,
                    key: Some(Key::Name(_)),
                    ..
                })
            )
    }

    fn define(
        &mut self,
        anchor: usize,
        v: Value,
        nodes: usize,
        bytes: usize,
    ) -> Result<(), String> {
        self.anchor_defs += 1;
        if self.anchor_defs > MAX_ANCHORS {
            return Err(format!("more than {MAX_ANCHORS} anchors"));
        }
        self.anchors.insert(anchor, (v, nodes, bytes));
        Ok(())
    }

    /// A finished node: store it under its anchor and hand it to its parent.
    fn node(&mut self, v: Value, anchor: usize, nodes: usize) -> Result<(), String> {
        if anchor != 0 {
            let bytes = scalar_bytes(&v);
            self.define(anchor, v.clone(), nodes, bytes)?;
        }
        let schema = self.schema;
        match self.stack.last_mut() {
            None => {
                if !self.in_document {
                    return Err("a node outside a document".into());
                }
                self.root = Some(v);
            }
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map {
                map, key, merge, ..
            }) => match key.take() {
                None => match v {
                    // An alias used as a key.
                    Value::String(s) => *key = Some(Key::Name(s)),
                    _ => return Err("a mapping key must be a scalar".into()),
                },
                Some(Key::Merge) => match schema {
                    Schema::Kyaml => *merge = Some(v),
                    Schema::Kubernetes => {
                        // go-yaml v2 merges in place: the merged keys replace
                        // keys before `<<`, and earlier sources win.
                        let mut sources = merge_sources(v)?;
                        sources.reverse();
                        for src in sources {
                            map.extend(src);
                        }
                    }
                },
                Some(Key::Name(k)) => {
                    if schema == Schema::Kyaml && map.contains_key(&k) {
                        return Err(format!("mapping key {k:?} already defined"));
                    }
                    // sigs.k8s.io/yaml: a repeated key replaces the earlier one.
                    map.insert(k, v);
                }
            },
        }
        Ok(())
    }

    fn key(&self, text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Key, String> {
        let tag = tag.and_then(tag_name);
        if tag.as_deref() == Some("merge")
            || (tag.is_none() && style == ScalarStyle::Plain && text == "<<")
        {
            return Ok(Key::Merge);
        }
        if style != ScalarStyle::Plain || tag.is_some() {
            return Ok(Key::Name(text.to_string()));
        }
        let resolved = resolve_plain(self.schema, text);
        match self.schema {
            Schema::Kubernetes => kubernetes_key(&resolved, text).map(Key::Name),
            Schema::Kyaml => {
                let root = matches!(self.stack.last(), Some(Frame::Map { root: true, .. }));
                match resolved {
                    Scalar::Str => Ok(Key::Name(text.to_string())),
                    Scalar::Null if root => Ok(Key::Name(String::new())),
                    _ if root => Ok(Key::Name(text.to_string())),
                    _ => Err(format!(
                        "mapping key {text} is not a string (kustomize cannot write it as JSON; quote it)"
                    )),
                }
            }
        }
    }

    fn scalar(&self, text: String, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
        if self.in_annotations() {
            // kustomize writes every annotation back as a string of its text.
            let null = style == ScalarStyle::Plain
                && tag.is_none()
                && resolve_plain(self.schema, &text) == Scalar::Null;
            return Ok(if null {
                Value::Null
            } else {
                Value::String(text)
            });
        }
        let core = tag.and_then(tag_name);
        let custom = tag.is_some() && core.is_none();
        let resolved = match core.as_deref() {
            Some("str") => return Ok(Value::String(text)),
            Some("binary") => return base64(&text).map(Value::String),
            Some("int" | "float" | "bool" | "null" | "timestamp") => {
                let want = core.as_deref().unwrap_or_default();
                let r = resolve_plain(self.schema, &text);
                let ok = matches!(
                    (want, &r),
                    ("int", Scalar::Int(_) | Scalar::Uint(_))
                        | ("float", Scalar::Int(_) | Scalar::Uint(_) | Scalar::Float(_))
                        | ("bool", Scalar::Bool(_))
                        | ("null", Scalar::Null)
                        | ("timestamp", Scalar::Timestamp(_))
                );
                if !ok {
                    return Err(format!("cannot decode !!{want} `{text}`"));
                }
                r
            }
            _ if custom || style != ScalarStyle::Plain => return Ok(Value::String(text)),
            _ => resolve_plain(self.schema, &text),
        };
        match resolved {
            Scalar::Str => Ok(Value::String(text)),
            _ => super::plain_value_of(resolved).ok_or_else(|| {
                format!("{text} is not a number JSON can carry, so Kubernetes cannot read it")
            }),
        }
    }

    /// YAML's clip and keep chomping keep a final line break only if the
    /// file has one: a block scalar that runs to the end of a file without a
    /// trailing newline gets none (the parser adds one).
    fn trim_block_at_eof(&self, text: &mut String, span: &Span) {
        if self.text.ends_with('\n') || !text.ends_with('\n') {
            return;
        }
        let end = span
            .end
            .byte_offset()
            .unwrap_or_else(|| char_to_byte(self.text, span.end.index()));
        if self.text[end.min(self.text.len())..].trim().is_empty() {
            text.pop();
        }
    }
}

fn char_to_byte(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

fn scalar_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(scalar_bytes).sum(),
        Value::Object(m) => m.iter().map(|(k, v)| k.len() + scalar_bytes(v)).sum(),
        _ => 0,
    }
}

fn merge_sources(v: Value) -> Result<Vec<Map<String, Value>>, String> {
    let bad =
        || "the value of a merge key (<<) must be a mapping or a list of mappings".to_string();
    match v {
        Value::Object(m) => Ok(vec![m]),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Object(m) => Ok(m),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// `!!binary`: standard base64 (line breaks ignored), read as text the way
/// Go's JSON encoder writes bytes of a string (invalid UTF-8 replaced).
fn base64(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut pad = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b'\n' | b'\r' => continue,
            _ => return Err("!!binary value contains invalid base64 data".into()),
        };
        if pad > 0 {
            return Err("!!binary value contains invalid base64 data".into());
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod comment_tests {
    use super::*;

    fn fields(text: &str) -> Vec<(String, Vec<String>)> {
        let docs = load(text, Schema::Kyaml).unwrap();
        docs.into_iter()
            .flat_map(|d| d.field_comments)
            .map(|fc| {
                let path = fc
                    .path
                    .iter()
                    .map(|s| match s {
                        Seg::Key(k) => k.clone(),
                        Seg::Index(i) => i.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                (path, fc.texts)
            })
            .collect()
    }

    #[test]
    fn schema_comments_attach_to_fields_as_go_yaml_attaches_them() {
        let text = r#"spec:
  # {"a": 1}

  first:
  - x
  steps: # {"b": 2}
  # {"c": 3}
  - name: a
  # {"d": 4}
  - name: b
  # {"e": 5}
  head: 1
  # two
  # {"f": 6}
  twoLines: []
  # {"g": 7}
  blocked: # words
    k: v
  flow: [{name: a}] # {"h": 8}
  - 
"#;
        let text = text.trim_end_matches("  - \n");
        assert_eq!(
            fields(text),
            [
                ("spec.first".to_string(), vec![r#" {"a": 1}"#.to_string()]),
                ("spec.steps".to_string(), vec![r#" {"b": 2}"#.to_string()]),
                ("spec.steps.0".to_string(), vec![r#" {"c": 3}"#.to_string()]),
                ("spec.steps.1".to_string(), vec![r#" {"d": 4}"#.to_string()]),
                ("spec.head".to_string(), vec![r#" {"e": 5}"#.to_string()]),
                ("spec.flow".to_string(), vec![r#" {"h": 8}"#.to_string()]),
            ]
        );
    }

    #[test]
    fn comments_inside_scalars_are_text() {
        let text = r#"a:
  lit: |
    # {"x": 1}
    line
  # {"b": 2}
  quoted: "q" # {"c": 3}
  multi: "one
    # {'y': 4}
    two"
  # {"d": 5}
  after: 'x' # words
  plain: v #{"e": 6}
  nosp: v#{z}
"#;
        assert_eq!(
            fields(text),
            [
                (
                    "a.quoted".to_string(),
                    vec![r#" {"c": 3}"#.to_string(), r#" {"b": 2}"#.to_string()]
                ),
                ("a.after".to_string(), vec![r#" {"d": 5}"#.to_string()]),
                ("a.plain".to_string(), vec![r#"{"e": 6}"#.to_string()]),
            ]
        );
    }

    #[test]
    fn long_comment_blocks_still_load_with_a_schema_comment() {
        let mut text = String::from("spec:\n");
        for i in 0..200 {
            text.push_str(&format!("  # line {i}\n"));
        }
        text.push_str("  steps: # {\"type\": \"array\"}\n  - a\n");
        assert_eq!(
            fields(&text),
            [(
                "spec.steps".to_string(),
                vec![r#" {"type": "array"}"#.to_string()]
            )]
        );
        // Without a comment that could be a schema, the file is read once.
        assert!(!may_have_schema_comment("a: 1 # see {x}\nb: c\n"));
        assert!(may_have_schema_comment("a: 1 ## \t{}\n"));
    }
}

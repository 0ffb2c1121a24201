//! The source tree's one rule: modules import downward only.
//!
//! This test reads every `.rs` file of the workspace's crates (the harness
//! library and binary, the guest agent, the protocol crate), resolves every
//! `use crate::…`, `super::…`, `self::…` and inline `crate::a::b` path (and
//! paths through names a `use` bound, and through `pub use` re-exports) to
//! the file module that defines it, and fails on
//! * an import cycle between modules (files), in any crate: a cycle is
//!   named with each step's file and line;
//! * a module of a lower layer importing one of a higher layer, or two
//!   peer layers importing each other, per [`CRATES`] (mirrored in
//!   docs/design.md); a module that is in no layer is an error too, so the
//!   table cannot silently fall behind the tree.
//!
//! It is a hand-written reader of `use` lines, not `cargo-modules`: it
//! needs no tool outside the workspace, runs in a second with the unit
//! tests, and knows the layer table. `HIDVM_LAYERS_ROOT=<checkout>` points
//! it at another checkout (e.g. an old commit, to see that it fails there).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A layer: the module paths (folders, or single modules) it owns. Layers
/// are listed bottom to top; a module may import its own layer and every
/// layer of a lower rank. Two layers of one rank are peers: neither may
/// import the other.
struct Layer {
    rank: u8,
    name: &'static str,
    owns: &'static [&'static str],
}

/// A crate: its root file, relative to the repository, and its layers
/// (empty: only cycles are checked).
struct CrateSpec {
    name: &'static str,
    root: &'static str,
    layers: &'static [Layer],
}

/// The layer table (docs/design.md shows the same, as a picture).
const CRATES: &[CrateSpec] = &[
    CrateSpec {
        name: "hidvm (library)",
        root: "harness/src/lib.rs",
        layers: &[
            Layer { rank: 0, name: "base", owns: &["base"] },
            Layer { rank: 1, name: "kernel", owns: &["kernel"] },
            Layer { rank: 2, name: "vm", owns: &["vm"] },
            Layer { rank: 3, name: "judge", owns: &["judge"] },
            Layer { rank: 4, name: "catalogue", owns: &["catalogue"] },
            Layer { rank: 4, name: "results", owns: &["results"] },
            Layer { rank: 5, name: "run", owns: &["run"] },
        ],
    },
    CrateSpec {
        name: "hidvm (binary)",
        root: "harness/src/main.rs",
        layers: &[Layer { rank: 6, name: "cli", owns: &["cli"] }],
    },
    CrateSpec {
        name: "hidvm-agent",
        root: "guest-image/agent/src/main.rs",
        layers: &[
            Layer { rank: 0, name: "guest", owns: &["wait", "budget", "channel", "init", "userspace"] },
            Layer { rank: 1, name: "devices", owns: &["uhid", "hidraw", "input", "device"] },
            Layer { rank: 1, name: "bpf", owns: &["bpf", "holder", "health", "tracer", "loader"] },
            Layer { rank: 2, name: "state", owns: &["state"] },
            Layer { rank: 3, name: "steps", owns: &["steps"] },
            Layer { rank: 4, name: "jobs", owns: &["run", "command", "pytest", "shell", "snapshot"] },
        ],
    },
    CrateSpec { name: "hidvm-proto", root: "guest-image/proto/src/lib.rs", layers: &[] },
];

// ---------------------------------------------------------------- lexing

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A literal (string, char, number): never part of a path.
    Lit,
}

/// Tokens with their line numbers; comments, strings and lifetimes gone.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let mut l = Lexer { c: src.chars().collect(), i: 0, line: 1, out: Vec::new() };
    while let Some(&ch) = l.c.get(l.i) {
        let next = l.at(1);
        match ch {
            '\n' => {
                l.line += 1;
                l.i += 1;
            }
            _ if ch.is_whitespace() => l.i += 1,
            '/' if next == Some('/') => {
                while l.at(0).is_some_and(|c| c != '\n') {
                    l.i += 1;
                }
            }
            '/' if next == Some('*') => l.block_comment(),
            '"' => l.string(0),
            '\'' => l.quote(),
            ':' if next == Some(':') => {
                l.out.push((Tok::PathSep, l.line));
                l.i += 2;
            }
            _ if ident_char(ch) => l.word(),
            _ => {
                l.out.push((Tok::Punct(ch), l.line));
                l.i += 1;
            }
        }
    }
    l.out
}

fn ident_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<(Tok, usize)>,
}

impl Lexer {
    fn at(&self, ahead: usize) -> Option<char> {
        self.c.get(self.i + ahead).copied()
    }

    /// Moves past `ch`, counting lines.
    fn skip(&mut self, n: usize) {
        for _ in 0..n {
            if self.at(0) == Some('\n') {
                self.line += 1;
            }
            self.i += 1;
        }
    }

    /// `/* … */`, nested.
    fn block_comment(&mut self) {
        let mut depth = 0;
        while let Some(ch) = self.at(0) {
            if ch == '/' && self.at(1) == Some('*') {
                depth += 1;
                self.i += 2;
            } else if ch == '*' && self.at(1) == Some('/') {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.skip(1);
            }
        }
    }

    /// The string literal whose opening quote is here, closed by a quote
    /// and `hashes` hashes; escapes count only in non-raw strings.
    fn string(&mut self, hashes: usize) {
        let raw = hashes > 0 || (self.i > 0 && self.c[self.i - 1] == 'r');
        let line = self.line;
        self.i += 1;
        while let Some(ch) = self.at(0) {
            match ch {
                '\\' if !raw => self.skip(2),
                '"' if (1..=hashes).all(|h| self.at(h) == Some('#')) => {
                    self.i += 1 + hashes;
                    break;
                }
                _ => self.skip(1),
            }
        }
        self.out.push((Tok::Lit, line));
    }

    /// A char literal ('a', '\n', '\'') or a lifetime ('a).
    fn quote(&mut self) {
        if self.at(1) == Some('\\') {
            self.i += 2;
            while self.at(0).is_some_and(|c| c != '\'') {
                self.i += 1;
            }
            self.i += 1;
            self.out.push((Tok::Lit, self.line));
        } else if self.at(2) == Some('\'') {
            self.i += 3;
            self.out.push((Tok::Lit, self.line));
        } else {
            self.i += 1;
            while self.at(0).is_some_and(ident_char) {
                self.i += 1;
            }
        }
    }

    /// An identifier, a number, a raw identifier (r#type) or a prefixed
    /// string literal (b"…", r#"…"#).
    fn word(&mut self) {
        let start = self.i;
        while self.at(0).is_some_and(ident_char) {
            self.i += 1;
        }
        let word: String = self.c[start..self.i].iter().collect();
        let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
        let str_prefix = raw_prefix || matches!(word.as_str(), "b" | "c");
        if str_prefix && self.at(0) == Some('"') {
            self.string(0);
        } else if raw_prefix && self.at(0) == Some('#') {
            let hashes = (0..).take_while(|h| self.at(*h) == Some('#')).count();
            if self.at(hashes) == Some('"') {
                self.i += hashes;
                self.string(hashes);
            } else if word == "r" {
                self.i += 1;
                let s = self.i;
                while self.at(0).is_some_and(ident_char) {
                    self.i += 1;
                }
                self.out.push((Tok::Ident(self.c[s..self.i].iter().collect()), self.line));
            }
        } else if word.starts_with(|f: char| f.is_ascii_digit()) {
            self.out.push((Tok::Lit, self.line));
        } else {
            self.out.push((Tok::Ident(word), self.line));
        }
    }
}

// ---------------------------------------------------------------- parsing

/// A path as written (`crate::a::B`, `super::c`, `x::y` with `x` bound by
/// a `use`), in the module it was written in (a file module, or an inline
/// module inside it such as `tests`).
#[derive(Clone, Debug)]
struct RawPath {
    ctx: Vec<String>,
    segs: Vec<String>,
    line: usize,
}

/// A name a `use` brings into a module's scope.
#[derive(Clone, Debug)]
struct Binding {
    ctx: Vec<String>,
    name: String,
    segs: Vec<String>,
}

#[derive(Default)]
struct Parsed {
    /// `mod x;` at file level: child file modules.
    children: Vec<String>,
    /// `mod x { … }`, as paths relative to the file's module.
    inline: Vec<Vec<String>>,
    paths: Vec<RawPath>,
    bindings: Vec<Binding>,
}

/// Reads one file's module declarations, `use` trees and other paths.
fn parse(src: &str, module: &[String]) -> Parsed {
    let toks = lex(src);
    let mut p = Parsed::default();
    let mut depth = 0usize;
    // Inline modules open here: (name, brace depth inside them).
    let mut stack: Vec<(String, usize)> = Vec::new();
    let ctx_of = |stack: &[(String, usize)]| -> Vec<String> {
        module.iter().cloned().chain(stack.iter().map(|(n, _)| n.clone())).collect()
    };
    let ident = |i: usize| match toks.get(i) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                while stack.last().is_some_and(|(_, d)| *d > depth) {
                    stack.pop();
                }
            }
            Tok::Ident(w) if w == "mod" && toks.get(i + 1).is_some_and(|t| matches!(t.0, Tok::Ident(_))) => {
                let name = ident(i + 1).unwrap_or_default().to_string();
                match toks.get(i + 2).map(|t| &t.0) {
                    Some(Tok::Punct(';')) if stack.is_empty() => p.children.push(name),
                    Some(Tok::Punct('{')) => {
                        stack.push((name, depth + 1));
                        p.inline.push(ctx_of(&stack)[module.len()..].to_vec());
                    }
                    _ => {}
                }
                i += 2;
                continue;
            }
            Tok::Ident(w) if w == "use" => {
                i += 1;
                use_decl(&toks, &mut i, &ctx_of(&stack), &mut p);
                continue;
            }
            Tok::Ident(first)
                if !(i > 0 && matches!(toks[i - 1].0, Tok::PathSep))
                    && toks.get(i + 1).is_some_and(|t| t.0 == Tok::PathSep)
                    && ident(i + 2).is_some() =>
            {
                let line = toks[i].1;
                let mut segs = vec![first.clone()];
                i += 1;
                while let (Some(Tok::PathSep), Some(s)) = (toks.get(i).map(|t| &t.0), ident(i + 1)) {
                    segs.push(s.to_string());
                    i += 2;
                }
                p.paths.push(RawPath { ctx: ctx_of(&stack), segs, line });
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    p
}

/// A `use` declaration from `toks[*i]` (after `use`) to its `;`: each
/// leaf is a path, and binds a name in `ctx` (unless a glob or `_`).
fn use_decl(toks: &[(Tok, usize)], i: &mut usize, ctx: &[String], p: &mut Parsed) {
    let mut leaves = Vec::new();
    use_tree(toks, i, Vec::new(), &mut leaves);
    while *i < toks.len() && toks[*i].0 != Tok::Punct(';') {
        *i += 1;
    }
    for (mut segs, alias, line) in leaves {
        if segs.last().is_some_and(|s| s == "self") {
            segs.pop();
        }
        if segs.is_empty() {
            continue;
        }
        if let Some(name) = alias.or_else(|| segs.last().cloned()).filter(|n| n != "*" && n != "_") {
            p.bindings.push(Binding { ctx: ctx.to_vec(), name, segs: segs.clone() });
        }
        segs.retain(|s| s != "*");
        p.paths.push(RawPath { ctx: ctx.to_vec(), segs, line });
    }
}

/// One `use` tree from `toks[*i]`: its leaves as (path, alias, line); a
/// glob leaf ends in `*`. A leading `::` marks an extern path.
fn use_tree(
    toks: &[(Tok, usize)],
    i: &mut usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>, usize)>,
) {
    loop {
        let Some((tok, line)) = toks.get(*i) else { return };
        match tok {
            Tok::Punct('{') => {
                *i += 1;
                while let Some((t, _)) = toks.get(*i) {
                    match t {
                        Tok::Punct('}') => {
                            *i += 1;
                            break;
                        }
                        Tok::Punct(',') => *i += 1,
                        _ => use_tree(toks, i, prefix.clone(), out),
                    }
                }
                return;
            }
            Tok::Punct('*') => {
                prefix.push("*".into());
                out.push((prefix, None, *line));
                *i += 1;
                return;
            }
            Tok::PathSep if prefix.is_empty() => {
                prefix.push("::".into());
                *i += 1;
            }
            Tok::Ident(s) => {
                prefix.push(s.clone());
                *i += 1;
                match toks.get(*i).map(|t| &t.0) {
                    Some(Tok::PathSep) => *i += 1,
                    Some(Tok::Ident(kw)) if kw == "as" => {
                        let alias = match toks.get(*i + 1) {
                            Some((Tok::Ident(a), _)) => Some(a.clone()),
                            _ => None,
                        };
                        *i += 2;
                        out.push((prefix, alias, *line));
                        return;
                    }
                    _ => {
                        out.push((prefix, None, *line));
                        return;
                    }
                }
            }
            _ => {
                *i += 1;
                return;
            }
        }
    }
}

// ---------------------------------------------------------------- the graph

/// Imports between distinct file modules: from -> to -> the first (line, path as written).
type Edges = BTreeMap<Vec<String>, BTreeMap<Vec<String>, (usize, String)>>;

/// One crate's modules and the imports between its file modules.
struct Graph {
    /// File module path -> its file (relative to the repository).
    files: BTreeMap<Vec<String>, String>,
    /// Every module (file or inline) -> the file module it lives in.
    owner: BTreeMap<Vec<String>, Vec<String>>,
    bindings: BTreeMap<(Vec<String>, String), Vec<String>>,
    paths: Vec<(Vec<String>, RawPath)>,
    /// Modules declared (`mod x;`) whose file is missing.
    missing: Vec<String>,
}

impl Graph {
    /// Reads the crate whose root file is `root` from `files` (path ->
    /// text), following `mod x;` declarations.
    fn read(files: &BTreeMap<String, String>, root: &str) -> Option<Graph> {
        files.get(root)?;
        let mut g = Graph {
            files: BTreeMap::new(),
            owner: BTreeMap::new(),
            bindings: BTreeMap::new(),
            paths: Vec::new(),
            missing: Vec::new(),
        };
        let mut todo = vec![(Vec::<String>::new(), root.to_string())];
        while let Some((module, file)) = todo.pop() {
            let Some(src) = files.get(&file) else {
                g.missing.push(format!("{} (module {})", file, show(&module)));
                continue;
            };
            let parsed = parse(src, &module);
            // Children of lib.rs, main.rs and mod.rs sit next to it; of
            // a.rs, in a/.
            let dir = match Path::new(&file).file_name().and_then(|n| n.to_str()) {
                Some("lib.rs" | "main.rs" | "mod.rs") => Path::new(&file).parent().unwrap().to_path_buf(),
                _ => Path::new(&file).with_extension(""),
            };
            for child in &parsed.children {
                let flat = dir.join(format!("{child}.rs")).to_string_lossy().into_owned();
                let nested = dir.join(child).join("mod.rs").to_string_lossy().into_owned();
                let path = if files.contains_key(&flat) || !files.contains_key(&nested) { flat } else { nested };
                let mut m = module.clone();
                m.push(child.clone());
                todo.push((m, path));
            }
            g.owner.insert(module.clone(), module.clone());
            for inline in &parsed.inline {
                g.owner.insert(module.iter().chain(inline).cloned().collect(), module.clone());
            }
            for b in parsed.bindings {
                g.bindings.entry((b.ctx, b.name)).or_insert(b.segs);
            }
            g.paths.extend(parsed.paths.into_iter().map(|p| (module.clone(), p)));
            g.files.insert(module, file);
        }
        Some(g)
    }

    /// `segs` written in module `ctx`, as a path from the crate root; None
    /// for paths outside the crate (std, other crates, local types).
    fn absolute(&self, ctx: &[String], segs: &[String], hops: usize) -> Option<Vec<String>> {
        let first = segs.first()?;
        let (base, rest): (Vec<String>, &[String]) = match first.as_str() {
            "crate" => (Vec::new(), &segs[1..]),
            "self" => (ctx.to_vec(), &segs[1..]),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                (ctx[..ctx.len().checked_sub(ups)?].to_vec(), &segs[ups..])
            }
            "::" => return None,
            name => {
                let mut child = ctx.to_vec();
                child.push(name.to_string());
                if self.owner.contains_key(&child) {
                    (ctx.to_vec(), segs)
                } else {
                    let bound = self.bindings.get(&(ctx.to_vec(), name.to_string()))?;
                    if hops > 8 || bound.first() == Some(first) && bound.len() == 1 {
                        return None;
                    }
                    let mut base = self.absolute(ctx, bound, hops + 1)?;
                    base.extend(segs[1..].iter().cloned());
                    return Some(base);
                }
            }
        };
        Some(base.into_iter().chain(rest.iter().cloned()).collect())
    }

    /// The file module that defines what `abs` names: the deepest module
    /// on the path, followed through names bound by `use` (re-exports).
    fn defining_file(&self, abs: &[String], hops: usize) -> Vec<String> {
        let mut cur: Vec<String> = Vec::new();
        for (k, seg) in abs.iter().enumerate() {
            let mut next = cur.clone();
            next.push(seg.clone());
            if self.owner.contains_key(&next) {
                cur = next;
                continue;
            }
            if hops < 8 {
                if let Some(bound) = self.bindings.get(&(cur.clone(), seg.clone())) {
                    if let Some(mut target) = self.absolute(&cur, bound, 0) {
                        target.extend(abs[k + 1..].iter().cloned());
                        return self.defining_file(&target, hops + 1);
                    }
                }
            }
            break;
        }
        self.owner[&cur].clone()
    }

    /// The imports between distinct file modules.
    fn edges(&self) -> Edges {
        let mut edges = Edges::new();
        for m in self.files.keys() {
            edges.entry(m.clone()).or_default();
        }
        for (from, p) in &self.paths {
            let Some(abs) = self.absolute(&p.ctx, &p.segs, 0) else { continue };
            let to = self.defining_file(&abs, 0);
            if &to != from {
                let e = edges.entry(from.clone()).or_default();
                e.entry(to).or_insert((p.line, p.segs.join("::")));
            }
        }
        edges
    }
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate root".into()
    } else {
        m.join("::")
    }
}

// ---------------------------------------------------------------- checks

/// Every problem in the crates of `files` (path -> text), as readable lines.
fn check(files: &BTreeMap<String, String>, crates: &[CrateSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    for spec in crates {
        let Some(g) = Graph::read(files, spec.root) else {
            problems.push(format!("{}: root file {} not found", spec.name, spec.root));
            continue;
        };
        for m in &g.missing {
            problems.push(format!("{}: declared module has no file: {m}", spec.name));
        }
        let edges = g.edges();
        let at = |from: &Vec<String>, to: &Vec<String>| {
            let (line, path) = &edges[from][to];
            format!("{}:{line} `{path}`", g.files[from])
        };
        for cycle in cycles(&edges) {
            let mut text = format!(
                "{}: import cycle among {} modules ({}):",
                spec.name,
                cycle.members.len(),
                cycle.members.iter().map(|m| show(m)).collect::<Vec<_>>().join(", ")
            );
            for path in &cycle.paths {
                text += &format!("\n  {}:", path.iter().map(|m| show(m)).collect::<Vec<_>>().join(" -> "));
                for w in path.windows(2) {
                    text += &format!("\n    {} -> {}  ({})", show(&w[0]), show(&w[1]), at(&w[0], &w[1]));
                }
            }
            problems.push(text);
        }
        if spec.layers.is_empty() {
            continue;
        }
        let layer_of = |m: &Vec<String>| {
            spec.layers.iter().find(|l| {
                l.owns.iter().any(|o| o.split("::").eq(m.iter().take(o.split("::").count()).map(String::as_str)))
            })
        };
        for m in g.files.keys().filter(|m| !m.is_empty() && layer_of(m).is_none()) {
            problems.push(format!("{}: module {} ({}) is in no layer of the table", spec.name, show(m), g.files[m]));
        }
        for (from, tos) in &edges {
            for to in tos.keys() {
                if to.is_empty() {
                    problems.push(format!(
                        "{}: {} uses an item of the crate root ({}); the root only declares modules and re-exports",
                        spec.name,
                        show(from),
                        at(from, to)
                    ));
                    continue;
                }
                let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) else { continue };
                if lf.name == lt.name || lt.rank < lf.rank || from.is_empty() {
                    continue;
                }
                let why = if lt.rank == lf.rank {
                    "peer layers may not import each other"
                } else {
                    "a lower layer may not import a higher one"
                };
                problems.push(format!(
                    "{}: layer violation: {} (layer {}) imports {} (layer {}) at {}: {why}",
                    spec.name,
                    show(from),
                    lf.name,
                    show(to),
                    lt.name,
                    at(from, to)
                ));
            }
        }
    }
    problems
}

struct Cycle {
    members: Vec<Vec<String>>,
    /// Concrete cycles (first == last): the shortest through each member,
    /// unless the cycles before it already showed all its imports.
    paths: Vec<Vec<Vec<String>>>,
}

/// The strongly connected components of more than one module, each with
/// a shortest cycle through its first member.
fn cycles(edges: &Edges) -> Vec<Cycle> {
    // Kosaraju: finishing order on the graph, then components on the reverse.
    let nodes: Vec<&Vec<String>> = edges.keys().collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for n in &nodes {
        if seen.contains(*n) {
            continue;
        }
        // Iterative DFS: (node, its successors not yet visited).
        let mut stack: Vec<(&Vec<String>, Vec<&Vec<String>>)> = Vec::new();
        seen.insert((*n).clone());
        stack.push((n, edges[*n].keys().collect()));
        while let Some((node, succ)) = stack.last_mut() {
            match succ.pop() {
                Some(s) if edges.contains_key(s) && !seen.contains(s) => {
                    seen.insert(s.clone());
                    let next: Vec<&Vec<String>> = edges[s].keys().collect();
                    stack.push((s, next));
                }
                Some(_) => {}
                None => {
                    order.push(*node);
                    stack.pop();
                }
            }
        }
    }
    let mut reverse: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (from, tos) in edges {
        for to in tos.keys() {
            reverse.entry(to).or_default().push(from);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.iter().rev() {
        if assigned.contains(*n) {
            continue;
        }
        let mut comp = BTreeSet::new();
        let mut todo = vec![*n];
        assigned.insert((*n).clone());
        while let Some(x) = todo.pop() {
            comp.insert(x.clone());
            for p in reverse.get(x).into_iter().flatten() {
                if assigned.insert((*p).clone()) {
                    todo.push(p);
                }
            }
        }
        if comp.len() > 1 {
            let members: Vec<Vec<String>> = comp.into_iter().collect();
            let mut shown = BTreeSet::new();
            let mut paths = Vec::new();
            for m in &members {
                let path = shortest_cycle(edges, &members, m);
                let steps: Vec<_> = path.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
                if !steps.iter().all(|s| shown.contains(s)) {
                    shown.extend(steps);
                    paths.push(path);
                }
            }
            out.push(Cycle { members, paths });
        }
    }
    out.sort_by(|a, b| a.members.cmp(&b.members));
    out
}

/// Breadth-first, within the component, from `start` back to it.
fn shortest_cycle(edges: &Edges, members: &[Vec<String>], start: &Vec<String>) -> Vec<Vec<String>> {
    let inside: BTreeSet<&Vec<String>> = members.iter().collect();
    let mut prev: BTreeMap<&Vec<String>, &Vec<String>> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(x) = queue.pop_front() {
        for to in edges[x].keys().filter(|t| inside.contains(t)) {
            if to == start {
                let mut path = vec![start.clone(), x.clone()];
                let mut cur = x;
                while cur != start {
                    cur = prev[cur];
                    path.push(cur.clone());
                }
                path.reverse();
                return path;
            }
            if !prev.contains_key(to) {
                prev.insert(to, x);
                queue.push_back(to);
            }
        }
    }
    vec![start.clone()]
}

// ---------------------------------------------------------------- the tests

/// Every `.rs` file under the crates' source folders of `root`.
fn read_tree(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for dir in ["harness/src", "guest-image/agent/src", "guest-image/proto/src"] {
        let mut todo = vec![root.join(dir)];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())).flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    files.insert(rel, std::fs::read_to_string(&p).unwrap());
                }
            }
        }
    }
    files
}

#[test]
fn modules_import_downward_only_and_never_in_a_circle() {
    let root = std::env::var_os("HIDVM_LAYERS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf());
    let problems = check(&read_tree(&root), CRATES);
    assert!(
        problems.is_empty(),
        "{} problem(s) in the module graph of {} (the layer table is in harness/tests/layers.rs and docs/design.md):\n{}",
        problems.len(),
        root.display(),
        problems.join("\n")
    );
}

#[cfg(test)]
mod synthetic {
    //! The check against small made-up crates. A tree is written as one
    //! text: `//- <path>` starts each file.
    use super::*;

    const NO_LAYERS: &[CrateSpec] = &[CrateSpec { name: "t", root: "src/lib.rs", layers: &[] }];
    const LAYERED: &[CrateSpec] = &[CrateSpec {
        name: "t",
        root: "src/lib.rs",
        layers: &[Layer { rank: 0, name: "low", owns: &["low"] }, Layer { rank: 1, name: "high", owns: &["high"] }],
    }];
    /// Two layers of one rank.
    const PEERS: &[CrateSpec] = &[CrateSpec {
        name: "t",
        root: "src/lib.rs",
        layers: &[Layer { rank: 1, name: "left", owns: &["left"] }, Layer { rank: 1, name: "right", owns: &["right"] }],
    }];

    /// The problems `check` finds in the files of `fixture`.
    fn problems(fixture: &str, crates: &[CrateSpec]) -> Vec<String> {
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        let mut current = None;
        for line in fixture.lines() {
            if let Some(path) = line.strip_prefix("//- ") {
                current = Some(path.to_string());
                files.insert(path.to_string(), String::new());
            } else if let Some(text) = current.as_ref().and_then(|p| files.get_mut(p)) {
                text.push_str(line);
                text.push('\n');
            }
        }
        check(&files, crates)
    }

    #[test]
    fn a_clean_tree_passes() {
        let tree = r"
//- src/lib.rs
pub mod low; pub mod high;
pub use low::Thing;
//- src/low/mod.rs
pub mod a;
pub use a::Thing;
//- src/low/a.rs
pub struct Thing;
//- src/high/mod.rs
pub mod b;
//- src/high/b.rs
use crate::low::a::Thing;
use crate::Thing as T2;
fn f() { crate::low::Thing; }
";
        assert!(problems(tree, LAYERED).is_empty());
    }

    #[test]
    fn a_two_cycle_is_named_with_its_lines() {
        let tree = r"
//- src/lib.rs
mod a;
mod b;
//- src/a.rs
// crate::b::X in a comment does not count
use crate::b::X;
pub struct Y;
//- src/b.rs
pub struct X;
fn f() -> super::a::Y { todo!() }
";
        assert_eq!(
            problems(tree, NO_LAYERS),
            ["t: import cycle among 2 modules (a, b):\n  a -> b -> a:\n    a -> b  (src/a.rs:2 `crate::b::X`)\n    b -> a  (src/b.rs:2 `super::a::Y`)"]
        );
    }

    #[test]
    fn a_three_cycle_through_a_folder_is_found() {
        let tree = r"
//- src/lib.rs
pub mod q;
pub mod r;
//- src/q/mod.rs
pub mod s;
pub mod v;
//- src/q/s.rs
use super::v;
fn f() { v::go(); }
//- src/q/v.rs
pub fn go() { crate::r::run(); }
//- src/r.rs
use crate::q;
pub fn run() { let _ = q::s::f; }
";
        let found = problems(tree, NO_LAYERS).join("\n");
        let expected = [
            "t: import cycle among 3 modules (q::s, q::v, r):",
            "  q::s -> q::v -> r -> q::s:",
            "    q::s -> q::v  (src/q/s.rs:1 `super::v`)",
            "    q::v -> r  (src/q/v.rs:1 `crate::r::run`)",
            "    r -> q::s  (src/r.rs:2 `q::s::f`)",
        ];
        assert_eq!(found, expected.join("\n"));
    }

    #[test]
    fn a_lower_layer_importing_a_higher_one_fails() {
        let tree = r"
//- src/lib.rs
pub mod low;
pub mod high;
//- src/low/mod.rs
pub mod a;
//- src/low/a.rs


use crate::high::b::Report;
//- src/high/mod.rs
pub mod b;
//- src/high/b.rs
pub struct Report;
";
        let p = problems(tree, LAYERED);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p[0],
            "t: layer violation: low::a (layer low) imports high::b (layer high) at src/low/a.rs:3 `crate::high::b::Report`: a lower layer may not import a higher one"
        );
    }

    #[test]
    fn peers_and_unlisted_modules_and_root_items_fail() {
        let tree = r"
//- src/lib.rs
pub mod left;
pub mod right;
pub mod stray;
pub fn helper() {}
//- src/left.rs
fn f() { crate::right::g(); crate::helper(); }
//- src/right.rs
pub fn g() {}
//- src/stray.rs
";
        let all = problems(tree, PEERS).join("\n");
        for part in [
            "module stray (src/stray.rs) is in no layer",
            "left (layer left) imports right (layer right) at src/left.rs:1 `crate::right::g`: peer layers",
            "left uses an item of the crate root (src/left.rs:1 `crate::helper`)",
        ] {
            assert!(all.contains(part), "`{part}` missing from:\n{all}");
        }
    }

    #[test]
    fn grouped_and_nested_use_trees_are_each_an_import() {
        let tree = r"
//- src/lib.rs
pub mod low;
pub mod high;
//- src/low/mod.rs
pub mod a;
pub mod b;
//- src/low/a.rs
use crate::{
    low::b::{self, X as Y},
    high::h::*,
};
//- src/low/b.rs
pub struct X;
//- src/high/mod.rs
pub mod h;
//- src/high/h.rs
";
        let p = problems(tree, LAYERED);
        assert!(
            matches!(p.as_slice(), [one] if one.contains("low::a (layer low) imports high::h (layer high) at src/low/a.rs:3 `crate::high::h`")),
            "{p:?}"
        );
    }

    #[test]
    fn paths_in_strings_and_through_reexports_resolve_right() {
        let tree = r##"
//- src/lib.rs
pub mod low;
pub mod high;
pub use high::h::Big;
//- src/low/mod.rs
pub mod a;
//- src/low/a.rs
fn f() { let _ = "crate::high::h"; let _ = r#"crate::high::h"#; let _ = '"'; }
fn g<'a>(x: &'a crate::Big) {}
//- src/high/mod.rs
pub mod h;
//- src/high/h.rs
pub struct Big;
"##;
        let p = problems(tree, LAYERED);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].ends_with("at src/low/a.rs:2 `crate::Big`: a lower layer may not import a higher one"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn test_modules_and_super_globs_belong_to_their_file() {
        let tree = r"
//- src/lib.rs
pub mod low;
//- src/low/mod.rs
pub mod a;
pub mod b;
//- src/low/a.rs
pub fn f() {}
#[cfg(test)]
mod tests {
    use super::*;
    use super::super::b;
}
//- src/low/b.rs
pub fn g() {}
";
        assert_eq!(problems(tree, LAYERED), Vec::<String>::new());
    }
}

//! The modules of a crate import one another without a cycle (ARCHITECTURE.md,
//! "Invariants"). A cycle means two modules are one concern spread over two files: neither
//! can be read, tested or moved without the other, and the next change to one breaks
//! the other. This reads the sources (no server, no compiler): every `crate::…` and
//! `super::…` path outside comments, strings and `#[cfg(test)]` items is an edge from
//! the file's module to the deepest module the path names, and a strongly connected
//! set of more than one module is a cycle, reported with one concrete loop and the
//! line of each of its edges.
//!
//! A path to a name the crate root re-exports (`crate::Fault`, `pub use
//! fault::Fault;` in lib.rs) is an edge to the module that defines it. Not edges: paths
//! to what the root itself defines (`crate::Core`), a module's own submodules (`mod x;`,
//! `pub use x::Y;`: a module's children are its parts), and `self::` paths.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The crates checked: every crate of the workspace.
const CHECKED: [&str; 7] = [
    "users-domain",
    "users-db",
    "users-upstream",
    "users-mail",
    "users-core",
    "users-server",
    "users-testkit",
];

#[test]
fn no_crate_has_an_import_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut report = Vec::new();
    for name in CHECKED {
        let graph = Graph::of(
            &crates.join(name).join("src"),
            &format!("crates/{name}/src"),
        );
        for cycle in graph.cycles() {
            report.push(format!("{name}: {cycle}"));
        }
    }
    assert!(
        report.is_empty(),
        "import cycles between modules (move what both sides need into a module that \
         imports neither):\n{}",
        report.join("\n")
    );
}

/// The check itself, on a made-up crate: it finds the cycles of code (through `super`,
/// use-trees and the root's re-exports), and none in comments, strings, doc links or
/// test items.
#[test]
fn the_check_finds_cycles_in_code_only() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let files = [
        (
            "lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub mod f;\npub mod g;\n\
             pub use a::A;\npub use f::{F, F as Alias};\npub struct Root;\n",
        ),
        (
            "a.rs",
            "use crate::{b::B, Root};\npub struct A;\nfn f(_: &crate::c::C) {}\n",
        ),
        // f → g, and g → f through the root's re-export
        ("f.rs", "pub struct F;\nfn f(_: crate::g::G) {}\n"),
        (
            "g.rs",
            "pub struct G;\nfn g(_: crate::F, _: crate::Root) {}\n",
        ),
        (
            "b.rs",
            "pub struct B;\nfn g() { let _ = super::d::inner::deep(); }\n",
        ),
        // d/mod.rs and its child: the child's `super` is d
        ("d/mod.rs", "pub mod inner;\npub use inner::deep;\n"),
        (
            "d/inner.rs",
            "pub fn deep() { let _ = super::super::a::A; }\n\
             /// see [`crate::c`]\nconst S: &str = \"crate::c::C\";\n",
        ),
        (
            "c.rs",
            "pub struct C;\n// crate::a::A\n/* crate::b::B */\nconst L: char = '\"';\nconst Q: [char; 2] = ['\\'', '\\\\'];\n\
             fn l<'a>(x: &'a str) -> &'a str { x }\n\
             #[cfg(test)]\nmod tests {\n    use crate::a::A;\n    fn t() { let _ = '}'; }\n}\n\
             #[cfg(test)]\nuse crate::b::B;\n",
        ),
    ];
    for (path, text) in files {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let graph = Graph::of(src, "made-up");
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(
        cycles[0].starts_with("a → b → d::inner → a "),
        "{}",
        cycles[0]
    );
    assert!(cycles[1].starts_with("f → g → f "), "{}", cycles[1]);
    // a → c is an edge, c → anything is not
    assert!(graph.edges["a"].contains_key("c"));
    assert!(!graph.edges.contains_key("c"), "{:?}", graph.edges.get("c"));
}

/// Module → module it imports → where (file and line of the first such path).
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, String>>,
    modules: BTreeSet<String>,
}

/// What `crate::…` and `super::…` paths name: the modules, and the names the crate root
/// re-exports from them.
struct Names {
    modules: BTreeSet<String>,
    /// Name re-exported by the root → the module it comes from.
    root_exports: BTreeMap<String, String>,
}

impl Graph {
    /// The modules of the crate whose sources are `src`; `label` names it in reports.
    fn of(src: &Path, label: &str) -> Graph {
        let mut files = Vec::new();
        collect(src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
        let mut names = Names {
            modules,
            root_exports: BTreeMap::new(),
        };
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let code_of = |file: &PathBuf| {
            let text = std::fs::read_to_string(file).unwrap();
            without_tests(&code_only(&text))
        };
        // lib.rs, and main.rs for a crate that has both
        for file in files.iter().filter(|f| module_of(src, f).is_empty()) {
            let exports = root_exports(&code_of(file), &names.modules);
            names.root_exports.extend(exports);
        }
        for file in &files {
            let from = module_of(src, file);
            let code = code_of(file);
            for (line, path) in paths(&code) {
                let Some(to) = resolve(&from, &path, &names) else {
                    continue;
                };
                if to == from || to.is_empty() || from.is_empty() {
                    continue;
                }
                let at = format!(
                    "{label}/{}:{line}",
                    file.strip_prefix(src).unwrap().display()
                );
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(at);
            }
        }
        Graph {
            edges,
            modules: names.modules,
        }
    }

    /// Every strongly connected set of more than one module, as one loop through it:
    /// `a → b → a (a → b at file:line, …)`.
    fn cycles(&self) -> Vec<String> {
        strongly_connected(&self.modules, &self.edges)
            .into_iter()
            .filter(|set| set.len() > 1)
            .map(|set| self.describe(&set))
            .collect()
    }

    /// The shortest loop from the set's first module back to it, inside the set.
    fn describe(&self, set: &BTreeSet<String>) -> String {
        let start = set.iter().next().unwrap();
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start.as_str()]);
        let mut last = None;
        'search: while let Some(at) = queue.pop_front() {
            for next in self.edges.get(at).into_iter().flat_map(|e| e.keys()) {
                if !set.contains(next) {
                    continue;
                }
                if next == start {
                    last = Some(at);
                    break 'search;
                }
                if !previous.contains_key(next.as_str()) {
                    previous.insert(next, at);
                    queue.push_back(next);
                }
            }
        }
        // back from the last module before `start` to `start`, then turned around
        let mut between = Vec::new();
        let mut at = last.unwrap();
        while at != start {
            between.push(at);
            at = previous[at];
        }
        between.reverse();
        let mut walk = vec![start.as_str()];
        walk.extend(between);
        walk.push(start);
        let hops: Vec<String> = walk
            .windows(2)
            .map(|w| format!("{} → {} at {}", w[0], w[1], self.edges[w[0]][w[1]]))
            .collect();
        let members: Vec<&str> = set.iter().map(String::as_str).collect();
        format!(
            "{} ({}; all of {{{}}})",
            walk.join(" → "),
            hops.join(", "),
            members.join(", ")
        )
    }
}

pub(crate) fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `flows/session.rs` → `flows::session`; `flows/mod.rs` → `flows`; `lib.rs` → `` (the root).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts.join("::")
}

/// What the crate root (`code`) re-exports with `pub use module::…`: name → module.
fn root_exports(code: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let tokens = tokenize(code);
    let mut exports = BTreeMap::new();
    for i in 0..tokens.len() {
        if tokens[i].1 != "use" || i == 0 || !matches!(tokens[i - 1].1.as_str(), "pub" | ")") {
            continue;
        }
        for path in use_tree(&tokens, i + 1).0 {
            let path: Vec<&str> = path
                .iter()
                .map(String::as_str)
                .filter(|s| *s != "self" && *s != "crate")
                .collect();
            let Some((name, module)) = path.split_last() else {
                continue;
            };
            let found = (1..=module.len())
                .rev()
                .map(|n| module[..n].join("::"))
                .find(|candidate| modules.contains(candidate));
            if let Some(module) = found {
                exports.insert((*name).to_owned(), module);
            }
        }
    }
    exports
}

/// The deepest module `path` (as written in `from`) names; the root (``) for what the
/// root itself defines; `None` for a path that leaves the crate.
fn resolve(from: &str, path: &[String], names: &Names) -> Option<String> {
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        // `super` is the parent of the file's module (of `a` for `a/b.rs`, of the
        // root for `a/mod.rs`), each further `super` one more up
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    let mut full: Vec<&str> = base;
    full.extend(rest.iter().map(String::as_str).filter(|s| *s != "self"));
    let module = (1..=full.len())
        .rev()
        .map(|n| full[..n].join("::"))
        .find(|candidate| names.modules.contains(candidate));
    match (module, full.first()) {
        (Some(module), _) => Some(module),
        (None, Some(name)) => Some(names.root_exports.get(*name).cloned().unwrap_or_default()),
        (None, None) => Some(String::new()),
    }
}

/// `text` with comments, string and character literals blanked out (newlines kept, so
/// lines still count).
pub(crate) fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        match not_code_end(&chars, i) {
            Some(end) => {
                let end = end.min(chars.len());
                out.extend(
                    chars[i..end]
                        .iter()
                        .map(|&c| if c == '\n' { '\n' } else { ' ' }),
                );
                i = end;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Where the comment or literal that starts at `i` ends (the index after it); `None`
/// when code starts there (a lifetime `'a` included).
fn not_code_end(chars: &[char], i: usize) -> Option<usize> {
    let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let at = |j: usize| chars.get(j).copied();
    match (chars[i], at(i + 1)) {
        ('/', Some('/')) => Some(
            (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len()),
        ),
        ('/', Some('*')) => Some(block_comment_end(chars, i)),
        ('"', _) => Some(string_end(chars, i + 1)),
        ('b', Some('"')) if !after_ident => Some(string_end(chars, i + 2)),
        // a character literal ('x', '\n', '\u{1F600}'), or a lifetime ('a)
        ('\'', Some('\\')) => (i + 3..chars.len())
            .find(|&j| chars[j] == '\'')
            .map(|j| j + 1),
        ('\'', _) => (at(i + 2) == Some('\'')).then_some(i + 3),
        _ if !after_ident => raw_string_start(chars, i).map(|(hashes, open)| {
            (open + 1..chars.len())
                .find(|&j| chars[j] == '"' && (1..=hashes).all(|h| at(j + h) == Some('#')))
                .map_or(chars.len(), |j| j + 1 + hashes)
        }),
        _ => None,
    }
}

/// The end of the (nested) block comment starting at `i`.
fn block_comment_end(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    i
}

/// The end of a string whose text starts at `i`: after its closing, unescaped quote.
fn string_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// At a raw string (`r"`, `r#"`, `br##"`): its number of `#` and the index of its `"`.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some((hashes, j))
}

/// `code` without the items marked `#[cfg(test)]` (a test module, a test-only
/// function or import): what they import is not the crate's.
pub(crate) fn without_tests(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    for span in test_items(code) {
        for c in &mut out[span] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    }
    out.into_iter().collect()
}

/// Where the items marked `#[cfg(test)]` are in `code` (comments and literals blanked):
/// character ranges from the mark through the item's `;` or closing brace.
pub(crate) fn test_items(code: &str) -> Vec<std::ops::Range<usize>> {
    const MARK: &str = "#[cfg(test)]";
    let chars: Vec<char> = code.chars().collect();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = code_index(&chars, MARK, from) {
        let mut i = found + MARK.chars().count();
        // further attributes of the same item
        loop {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if chars.get(i) == Some(&'#') {
                let mut depth = 0;
                while i < chars.len() {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            } else {
                break;
            }
        }
        // the item: up to its `;`, or through its braces
        let mut end = i;
        while end < chars.len() && chars[end] != ';' && chars[end] != '{' {
            end += 1;
        }
        if chars.get(end) == Some(&'{') {
            end = matching_brace(&chars, end);
        }
        spans.push(found..(end + 1).min(chars.len()));
        from = end + 1;
    }
    spans
}

/// The index of the `}` that closes the `{` at `open` (the end of `chars` without one).
pub(crate) fn matching_brace(chars: &[char], open: usize) -> usize {
    let mut depth = 0;
    let mut end = open;
    while end < chars.len() {
        match chars[end] {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        end += 1;
    }
    end
}

fn code_index(chars: &[char], needle: &str, from: usize) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..chars.len().saturating_sub(needle.len() - 1)).find(|&i| chars[i..].starts_with(&needle))
}

/// Every `crate::…` and `super::…` path of `code`, with its line; a use-tree
/// (`crate::{a, b::{c, d}}`) gives one path per leaf.
fn paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let tokens = tokenize(code);
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (line, token) = &tokens[i];
        let starts = (token == "crate" || token == "super")
            && tokens.get(i + 1).is_some_and(|(_, t)| t == "::")
            && !(i > 0 && tokens[i - 1].1 == "::");
        if !starts {
            i += 1;
            continue;
        }
        let (trees, next) = use_tree(&tokens, i);
        for path in trees {
            found.push((*line, path));
        }
        i = next.max(i + 1);
    }
    found
}

/// The paths of the use-tree starting at `tokens[i]`, and the index after it.
fn use_tree(tokens: &[(usize, String)], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        match tokens.get(i).map(|(_, t)| t.as_str()) {
            Some("{") => {
                let mut all = Vec::new();
                i += 1;
                while let Some((_, t)) = tokens.get(i) {
                    match t.as_str() {
                        "}" => {
                            i += 1;
                            break;
                        }
                        "," => i += 1,
                        _ => {
                            let (inner, next) = use_tree(tokens, i);
                            for rest in inner {
                                let mut path = prefix.clone();
                                path.extend(rest);
                                all.push(path);
                            }
                            i = next.max(i + 1);
                        }
                    }
                }
                return (all, i);
            }
            Some(t) if t.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                prefix.push(t.to_owned());
                i += 1;
                if tokens.get(i).is_some_and(|(_, t)| t == "::") {
                    i += 1;
                } else {
                    // `Y as Z`: the alias names nothing of the crate
                    if tokens.get(i).is_some_and(|(_, t)| t == "as") {
                        i += 2;
                    }
                    return (vec![prefix], i);
                }
            }
            // `*`, or the end of the path
            _ => return (vec![prefix], i),
        }
    }
}

/// Identifiers, `::`, and single punctuation characters, each with its line.
fn tokenize(code: &str) -> Vec<(usize, String)> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((line, chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push((line, "::".to_owned()));
            i += 2;
        } else {
            tokens.push((line, c.to_string()));
            i += 1;
        }
    }
    tokens
}

/// Tarjan's strongly connected components.
fn strongly_connected(
    nodes: &BTreeSet<String>,
    edges: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                set.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            s.found.push(set);
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

//! Structural checks: the architecture must not drift from its documentation.
//!
//! 1. **The crate graph matches the table** at the top of
//!    `docs/architecture.md`. Every workspace package has a row, every row
//!    names a real package, and each row's "depends on" cell lists exactly the
//!    workspace packages in that crate's `[dependencies]` (dev- and
//!    build-dependencies do not count), as `cargo metadata` reports them.
//!    The graph has no cycle, only `nemesis` (a test tool) depends on the
//!    harness `testkit`, and `broker` links neither `yak-client` nor `yak-ui`,
//!    not even through another workspace crate.
//! 2. **No import cycle among a crate's top-level modules.** In every crate
//!    with a `src/lib.rs`, a top-level module `a` uses `b` when a file of `a`
//!    names `crate::b` (or `b` inside `use crate::{...}`); unit tests
//!    (`#[cfg(test)] mod tests`) and comments do not count. These uses must
//!    not form a cycle, so each crate's modules stay layered.
//!
//! Fixing a failure: the message lists each difference or cycle.
//! - A dependency added or removed on purpose: update the row (and the prose
//!   if the layering changed) in `docs/architecture.md`. A new crate: add a
//!   row. Otherwise the `Cargo.toml` is what is wrong.
//! - A forbidden dependency (`testkit` outside `nemesis`, client or UI code
//!   under `broker`): move the shared code down into a crate both can use
//!   (`yak-web`, `yak-protocol`), or move the dependency to
//!   `[dev-dependencies]`.
//! - A module cycle `a -> b -> a`: each edge is printed with the file and line
//!   that makes it. Move what both need into a lower module, or pass it in
//!   (a trait, a callback, a plain value) instead of reaching back up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// A directed graph: node → the nodes it points to.
type Graph = BTreeMap<String, BTreeSet<String>>;

// ---------------------------------------------------------------------------
// The workspace, as `cargo metadata` sees it
// ---------------------------------------------------------------------------

struct Package {
    name: String,
    /// The package's directory relative to the workspace root (`broker`).
    dir: String,
    /// Its normal dependencies that are workspace packages.
    deps: BTreeSet<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_path_buf()
}

/// The workspace packages by name (`cargo metadata` runs once per process).
fn packages() -> &'static BTreeMap<String, Package> {
    static PACKAGES: OnceLock<BTreeMap<String, Package>> = OnceLock::new();
    PACKAGES.get_or_init(load_packages)
}

fn load_packages() -> BTreeMap<String, Package> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let root = Path::new(metadata["workspace_root"].as_str().expect("workspace_root"));
    let raw = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = raw.iter().filter_map(|p| p["name"].as_str()).collect();

    let mut packages = BTreeMap::new();
    for p in raw {
        let name = p["name"].as_str().expect("package name").to_string();
        let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
        let dir = manifest
            .parent()
            .and_then(|d| d.strip_prefix(root).ok())
            .expect("package inside the workspace root")
            .to_string_lossy()
            .replace('\\', "/");
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| names.contains(d))
            .map(str::to_string)
            .collect();
        packages.insert(name.clone(), Package { name, dir, deps });
    }
    packages
}

fn crate_graph() -> Graph {
    packages()
        .values()
        .map(|p| (p.name.clone(), p.deps.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// Check 1: the crate graph and the table of docs/architecture.md
// ---------------------------------------------------------------------------

/// One row of the crate table.
#[derive(Debug, PartialEq)]
struct Row {
    /// 1-based line in the markdown file.
    line: usize,
    /// Each directory (`broker`, no trailing slash) with the package name the
    /// row gives for it, if it gives one.
    dirs: Vec<(String, Option<String>)>,
    /// The package names of the last cell.
    deps: BTreeSet<String>,
    /// What is wrong with the row's syntax, if anything.
    problem: Option<String>,
}

/// The texts between backticks.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Parses the first markdown table of `md` (header and separator skipped).
fn parse_crate_table(md: &str) -> Vec<Row> {
    let lines = md
        .lines()
        .enumerate()
        .skip_while(|(_, l)| !l.trim_start().starts_with('|'))
        .take_while(|(_, l)| l.trim_start().starts_with('|'));
    let mut rows = Vec::new();
    for (index, line) in lines.skip(2) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        let (first, last) = (cells[0], cells[cells.len() - 1]);
        let mut problem = None;

        let mut dirs: Vec<(String, Option<String>)> = Vec::new();
        for item in backticked(first) {
            match item.strip_suffix('/') {
                Some(dir) => dirs.push((dir.to_string(), None)),
                None => match dirs.last_mut() {
                    Some((_, name @ None)) => *name = Some(item),
                    _ => problem = Some(format!("`{item}` does not follow a `dir/`")),
                },
            }
        }
        if dirs.is_empty() {
            problem = Some("the first cell names no `dir/`".to_string());
        }

        let deps: BTreeSet<String> = backticked(last).into_iter().collect();
        if deps.is_empty() && !matches!(last.trim(), "—" | "-" | "") {
            problem = Some(format!(
                "the last cell `{}` is neither `—` nor package names in backticks",
                last.trim()
            ));
        }
        rows.push(Row {
            line: index + 1,
            dirs,
            deps,
            problem,
        });
    }
    rows
}

#[test]
fn crate_graph_matches_the_table_in_docs() {
    let packages = packages();
    let path = workspace_root().join("docs/architecture.md");
    let md = std::fs::read_to_string(&path).expect("read docs/architecture.md");
    let rows = parse_crate_table(&md);
    assert!(!rows.is_empty(), "no crate table in {}", path.display());

    let by_dir: BTreeMap<&str, &Package> = packages.values().map(|p| (p.dir.as_str(), p)).collect();
    let mut problems = Vec::new();
    // package → (line of its row, the dependencies the row lists)
    let mut table: BTreeMap<&str, (usize, &BTreeSet<String>)> = BTreeMap::new();
    for row in &rows {
        let at = format!("docs/architecture.md:{}", row.line);
        if let Some(problem) = &row.problem {
            problems.push(format!("{at}: {problem}"));
        }
        for (dir, name) in &row.dirs {
            let Some(package) = by_dir.get(dir.as_str()) else {
                problems.push(format!("{at}: `{dir}/` holds no workspace package"));
                continue;
            };
            if let Some(name) = name.as_ref().filter(|n| **n != package.name) {
                problems.push(format!(
                    "{at}: the row calls `{dir}/` `{name}`, its package is `{}`",
                    package.name
                ));
            }
            if let Some((first, _)) = table.insert(&package.name, (row.line, &row.deps)) {
                problems.push(format!(
                    "{at}: `{}` already has a row (line {first})",
                    package.name
                ));
            }
        }
    }

    for package in packages.values() {
        let name = &package.name;
        let Some((line, listed)) = table.get(name.as_str()) else {
            problems.push(format!(
                "{name}: no row in the crate table (directory `{}/`)",
                package.dir
            ));
            continue;
        };
        for dep in package.deps.difference(listed) {
            problems.push(format!(
                "{name}: depends on `{dep}` in Cargo.toml, missing from the table (line {line})"
            ));
        }
        for dep in listed.difference(&package.deps) {
            if packages.contains_key(dep) {
                problems.push(format!(
                    "{name}: the table (line {line}) lists `{dep}`, missing from Cargo.toml [dependencies]"
                ));
            } else {
                problems.push(format!(
                    "{name}: the table (line {line}) lists `{dep}`, which is not a workspace package"
                ));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "the crate table of docs/architecture.md and the Cargo.toml files differ:\n  {}\n\
         Update the table (or the Cargo.toml) so that they agree.",
        problems.join("\n  ")
    );
}

#[test]
fn crate_graph_has_no_cycle() {
    let cycles = find_cycles(&crate_graph());
    let shown: Vec<String> = cycles.iter().map(|c| c.join(" -> ")).collect();
    assert!(
        cycles.is_empty(),
        "workspace crates depend on each other in a cycle:\n  {}",
        shown.join("\n  ")
    );
}

#[test]
fn only_nemesis_depends_on_testkit() {
    let offenders: Vec<&str> = packages()
        .values()
        .filter(|p| p.deps.contains("testkit") && p.name != "nemesis")
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        offenders.is_empty(),
        "testkit is a test harness, a [dev-dependencies] entry; \
         these crates have it under [dependencies]: {offenders:?}"
    );
}

#[test]
fn broker_links_no_client_or_ui_code() {
    let graph = crate_graph();
    assert!(graph.contains_key("broker"), "no `broker` package");
    let paths: Vec<String> = ["yak-client", "yak-ui"]
        .into_iter()
        .filter_map(|forbidden| dependency_path(&graph, "broker", forbidden))
        .map(|path| path.join(" -> "))
        .collect();
    assert!(
        paths.is_empty(),
        "the node must not link client or UI code (what servers share belongs in \
         `yak-web`), but:\n  {}",
        paths.join("\n  ")
    );
}

/// A path of edges from `from` to `to`, if there is one (depth-first).
fn dependency_path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    fn walk(graph: &Graph, at: &str, to: &str, seen: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if at == to {
            return Some(vec![to.to_string()]);
        }
        if !seen.insert(at.to_string()) {
            return None;
        }
        for next in graph.get(at).into_iter().flatten() {
            if let Some(mut rest) = walk(graph, next, to, seen) {
                rest.insert(0, at.to_string());
                return Some(rest);
            }
        }
        None
    }
    walk(graph, from, to, &mut BTreeSet::new())
}

// ---------------------------------------------------------------------------
// The cycle finder
// ---------------------------------------------------------------------------

/// The cycles closed by the back edges of one depth-first search, each as
/// its nodes with the first repeated at the end (`a -> b -> a`). Empty
/// exactly when the graph is acyclic: every cycle contains a back edge.
fn find_cycles(graph: &Graph) -> Vec<Vec<String>> {
    #[derive(PartialEq)]
    enum State {
        OnPath,
        Done,
    }

    fn visit<'g>(
        node: &'g str,
        graph: &'g Graph,
        state: &mut BTreeMap<&'g str, State>,
        path: &mut Vec<&'g str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        state.insert(node, State::OnPath);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                None => visit(next, graph, state, path, cycles),
                Some(State::OnPath) => {
                    let start = path.iter().position(|n| n == next).expect("on the path");
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|n| n.to_string()).collect();
                    cycle.push(next.clone());
                    cycles.push(cycle);
                }
                Some(State::Done) => {}
            }
        }
        path.pop();
        state.insert(node, State::Done);
    }

    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str()) {
            visit(node, graph, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

// ---------------------------------------------------------------------------
// Check 2: module imports inside each crate
// ---------------------------------------------------------------------------

/// Blanks out comments (doc comments too) and the contents of string and
/// character literals, keeping every newline so line numbers stay right.
fn strip_comments(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let is_ident = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    // Drops chars[from..to], keeping its newlines.
    let skip = |out: &mut String, from: usize, to: usize| {
        out.extend(
            chars[from..to.min(chars.len())]
                .iter()
                .filter(|c| **c == '\n'),
        );
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let (start, mut depth) = (i, 0);
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            skip(&mut out, start, i);
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && (!is_ident(i.checked_sub(1).and_then(|p| chars.get(p)))
                || (chars[i - 1] == 'b' && !is_ident(i.checked_sub(2).and_then(|p| chars.get(p)))))
            && chars[i + 1..].iter().find(|c| **c != '#') == Some(&'"')
        {
            // A raw string: r"…", r#"…"#, br"…".
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let body = i + 2 + hashes;
            let mut end = body;
            while end < chars.len()
                && !(chars[end] == '"'
                    && chars[end + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|c| **c == '#')
                        .count()
                        == hashes)
            {
                end += 1;
            }
            out.push_str("r\"");
            skip(&mut out, body, end);
            out.push('"');
            i = end + 1 + hashes;
        } else if c == '"' {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            out.push('"');
            skip(&mut out, start, i);
            out.push('"');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{1F600}'.
            let end = (i + 3..chars.len())
                .find(|&j| chars[j] == '\'')
                .unwrap_or(chars.len());
            out.push_str("' '");
            i = end + 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
        } else {
            // Code, or the quote of a lifetime.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Cuts `src` at a `#[cfg(test)]` line followed by `mod tests` (other
/// attribute lines may come between): unit tests may use any module.
fn cut_unit_tests(src: &str) -> &str {
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let mut offset = 0;
    for (n, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]" {
            let item = lines[n + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("#["));
            let item = item.map(|l| l.strip_prefix("pub ").unwrap_or(l));
            if item.is_some_and(|l| l.starts_with("mod tests")) {
                return &src[..offset];
            }
        }
        offset += line.len();
    }
    src
}

/// The first path segments named after `crate::` in cleaned source, each
/// with its 1-based line: `crate::a::b` gives `a`; `use crate::{a::X, b,
/// c::{d, e}}` gives `a`, `b`, `c`.
fn crate_references(clean: &str) -> Vec<(String, usize)> {
    let bytes = clean.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    // Reads the identifier at `i`, if one starts there.
    let ident_at = |i: usize| {
        let len = bytes[i..].iter().take_while(|b| is_ident(**b)).count();
        (len > 0).then(|| clean[i..i + len].to_string())
    };
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let line_of = |i: usize| 1 + bytes[..i].iter().filter(|b| **b == b'\n').count();

    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = clean[from..].find("crate::").map(|p| p + from) {
        from = at + "crate::".len();
        if at > 0 && is_ident(bytes[at - 1]) {
            continue; // `my_crate::`, not `crate::`
        }
        let i = skip_space(from);
        if i >= bytes.len() {
            break;
        }
        if bytes[i] != b'{' {
            if let Some(name) = ident_at(i) {
                found.push((name, line_of(i)));
            }
            continue;
        }
        // A group: the first identifier of each item at depth 1.
        let (mut depth, mut item_start, mut j) = (0, true, i);
        while j < bytes.len() {
            match bytes[j] {
                b'{' => {
                    depth += 1;
                    item_start = depth == 1;
                }
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b',' if depth == 1 => item_start = true,
                b if b.is_ascii_whitespace() => {}
                _ if depth == 1 && item_start => {
                    item_start = false;
                    if let Some(name) = ident_at(j) {
                        found.push((name.clone(), line_of(j)));
                        j += name.len();
                        continue;
                    }
                }
                _ if depth == 1 => item_start = false,
                _ => {}
            }
            j += 1;
        }
        from = j;
    }
    found
}

/// The modules `mod name` declares in (cleaned) source.
fn declared_modules(clean: &str) -> BTreeSet<String> {
    clean
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "mod")?;
            let name = words.next()?.trim_end_matches([';', '{']);
            Some(name.to_string())
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The `.rs` files of `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A crate's top-level module graph, and for each edge where it comes from.
struct ModuleGraph {
    modules: BTreeSet<String>,
    edges: Graph,
    /// (from, to) → the first `path:line` that uses `to` in `from`.
    evidence: BTreeMap<(String, String), String>,
}

impl ModuleGraph {
    fn edge_count(&self) -> usize {
        self.edges.values().map(BTreeSet::len).sum()
    }
}

/// The top-level modules of the crate in `dir` (declared in `src/lib.rs`,
/// with a `src/<m>.rs` or `src/<m>/`), and which uses which.
fn module_graph(dir: &Path) -> ModuleGraph {
    let src = dir.join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    let declared = declared_modules(cut_unit_tests(&strip_comments(&lib)));
    let modules: BTreeSet<String> = declared
        .into_iter()
        .filter(|m| src.join(format!("{m}.rs")).is_file() || src.join(m).is_dir())
        .collect();

    let root = workspace_root();
    let mut edges = Graph::new();
    let mut evidence = BTreeMap::new();
    for module in &modules {
        edges.insert(module.clone(), BTreeSet::new());
        let mut files = rust_files(&src.join(module));
        files.insert(0, src.join(format!("{module}.rs")));
        for file in files.iter().filter(|f| f.is_file()) {
            let text = std::fs::read_to_string(file).expect("read a source file");
            let clean = strip_comments(&text);
            for (used, line) in crate_references(cut_unit_tests(&clean)) {
                if used == *module || !modules.contains(&used) {
                    continue;
                }
                let shown = file.strip_prefix(&root).unwrap_or(file).display();
                evidence
                    .entry((module.clone(), used.clone()))
                    .or_insert_with(|| format!("{shown}:{line}"));
                edges.entry(module.clone()).or_default().insert(used);
            }
        }
    }
    ModuleGraph {
        modules,
        edges,
        evidence,
    }
}

/// The packages with a library, with their module graphs.
fn library_module_graphs() -> Vec<(&'static Package, ModuleGraph)> {
    let root = workspace_root();
    packages()
        .values()
        .filter(|p| root.join(&p.dir).join("src/lib.rs").is_file())
        .map(|p| (p, module_graph(&root.join(&p.dir))))
        .collect()
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let mut report = Vec::new();
    let mut failing = Vec::new();
    for (package, graph) in library_module_graphs() {
        let cycles = find_cycles(&graph.edges);
        eprintln!(
            "{}: {} top-level modules, {} edges, {}",
            package.name,
            graph.modules.len(),
            graph.edge_count(),
            if cycles.is_empty() {
                "no cycle".to_string()
            } else {
                format!("{} cycle(s)", cycles.len())
            }
        );
        if cycles.is_empty() {
            continue;
        }
        failing.push(package.name.as_str());
        for cycle in cycles {
            report.push(format!("{}: {}", package.name, cycle.join(" -> ")));
            for pair in cycle.windows(2) {
                let key = (pair[0].clone(), pair[1].clone());
                report.push(format!(
                    "      {} -> {}  ({})",
                    pair[0], pair[1], graph.evidence[&key]
                ));
            }
        }
    }
    assert!(
        failing.is_empty(),
        "top-level modules import each other in a cycle in {failing:?} \
         (each edge with the first line that makes it):\n{}",
        report.join("\n")
    );
}

#[test]
fn module_scan_sees_the_broker_imports() {
    let root = workspace_root();
    let broker = packages().get("broker").expect("a `broker` package");
    let graph = module_graph(&root.join(&broker.dir));
    assert!(
        graph.modules.len() > 5 && graph.edge_count() > 10,
        "the module scan found {} modules and {} edges in broker: the parser is broken",
        graph.modules.len(),
        graph.edge_count()
    );
}

// ---------------------------------------------------------------------------
// Tests of the parsers and the cycle finder, so the checks cannot pass by
// finding nothing
// ---------------------------------------------------------------------------

const SAMPLE: &str = r##"//! Uses crate::doc, which must not count.
use std::collections::BTreeMap;
use crate::{a::B, c, nested::{x::Y, z}, self as me};
pub use crate::{
    // crate::commented must not count
    d::{E, F},
    g,
};
use my_crate::h;

/* crate::block /* nested */ still a comment crate::block2 */
fn f<'a>(s: &'a str) -> char {
    let url = "http://example.invalid/crate::in_string";
    let raw = r#"crate::in_raw_string "quoted" "#;
    crate::i::call(url, '"');
    $crate::j!();
    '\''
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::in_tests;
}
"##;

#[test]
fn parser_finds_grouped_and_inline_references_only() {
    let clean = strip_comments(SAMPLE);
    let found: Vec<String> = crate_references(cut_unit_tests(&clean))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        found,
        ["a", "c", "nested", "self", "d", "g", "i", "j"],
        "cleaned source:\n{clean}"
    );
}

#[test]
fn parser_reports_lines() {
    let clean = strip_comments(SAMPLE);
    let lines: BTreeMap<String, usize> = crate_references(&clean).into_iter().collect();
    assert_eq!(lines["a"], 3);
    assert_eq!(lines["g"], 7);
    assert_eq!(lines["i"], 15);
    assert_eq!(lines["in_tests"], 23);
}

#[test]
fn declared_modules_ignore_comments() {
    let lib = "//! mod not_me;\npub mod a;\nmod b;\npub(crate) mod c {\n}\n// mod d;\n";
    let declared = declared_modules(&strip_comments(lib));
    assert_eq!(declared, BTreeSet::from(["a", "b", "c"].map(String::from)));
}

#[test]
fn cycle_finder_reports_the_cycle() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (from, to) in edges {
            g.entry(from.to_string())
                .or_default()
                .insert(to.to_string());
        }
        g
    };
    let acyclic = graph(&[("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]);
    assert!(find_cycles(&acyclic).is_empty());

    let cyclic = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    assert_eq!(find_cycles(&cyclic), [["a", "b", "c", "a"]]);

    let two = graph(&[("a", "b"), ("b", "a"), ("c", "c")]);
    assert_eq!(find_cycles(&two), [vec!["a", "b", "a"], vec!["c", "c"]]);

    assert_eq!(
        dependency_path(&cyclic, "a", "d").unwrap(),
        ["a", "b", "c", "d"]
    );
    assert_eq!(dependency_path(&acyclic, "d", "a"), None);
}

#[test]
fn table_parser_reads_dirs_names_and_deps() {
    let md = "# T\n\ntext\n\n| crate | what | depends on |\n| --- | --- | --- |\n\
              | `client/` (`yak-client`) | x `y` | `partition-log`, `yak-protocol` |\n\
              | `a/`, `b/` | two | `yak-client` |\n\
              | `p/` | none | — |\n\
              | `q/` | bad | partition-log |\n\nafter\n| `not/` | a row | — |\n";
    let rows = parse_crate_table(md);
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        Row {
            line: 7,
            dirs: vec![("client".into(), Some("yak-client".into()))],
            deps: set(&["partition-log", "yak-protocol"]),
            problem: None,
        }
    );
    assert_eq!(
        rows[1].dirs,
        [("a".to_string(), None), ("b".to_string(), None)]
    );
    assert_eq!(rows[1].deps, set(&["yak-client"]));
    assert!(rows[2].deps.is_empty() && rows[2].problem.is_none());
    assert!(rows[3].problem.is_some());
}

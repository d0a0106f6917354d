//! The workspace's shape, kept: which crate may link what (docs/architecture.md),
//! no import circle between a crate's modules, and no source file or function
//! too long to read in one sitting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `cargo tree` for one package, one crate name per line.
fn tree(package: &str, edges: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "tree",
            "--locked",
            "--offline",
            "--prefix",
            "none",
            "-e",
            edges,
            "-p",
            package,
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn crates_in(tree: &str) -> Vec<&str> {
    tree.lines().filter_map(|l| l.split_whitespace().next()).collect()
}

#[test]
fn the_control_plane_links_no_data_plane_and_the_api_no_runtime() {
    let operator = tree("tally-operator", "normal");
    for forbidden in ["tonic", "envoy-types", "tally-extproc"] {
        assert!(
            !crates_in(&operator).contains(&forbidden),
            "tally-operator links {forbidden}"
        );
    }
    // Every edge kind, as `cargo tree -p tally-api` shows it (dev-dependencies included).
    let api = tree("tally-api", "normal,build,dev");
    for forbidden in ["tokio", "kube-runtime", "kube-client", "redis"] {
        assert!(!crates_in(&api).contains(&forbidden), "tally-api links {forbidden}");
    }
    let config = tree("tally-config", "normal");
    let own: Vec<&str> = crates_in(&config);
    for forbidden in ["tokio", "kube", "redis", "tonic"] {
        assert!(!own.contains(&forbidden), "tally-config links {forbidden}");
    }
}

/// The ledger exporter reads Redis and writes object storage: no Kubernetes, no data path,
/// no control plane; and nothing but the exporter (and the `tally` binary calling it) links
/// the Parquet writer's object-store clients.
#[test]
fn the_exporter_links_neither_plane_and_only_it_links_object_storage() {
    let export = tree("tally-export", "normal");
    let linked = crates_in(&export);
    for forbidden in [
        "kube",
        "kube-client",
        "tonic",
        "envoy-types",
        "tally-extproc",
        "tally-api",
    ] {
        assert!(!linked.contains(&forbidden), "tally-export links {forbidden}");
    }
    for package in ["tally-config", "tally-store", "tally-extproc", "tally-api"] {
        let t = tree(package, "normal");
        for forbidden in ["object_store", "arrow-array", "tally-export"] {
            assert!(!crates_in(&t).contains(&forbidden), "{package} links {forbidden}");
        }
    }
}

/// Chargeback reads files and object stores only: it runs on a laptop months later, with no
/// cluster, no Redis and no data path to talk to.
#[test]
fn chargeback_links_no_plane() {
    let chargeback = tree("tally-chargeback", "normal");
    let linked = crates_in(&chargeback);
    for forbidden in ["kube", "kube-client", "redis", "tonic", "tally-extproc", "tally-store"] {
        assert!(!linked.contains(&forbidden), "tally-chargeback links {forbidden}");
    }
}

/// Rust sources of the workspace (not build output, not fixtures).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "fixtures" | "node_modules") {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Functions longer than the limit, as `(first line, length)`; a function
/// ends at the first line holding only its closing brace at its indentation
/// (what rustfmt writes).
fn long_functions(text: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = vec![];
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "const fn ",
            "pub const fn ",
            "pub(crate) async fn ",
            "pub(super) async fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let closing = format!("{indent}}}");
        if let Some(len) = lines[i + 1..].iter().position(|l| *l == closing)
            && len + 2 > MAX_FN_LINES
        {
            found.push((i + 1, len + 2));
        }
    }
    found
}

#[test]
fn no_source_file_over_500_lines_and_no_function_over_80() {
    let root = workspace();
    let mut files = vec![];
    sources(&root, &mut files);
    assert!(
        files.len() > 50,
        "found only {} sources under {}",
        files.len(),
        root.display()
    );
    let mut problems = vec![];
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable source");
        let rel = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
        let lines = text.lines().count();
        let is_test_file = rel.starts_with("tests/tests/") || rel.contains("/tests/") || rel.ends_with("/tests.rs");
        if lines > MAX_FILE_LINES && !is_test_file {
            problems.push(format!("{rel}: {lines} lines (limit {MAX_FILE_LINES})"));
        }
        for (at, len) in long_functions(&text) {
            problems.push(format!("{rel}:{at}: function of {len} lines (limit {MAX_FN_LINES})"));
        }
    }
    assert!(problems.is_empty(), "split these:\n{}", problems.join("\n"));
}

/// `crate::x` paths named by a crate's top-level module `top` (test modules left out).
fn imports_of(text: &str, top: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.match_indices("crate::")
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty() && m != top)
        .collect()
}

/// A cycle among `graph`'s nodes, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            return Some(path[at..].to_vec());
        }
        if !done.insert(n.to_string()) {
            return None;
        }
        path.push(n.to_string());
        let found = g.get(n).into_iter().flatten().find_map(|m| visit(m, g, path, done));
        path.pop();
        found
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut vec![], &mut done))
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let root = workspace();
    for krate in [
        "config",
        "api",
        "store",
        "extproc",
        "operator",
        "audit",
        "export",
        "chargeback",
        "tests",
        "bench",
    ] {
        let src = root.join(krate).join("src");
        let mut files = vec![];
        sources(&src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for path in files {
            let rel = path.strip_prefix(&src).expect("under src");
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("");
            let top = top.trim_end_matches(".rs");
            if matches!(top, "lib" | "main" | "bin") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            graph.entry(top.to_string()).or_default().extend(imports_of(&text, top));
        }
        assert_eq!(cycle(&graph), None, "{krate}: modules import each other in a circle");
    }
}

#[test]
fn the_circle_rule_finds_a_circle() {
    let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(n, m)| (n.to_string(), BTreeSet::from([m.to_string()])))
        .collect();
    assert_eq!(cycle(&g).map(|c| c.len()), Some(3));
    assert_eq!(
        imports_of("use crate::b::X;\nuse crate::a;\n#[cfg(test)]\nuse crate::c;", "a"),
        BTreeSet::from(["b".to_string()])
    );
}

#[test]
fn the_length_rule_finds_a_long_function() {
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let text = format!("fn short() {{\n}}\n\npub async fn long() {{\n{body}}}\n");
    assert_eq!(long_functions(&text), vec![(4, MAX_FN_LINES + 2)]);
}

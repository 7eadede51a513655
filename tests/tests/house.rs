//! The house rules the code keeps, checked over the sources with a Rust parser (syn):
//! no import cycles between the files of a crate, no non-test file over 500 lines, no
//! function over 80 lines outside tests.
//!
//! `cargo test -p drover-tests --test house` prints every breach with its place.
//!
//! A file depends on another when it names a path into it (`use`, a type, a call):
//! `crate::a::b`, `super::x`, `self::y` or a child module's name. The crate root
//! (`lib.rs`, `main.rs`) is the crate's facade and is left out of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The crates whose files are checked: every one but the test harness.
const CRATES: [&str; 11] = [
    "core",
    "model",
    "coordination",
    "actions",
    "pipeline",
    "outputs",
    "client",
    "api",
    "executor",
    "distributor",
    "cli",
];
const MAX_FILE_LINES: usize = 500;
/// Breaches let stand for now, each to be removed from this list by the change that
/// fixes it: a new breach fails, and so does a fixed one still listed. Written as the
/// checks print them, up to the figure in parentheses.
const KNOWN: &[&str] = &[];
const MAX_FN_LINES: usize = 80;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// One source file of a crate: its module path (`[]` for the root) and its syntax.
struct Source {
    path: PathBuf,
    module: Vec<String>,
    text: String,
    file: syn::File,
}

fn sources(krate: &str) -> Vec<Source> {
    let src = workspace().join(krate).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{}: cannot parse: {e}", path.display()));
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Vec<String> = relative
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("lib" | "main" | "mod")
            ) {
                module.pop();
            }
            if module.first().map(String::as_str) == Some("bin") {
                module.clear(); // a binary is a root of its own
            }
            Source {
                path,
                module,
                text,
                file,
            }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(source: &Source) -> bool {
    source.module.last().is_some_and(|m| m == "tests")
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let cfg_test = a.path().is_ident("cfg")
            && matches!(&a.meta, syn::Meta::List(list) if list.tokens.to_string().contains("test"));
        cfg_test || a.path().segments.last().is_some_and(|s| s.ident == "test")
    })
}

/// Paths a file names, and the lines its test modules and long functions take.
#[derive(Default)]
struct Scan {
    paths: Vec<Vec<String>>,
    test_lines: usize,
    long_fns: Vec<(String, usize, usize)>,
}

impl Scan {
    /// Counts from the signature to the closing brace (doc comments left out).
    fn function(
        &mut self,
        name: &syn::Ident,
        attrs: &[syn::Attribute],
        sig: &syn::Signature,
        block: &syn::Block,
    ) {
        if is_cfg_test(attrs) {
            return;
        }
        let (start, end) = (
            syn::spanned::Spanned::span(sig).start(),
            block.brace_token.span.close().end(),
        );
        let lines = end.line - start.line + 1;
        if lines > MAX_FN_LINES {
            self.long_fns.push((name.to_string(), start.line, lines));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                self.paths.push(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                self.paths.push(path);
            }
            syn::UseTree::Glob(_) => self.paths.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_cfg_test(&item.attrs) {
            let span = syn::spanned::Spanned::span(item);
            self.test_lines += span.end().line - span.start().line + 1;
            return;
        }
        syn::visit::visit_item_mod(self, item);
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if is_cfg_test(&item.attrs) {
            return;
        }
        self.function(&item.sig.ident, &item.attrs, &item.sig, &item.block);
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.function(&item.sig.ident, &item.attrs, &item.sig, &item.block);
        syn::visit::visit_impl_item_fn(self, item);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if !is_cfg_test(&item.attrs) {
            self.use_tree(&mut Vec::new(), &item.tree);
        }
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // `pub(super)`, `pub(in crate::x)` say who may see an item, not what it uses
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.paths
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }
}

fn scan(source: &Source) -> Scan {
    let mut scan = Scan::default();
    scan.visit_file(&source.file);
    scan
}

/// The file module a path of `from` lands in, if it names one other than the root.
fn resolve(
    from: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let (mut base, rest): (Vec<String>, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (from.to_vec(), &path[1..]),
        "super" => {
            let mut base = from.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        first => {
            let mut child = from.to_vec();
            child.push(first.to_owned());
            if !modules.contains(&child) {
                return None; // another crate, a prelude name, a local item
            }
            (from.to_vec(), path)
        }
    };
    let mut found = (!base.is_empty() && modules.contains(&base)).then(|| base.clone());
    for segment in rest {
        base.push(segment.clone());
        if modules.contains(&base) {
            found = Some(base.clone());
        } else {
            break;
        }
    }
    found
}

/// The groups of files that import each other, each group sorted (strongly connected
/// components of more than one file).
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    let reach: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> = graph
        .keys()
        .map(|node| (node, reachable(graph, node)))
        .collect();
    let mut groups: BTreeSet<Vec<Vec<String>>> = BTreeSet::new();
    for (node, from_node) in &reach {
        let group: Vec<Vec<String>> = from_node
            .iter()
            .filter(|other| reach.get(other).is_some_and(|back| back.contains(*node)))
            .cloned()
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

/// Every file `from` reaches through its imports, itself included.
fn reachable(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    from: &[String],
) -> BTreeSet<Vec<String>> {
    let mut seen = BTreeSet::from([from.to_vec()]);
    let mut stack = vec![from.to_vec()];
    while let Some(node) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

fn name(krate: &str, module: &[String]) -> String {
    if module.is_empty() {
        format!("{krate}/src/lib.rs")
    } else {
        format!("{krate}/src/{}", module.join("/"))
    }
}

/// Fails on a breach [`KNOWN`] does not list, and on a listed one of this `kind`
/// (`cycle`, `size`) that is gone.
fn ratchet(kind: &str, what: &str, breaches: &[String]) {
    let key = |b: &str| b.split(" (").next().unwrap_or(b).to_owned();
    let found: BTreeSet<String> = breaches.iter().map(|b| key(b)).collect();
    let new: Vec<&str> = breaches
        .iter()
        .filter(|b| !KNOWN.contains(&key(b).as_str()))
        .map(String::as_str)
        .collect();
    let fixed: Vec<&str> = KNOWN
        .iter()
        .copied()
        .filter(|k| k.starts_with(&format!("{kind}: ")) && !found.contains(*k))
        .collect();
    assert!(new.is_empty(), "{what}:\n{}", new.join("\n"));
    assert!(
        fixed.is_empty(),
        "fixed, so remove them from KNOWN in tests/tests/house.rs:\n{}",
        fixed.join("\n")
    );
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let mut breaches = Vec::new();
    for krate in CRATES {
        let sources = sources(krate);
        let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
        let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for source in sources
            .iter()
            .filter(|s| !is_test_file(s) && !s.module.is_empty())
        {
            let edges = graph.entry(source.module.clone()).or_default();
            for path in scan(source).paths {
                if let Some(target) = resolve(&source.module, &path, &modules) {
                    let own_test = target.last().is_some_and(|m| m == "tests");
                    if target != source.module && !target.is_empty() && !own_test {
                        edges.insert(target);
                    }
                }
            }
        }
        for cycle in cycles(&graph) {
            let names: Vec<String> = cycle.iter().map(|m| name(krate, m)).collect();
            breaches.push(format!("cycle: {}", names.join(" <-> ")));
        }
    }
    ratchet(
        "cycle",
        "import cycles between files (move what both need into a file of its own)",
        &breaches,
    );
}

#[test]
fn no_file_over_500_lines_and_no_function_over_80_outside_tests() {
    let mut breaches = Vec::new();
    for krate in CRATES {
        for source in sources(krate).iter().filter(|s| !is_test_file(s)) {
            let scan = scan(source);
            let lines = source.text.lines().count() - scan.test_lines;
            let shown = source.path.strip_prefix(workspace()).unwrap().display();
            if lines > MAX_FILE_LINES {
                breaches.push(format!(
                    "size: {shown} is over {MAX_FILE_LINES} lines outside tests ({lines})"
                ));
            }
            for (function, line, length) in scan.long_fns {
                breaches.push(format!(
                    "size: {shown} fn {function} is over {MAX_FN_LINES} lines ({length}, line {line})"
                ));
            }
        }
    }
    ratchet(
        "size",
        "pieces too big to review at a glance (split them by phase)",
        &breaches,
    );
}

#[test]
fn the_checks_see_a_cycle_and_a_long_function() {
    // the detectors themselves: a two-file cycle and an 81-line function are reported
    let modules: BTreeSet<Vec<String>> = [vec!["a".to_owned()], vec!["b".to_owned()]].into();
    let a = vec!["a".to_owned()];
    let b = vec!["b".to_owned()];
    let to_b = resolve(&a, &["crate".into(), "b".into(), "Thing".into()], &modules);
    let to_a = resolve(&b, &["super".into(), "a".into(), "f".into()], &modules);
    assert_eq!(to_b.as_ref(), Some(&b));
    assert_eq!(to_a.as_ref(), Some(&a));
    let graph = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b, BTreeSet::from([a])),
    ]);
    assert_eq!(cycles(&graph).len(), 1);

    let body = "    let x = 1;\n".repeat(79);
    let file = syn::parse_file(&format!("fn long() {{\n{body}}}\n")).unwrap();
    let mut scan = Scan::default();
    scan.visit_file(&file);
    assert_eq!(scan.long_fns.len(), 1, "81 lines is too long");
}

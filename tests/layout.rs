//! The shape of `src/`, checked on every run: the rules DESIGN.md states
//! about which file may use which are easy to break by accident and hard
//! to see in review, so this reads every source file with `syn` and holds
//! them:
//!
//! - no import circles between files (any path naming another file's
//!   module counts, not just `use` lines: in macro calls and in
//!   attributes' `name = value` arguments too);
//! - only `src/engine/` names `bollard`, and nothing in it names `config`
//!   or `deploy`;
//! - the plans (`deploy/plan.rs`, `deploy/recovery/plan.rs`) reach no engine,
//!   not even through another file;
//! - no function is longer than 80 lines;
//! - only `src/config/` names the YAML reader (`serde_saphyr`);
//! - only `settings.rs` reads the process environment through `std::env`
//!   (`var`, `var_os`, `vars`, `vars_os`), the fault-injection reader
//!   (`deploy/fault.rs`) named as the one exception; clap's `env = ...`
//!   arguments are declared in `cli.rs` and read by clap.
//!
//! Pure: no engine, no network; it reads files only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

const MAX_FN_LINES: usize = 80;

/// A source file and the module path it defines (`crate::deploy::plan`).
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    syntax: syn::File,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read_sources() -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut pending = vec![src_dir()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("src/ entry is readable").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                let syntax = syn::parse_file(&text)
                    .unwrap_or_else(|e| panic!("{}: does not parse: {e}", path.display()));
                files.push(SourceFile {
                    module: module_of(&path),
                    path,
                    syntax,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// `src/deploy/plan.rs` -> [deploy, plan]; `src/deploy/mod.rs` -> [deploy];
/// `src/lib.rs` and `src/main.rs` -> [].
fn module_of(path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(src_dir()).expect("file under src/");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

fn display(path: &Path) -> String {
    path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every path a file names, absolute from the crate root, plus the first
/// segment of every path that does not start at the crate (`bollard::...`).
#[derive(Default)]
struct Paths {
    in_crate: BTreeSet<Vec<String>>,
    external_roots: BTreeSet<String>,
    long_functions: Vec<(String, usize, usize)>,
}

struct Collector<'a> {
    file_module: &'a [String],
    /// Inline `mod x { ... }` nesting inside the file, for `super::`.
    inline: Vec<String>,
    paths: Paths,
}

impl Collector<'_> {
    fn here(&self) -> Vec<String> {
        let mut here = self.file_module.to_vec();
        here.extend(self.inline.iter().cloned());
        here
    }

    fn record(&mut self, segments: Vec<String>) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.here(),
            "super" => {
                let mut base = self.here();
                base.pop();
                base
            }
            "std" | "core" | "alloc" | "Self" => return,
            other => {
                self.paths.external_roots.insert(other.to_string());
                return;
            }
        };
        let mut rest = segments[1..].iter().peekable();
        while rest.peek().is_some_and(|s| s.as_str() == "super") {
            base.pop();
            rest.next();
        }
        base.extend(rest.cloned());
        self.paths.in_crate.insert(base);
    }

    fn check_length(&mut self, name: String, span: proc_macro2::Span) {
        let lines = span.end().line.saturating_sub(span.start().line) + 1;
        if lines > MAX_FN_LINES {
            self.paths
                .long_functions
                .push((name, span.start().line, lines));
        }
    }
}

fn use_tree_paths(prefix: &mut Vec<String>, tree: &syn::UseTree, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_tree_paths(prefix, &p.tree, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            if n.ident != "self" {
                path.push(n.ident.to_string());
            }
            out.push(path);
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push(path);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for item in &g.items {
                use_tree_paths(prefix, item, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut out = Vec::new();
        use_tree_paths(&mut Vec::new(), &item.tree, &mut out);
        for path in out {
            self.record(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.len() > 1 || path.leading_colon.is_some() {
            self.record(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.inline.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.inline.pop();
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        use syn::spanned::Spanned as _;
        self.check_length(item.sig.ident.to_string(), item.span());
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        use syn::spanned::Spanned as _;
        self.check_length(item.sig.ident.to_string(), item.span());
        syn::visit::visit_impl_item_fn(self, item);
    }

    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        // Paths inside an attribute's arguments (`#[arg(env =
        // crate::deploy::helper::TASK_ENV)]`) are tokens too; the values of
        // its `name = value` arguments count where they parse.
        if let syn::Meta::List(list) = &attr.meta
            && let Ok(items) = list.parse_args_with(
                syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
            )
        {
            for item in &items {
                if let syn::Meta::NameValue(pair) = item {
                    self.visit_expr(&pair.value);
                }
            }
        }
        syn::visit::visit_attribute(self, attr);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Paths inside macro calls (`format!("{}", crate::x::y())`) are
        // tokens, not syntax; read them as a comma-separated expression
        // list where that parses, so they count too.
        if let Ok(exprs) = mac.parse_body_with(
            syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated,
        ) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// The file a crate path lands in: the longest prefix that is a file's
/// module.
fn file_of<'a>(path: &[String], modules: &'a BTreeMap<Vec<String>, usize>) -> Option<&'a usize> {
    (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
}

struct Analysis {
    files: Vec<SourceFile>,
    paths: Vec<Paths>,
    edges: Vec<BTreeSet<usize>>,
}

fn analyse() -> Analysis {
    let files = read_sources();
    let modules: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.path.ends_with("main.rs"))
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let mut all_paths = Vec::new();
    let mut edges = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let mut collector = Collector {
            file_module: &file.module,
            inline: Vec::new(),
            paths: Paths::default(),
        };
        collector.visit_file(&file.syntax);
        let targets = collector
            .paths
            .in_crate
            .iter()
            .filter_map(|p| file_of(p, &modules).copied())
            .filter(|&t| t != index)
            // A parent naming its child modules (`pub mod x;`, re-exports)
            // is how Rust declares them, not a dependency.
            .filter(|&t| !files[t].module.starts_with(&file.module) || file.module.is_empty())
            .collect();
        all_paths.push(collector.paths);
        edges.push(targets);
    }
    Analysis {
        files,
        paths: all_paths,
        edges,
    }
}

/// Tarjan's strongly connected components; every component of more than
/// one file is a circle.
fn circles(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    fn connect(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].iter() {
            match s.index[w] {
                None => {
                    connect(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let n = edges.len();
    let mut state = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            connect(&mut state, v);
        }
    }
    state.found
}

fn under(file: &SourceFile, prefix: &[&str]) -> bool {
    file.module.len() >= prefix.len() && file.module.iter().zip(prefix).all(|(a, b)| a == b)
}

#[test]
fn no_import_circles_between_files() {
    let analysis = analyse();
    let found: Vec<String> = circles(&analysis.edges)
        .into_iter()
        .map(|component| {
            let mut names: Vec<String> = component
                .iter()
                .map(|&i| display(&analysis.files[i].path))
                .collect();
            names.sort();
            names.join(" <-> ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "files that import each other (directly or round a circle):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn only_the_engine_names_bollard_and_it_names_no_config_or_deploy() {
    let analysis = analyse();
    let mut wrong = Vec::new();
    let mut engine_files = 0;
    for (i, file) in analysis.files.iter().enumerate() {
        let in_engine = under(file, &["engine"]);
        engine_files += usize::from(in_engine);
        if !in_engine && analysis.paths[i].external_roots.contains("bollard") {
            wrong.push(format!("{} names bollard", display(&file.path)));
        }
        if in_engine {
            for &t in &analysis.edges[i] {
                let target = &analysis.files[t];
                if under(target, &["config"]) || under(target, &["deploy"]) {
                    wrong.push(format!(
                        "{} (engine) names {}",
                        display(&file.path),
                        display(&target.path)
                    ));
                }
            }
        }
    }
    assert!(engine_files > 0, "no files under src/engine/ were found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn only_config_names_the_yaml_reader() {
    let analysis = analyse();
    let mut readers = 0;
    let mut wrong = Vec::new();
    for (i, file) in analysis.files.iter().enumerate() {
        if analysis.paths[i].external_roots.contains("serde_saphyr") {
            readers += 1;
            if !under(file, &["config"]) {
                wrong.push(format!("{} names serde_saphyr", display(&file.path)));
            }
        }
    }
    assert!(
        readers > 0,
        "no file names serde_saphyr: is the rule still needed?"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Paths that read the process environment (`std::env::var` and its
/// siblings, however imported).
#[derive(Default)]
struct EnvReads(Vec<String>);

impl<'ast> Visit<'ast> for EnvReads {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if let [.., env, read] = names.as_slice()
            && env == "env"
            && ["var", "var_os", "vars", "vars_os"].contains(&read.as_str())
        {
            self.0.push(names.join("::"));
        }
        syn::visit::visit_path(self, path);
    }
}

#[test]
fn the_checker_sees_an_environment_read_however_written() {
    let syntax = syn::parse_file(
        "use std::env;\nfn f() { let _ = std::env::var(\"A\"); let _ = env::var_os(\"B\"); \
         for _ in env::vars() {} let _ = std::env::args(); }",
    )
    .expect("the sample parses");
    let mut reads = EnvReads::default();
    reads.visit_file(&syntax);
    assert_eq!(reads.0, ["std::env::var", "env::var_os", "env::vars"]);
}

#[test]
fn only_settings_reads_the_environment() {
    let allowed = [
        vec!["settings".to_string()],
        vec!["deploy".into(), "fault".into()],
    ];
    let mut wrong = Vec::new();
    let mut settings_reads = 0;
    for file in read_sources() {
        let mut reads = EnvReads::default();
        reads.visit_file(&file.syntax);
        if file.module == allowed[0] {
            settings_reads += reads.0.len();
        } else if !reads.0.is_empty() && !allowed.contains(&file.module) {
            wrong.push(format!(
                "{} reads {}",
                display(&file.path),
                reads.0.join(", ")
            ));
        }
    }
    assert!(
        settings_reads > 0,
        "settings.rs reads no environment: the checker misses it"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_plans_name_no_engine() {
    let analysis = analyse();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (i, file) in analysis.files.iter().enumerate() {
        let is_plan =
            file.module == ["deploy", "plan"] || file.module == ["deploy", "recovery", "plan"];
        if !is_plan {
            continue;
        }
        checked += 1;
        // Everything a plan reaches, transitively, must stay off the engine.
        let mut seen = BTreeSet::new();
        let mut pending = vec![i];
        while let Some(f) = pending.pop() {
            if !seen.insert(f) {
                continue;
            }
            let target = &analysis.files[f];
            if under(target, &["engine"]) {
                wrong.push(format!(
                    "{} reaches {}",
                    display(&file.path),
                    display(&target.path)
                ));
            }
            if analysis.paths[f].external_roots.contains("bollard") {
                wrong.push(format!("{} reaches bollard", display(&target.path)));
            }
            pending.extend(analysis.edges[f].iter().copied());
        }
    }
    assert_eq!(
        checked, 2,
        "deploy/plan.rs and deploy/recovery/plan.rs were not both found"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let analysis = analyse();
    let mut long = Vec::new();
    for (i, file) in analysis.files.iter().enumerate() {
        for (name, line, lines) in &analysis.paths[i].long_functions {
            long.push(format!(
                "{}:{line} {name} ({lines} lines)",
                display(&file.path)
            ));
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them):\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_checker_sees_a_circle_and_a_long_function() {
    // The rules above pass only if the checker can fail: a made-up pair of
    // files that import each other, and a function of 81 lines.
    let edges = vec![BTreeSet::from([1]), BTreeSet::from([0]), BTreeSet::new()];
    assert_eq!(circles(&edges).len(), 1);
    let body = "    let _x = 1;\n".repeat(MAX_FN_LINES - 1);
    let text = format!("fn long() {{\n{body}}}\n");
    let paths = paths_of(&text);
    assert_eq!(paths.long_functions.len(), 1);
    let paths = paths_of("fn f() { let _ = format!(\"{}\", crate::engine::x()); }");
    assert!(
        paths
            .in_crate
            .contains(&vec!["engine".to_string(), "x".to_string()])
    );
    let paths =
        paths_of("struct A { #[arg(long, env = crate::deploy::helper::TASK_ENV)] a: String }");
    assert!(paths.in_crate.contains(&vec![
        "deploy".to_string(),
        "helper".to_string(),
        "TASK_ENV".to_string()
    ]));
}

/// What the checker collects from `text` as a file of module `x`.
fn paths_of(text: &str) -> Paths {
    let module = vec!["x".to_string()];
    let mut collector = Collector {
        file_module: &module,
        inline: Vec::new(),
        paths: Paths::default(),
    };
    collector.visit_file(&syn::parse_file(text).expect("the sample parses"));
    collector.paths
}

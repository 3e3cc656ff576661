//! The shape of `src/`, checked on every run: the rules DESIGN.md states
//! about which file may use which are easy to break by accident and hard
//! to see in review, so this reads every source file with `syn` and holds
//! them:
//!
//! - no import circles between files (any path naming another file's
//!   module counts, not just `use` lines: in macro calls, in attributes'
//!   `name = value` arguments, through names a `use` brought in, and
//!   through `pub use` re-exports to the file the item lives in);
//! - only `src/engine/` names `bollard`, and nothing in it names `config`
//!   or `deploy`;
//! - the plans (`deploy/plan.rs`, `deploy/recovery/plan.rs`,
//!   `deploy/lifecycle.rs`) reach no engine,
//!   not even through another file;
//! - the executor (`deploy/execute.rs`, `critical.rs`, `steps.rs`,
//!   `session.rs`, `restore_point.rs`) names no function of a plan: it runs
//!   what the plan it is handed says (types and their methods only);
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
    /// Names a `use` gave to crate paths (`use super::plan;` makes
    /// `plan::levels` a path into `deploy::plan`).
    aliases: BTreeMap<String, Vec<String>>,
    paths: Paths,
}

impl<'a> Collector<'a> {
    fn new(file_module: &'a [String]) -> Self {
        Collector {
            file_module,
            inline: Vec::new(),
            aliases: BTreeMap::new(),
            paths: Paths::default(),
        }
    }
}

impl Collector<'_> {
    fn here(&self) -> Vec<String> {
        let mut here = self.file_module.to_vec();
        here.extend(self.inline.iter().cloned());
        here
    }

    /// `segments` from the crate root, or None when they start outside it
    /// (then their first segment is an external root, if not std's).
    fn absolute(&mut self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.here(),
            "super" => {
                let mut base = self.here();
                base.pop();
                base
            }
            "std" | "core" | "alloc" | "Self" => return None,
            other => match self.aliases.get(other) {
                Some(path) => path.clone(),
                None => {
                    self.paths.external_roots.insert(other.to_string());
                    return None;
                }
            },
        };
        let mut rest = segments[1..].iter().peekable();
        while rest.peek().is_some_and(|s| s.as_str() == "super") {
            base.pop();
            rest.next();
        }
        base.extend(rest.cloned());
        Some(base)
    }

    fn record(&mut self, segments: Vec<String>) {
        if let Some(path) = self.absolute(&segments) {
            self.paths.in_crate.insert(path);
        }
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

/// The names a `use` tree brings in, each with the path it names (None
/// for a glob: it brings every name of its path).
fn use_tree_names(tree: &syn::UseTree) -> Vec<(Option<String>, Vec<String>)> {
    fn walk(
        prefix: &mut Vec<String>,
        tree: &syn::UseTree,
        out: &mut Vec<(Option<String>, Vec<String>)>,
    ) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(prefix, &p.tree, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) if n.ident == "self" => {
                out.push((prefix.last().cloned(), prefix.clone()));
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                out.push((Some(n.ident.to_string()), path));
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" {
                    path.push(r.ident.to_string());
                }
                out.push((Some(r.rename.to_string()), path));
            }
            syn::UseTree::Glob(_) => out.push((None, prefix.clone())),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    walk(prefix, item, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&mut Vec::new(), tree, &mut out);
    out
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut out = Vec::new();
        use_tree_paths(&mut Vec::new(), &item.tree, &mut out);
        for path in out {
            self.record(path);
        }
        for (name, path) in use_tree_names(&item.tree) {
            if let Some(name) = name
                && let Some(absolute) = self.absolute(&path)
            {
                self.aliases.insert(name, absolute);
            }
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
    /// The file each crate path a file names really lands in (through
    /// re-exports), by file.
    landings: Vec<BTreeMap<Vec<String>, usize>>,
}

fn analyse() -> Analysis {
    analyse_files(read_sources())
}

/// What a file re-exports (`pub use`): each name it gives another item,
/// with that item's crate path, and the paths it re-exports every name of
/// (`pub use x::*`); and the names it defines itself.
#[derive(Default)]
struct Names {
    reexported: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
    defined: BTreeSet<String>,
}

fn names_of(file: &SourceFile, modules: &BTreeMap<Vec<String>, usize>) -> Names {
    let mut names = Names::default();
    for item in &file.syntax.items {
        let ident = match item {
            syn::Item::Const(i) => Some(&i.ident),
            syn::Item::Enum(i) => Some(&i.ident),
            syn::Item::Fn(i) => Some(&i.sig.ident),
            syn::Item::Macro(i) => i.ident.as_ref(),
            syn::Item::Mod(i) => Some(&i.ident),
            syn::Item::Static(i) => Some(&i.ident),
            syn::Item::Struct(i) => Some(&i.ident),
            syn::Item::Trait(i) => Some(&i.ident),
            syn::Item::Type(i) => Some(&i.ident),
            syn::Item::Union(i) => Some(&i.ident),
            _ => None,
        };
        if let Some(ident) = ident {
            names.defined.insert(ident.to_string());
        }
        let syn::Item::Use(used) = item else {
            continue;
        };
        if matches!(used.vis, syn::Visibility::Inherited) {
            continue;
        }
        let mut collector = Collector::new(&file.module);
        for (name, path) in use_tree_names(&used.tree) {
            // A child module named without `self::` (`pub use model::*`).
            let mut child = file.module.clone();
            child.push(path[0].clone());
            let absolute = if modules.contains_key(&child) {
                let mut absolute = file.module.clone();
                absolute.extend(path.iter().cloned());
                Some(absolute)
            } else {
                collector.absolute(&path)
            };
            match (name, absolute) {
                (Some(name), Some(absolute)) => {
                    names.reexported.insert(name, absolute);
                }
                (None, Some(absolute)) => names.globs.push(absolute),
                _ => {}
            }
        }
    }
    names
}

/// The file a crate path really lands in: the file whose module is its
/// longest prefix, or, when that file only re-exports the item named, the
/// file the re-export leads to.
fn landing(
    path: &[String],
    modules: &BTreeMap<Vec<String>, usize>,
    files: &[SourceFile],
    names: &[Names],
    depth: usize,
) -> Option<usize> {
    let file = *file_of(path, modules)?;
    let rest = &path[files[file].module.len()..];
    let (Some(name), true) = (rest.first(), depth > 0) else {
        return Some(file);
    };
    let follow = |mut next: Vec<String>, skip: usize| {
        next.extend(rest[skip..].iter().cloned());
        landing(&next, modules, files, names, depth - 1)
    };
    if let Some(target) = names[file].reexported.get(name) {
        return follow(target.clone(), 1).or(Some(file));
    }
    if !names[file].defined.contains(name) {
        for glob in &names[file].globs {
            if let Some(t) = follow(glob.clone(), 0)
                && t != file
                && (names[t].defined.contains(name) || names[t].reexported.contains_key(name))
            {
                return Some(t);
            }
        }
    }
    Some(file)
}

fn analyse_files(files: Vec<SourceFile>) -> Analysis {
    let modules: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.path.ends_with("main.rs"))
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let names: Vec<Names> = files.iter().map(|f| names_of(f, &modules)).collect();
    let mut all_paths = Vec::new();
    let mut edges = Vec::new();
    let mut landings = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let mut collector = Collector::new(&file.module);
        collector.visit_file(&file.syntax);
        let landed: BTreeMap<Vec<String>, usize> = collector
            .paths
            .in_crate
            .iter()
            .filter_map(|p| Some((p.clone(), landing(p, &modules, &files, &names, 8)?)))
            .collect();
        // A path through a re-export depends on the file that re-exports
        // it and on the file the item lives in.
        let targets = collector
            .paths
            .in_crate
            .iter()
            .filter_map(|p| file_of(p, &modules).copied())
            .chain(landed.values().copied())
            .filter(|&t| t != index)
            // A parent naming its child modules (`pub mod x;`, re-exports)
            // is how Rust declares them, not a dependency.
            .filter(|&t| !files[t].module.starts_with(&file.module) || file.module.is_empty())
            .collect();
        all_paths.push(collector.paths);
        edges.push(targets);
        landings.push(landed);
    }
    Analysis {
        files,
        paths: all_paths,
        edges,
        landings,
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
        let is_plan = PLANNERS.iter().any(|p| file.module == *p);
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
        checked,
        PLANNERS.len(),
        "deploy/plan.rs, deploy/recovery/plan.rs and deploy/lifecycle.rs were not all found"
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

/// The executor's files: they run a plan's steps and decide nothing.
const EXECUTOR: &[&[&str]] = &[
    &["deploy", "execute"],
    &["deploy", "critical"],
    &["deploy", "steps"],
    &["deploy", "session"],
    &["deploy", "restore_point"],
];
/// The planners: pure functions from what is wanted and what the node
/// shows to what to do.
const PLANNERS: &[&[&str]] = &[
    &["deploy", "plan"],
    &["deploy", "recovery", "plan"],
    &["deploy", "lifecycle"],
];

/// The planner items `analysis`'s file `i` names that are not types
/// (functions, constants: a type's name starts with a capital letter).
fn planning_functions_named(analysis: &Analysis, i: usize) -> Vec<String> {
    let mut named = Vec::new();
    for (path, &t) in &analysis.landings[i] {
        let target = &analysis.files[t];
        if !PLANNERS.iter().any(|p| target.module == *p) {
            continue;
        }
        let Some(item) = path.get(target.module.len()) else {
            continue;
        };
        if !item.starts_with(|c: char| c.is_ascii_uppercase()) {
            named.push(format!("{}::{item}", target.module.join("::")));
        }
    }
    named
}

#[test]
fn the_executor_names_no_planning_function() {
    let analysis = analyse();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (i, file) in analysis.files.iter().enumerate() {
        if !EXECUTOR.iter().any(|e| file.module == *e) {
            continue;
        }
        checked += 1;
        for named in planning_functions_named(&analysis, i) {
            wrong.push(format!("{} calls {named}", display(&file.path)));
        }
    }
    assert_eq!(checked, EXECUTOR.len(), "an executor file was not found");
    assert!(
        wrong.is_empty(),
        "the executor decides nothing: what it runs comes in the plan (a type's \
         data and methods, as `Action::recheck` under the lock):\n  {}",
        wrong.join("\n  ")
    );
}

/// A made-up crate of `(module, text)` files, analysed as src/ is.
fn analyse_sample(files: &[(&str, &str)]) -> Analysis {
    analyse_files(
        files
            .iter()
            .map(|(module, text)| SourceFile {
                path: PathBuf::from(format!("{}.rs", module.replace("::", "/"))),
                module: module
                    .split("::")
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
                syntax: syn::parse_file(text).expect("the sample parses"),
            })
            .collect(),
    )
}

#[test]
fn the_checker_follows_re_exports_and_imported_names() {
    // x re-exports y's Thing; y uses z; z names x::Thing: the circle runs
    // through the re-export, y <-> z.
    let analysis = analyse_sample(&[
        ("x", "mod y; pub use y::Thing;"),
        ("x::y", "pub struct Thing; fn f() { crate::z::g(); }"),
        ("z", "use crate::x::Thing; pub fn g() {}"),
    ]);
    assert_eq!(circles(&analysis.edges).len(), 1);
    // The same through a glob re-export.
    let analysis = analyse_sample(&[
        ("x", "mod y; pub use y::*;"),
        ("x::y", "pub struct Thing; fn f() { crate::z::g(); }"),
        ("z", "fn h() { let _ = crate::x::Thing; } pub fn g() {}"),
    ]);
    assert_eq!(circles(&analysis.edges).len(), 1);
    // A planner's function named through an imported module, and a type
    // that is fine.
    let analysis = analyse_sample(&[
        ("deploy", "pub mod plan; pub mod execute;"),
        ("deploy::plan", "pub struct Action; pub fn decide() {}"),
        (
            "deploy::execute",
            "use super::plan::{self, Action}; fn run(_: Action) { plan::decide(); }",
        ),
    ]);
    assert_eq!(
        planning_functions_named(&analysis, 2),
        ["deploy::plan::decide"]
    );
}

/// What the checker collects from `text` as a file of module `x`.
fn paths_of(text: &str) -> Paths {
    let module = vec!["x".to_string()];
    let mut collector = Collector::new(&module);
    collector.visit_file(&syn::parse_file(text).expect("the sample parses"));
    collector.paths
}

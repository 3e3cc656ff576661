//! Tests that need the `fault-injection` build of kolla (they freeze it at
//! a fault point with KOLLA_FAULT) live in a `mod fault_points`, each
//! ignored with its reason: a plain `cargo test` runs none of them against
//! a kolla without fault points and says how many it left, and tools/test
//! runs exactly them (`-- fault_points:: --ignored`) with KOLLA_TEST_KOLLA
//! naming the fault-injection build. The test binaries are built once,
//! plain; only kolla itself is built twice. Each such file also has a test
//! that counts them in its own source and names them.
use std::path::Path;

use super::tell;

/// The fault-point tests of `file` (relative to the crate). Fails the test
/// if one is not ignored (a plain run would aim it at a kolla without
/// fault points), if a test outside `mod fault_points` is ignored for the
/// fault-injection build (the fault run would leave it out), or if anything
/// is compiled only with the feature (it would vanish uncounted).
pub fn fault_point_tests(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect("the test file's source");
    assert!(
        !text.contains("feature = \"fault-injection\""),
        "{file} compiles something only with the fault-injection feature: \
         ignore its fault tests in `mod fault_points` instead"
    );
    let syntax = syn::parse_file(&text).expect("the test file parses");
    let mut names = Vec::new();
    collect(file, &syntax.items, false, &mut names);
    names
}

/// Test functions under `items`; `inside` when in `mod fault_points`.
fn collect(file: &str, items: &[syn::Item], inside: bool, names: &mut Vec<String>) {
    for item in items {
        match item {
            syn::Item::Fn(f) if f.attrs.iter().any(|a| a.path().is_ident("test")) => {
                let name = f.sig.ident.to_string();
                let ignore = f.attrs.iter().find(|a| a.path().is_ident("ignore"));
                let for_faults = ignore.is_some_and(|a| {
                    a.meta
                        .require_name_value()
                        .is_ok_and(|v| quote_of(&v.value).contains("fault-injection build"))
                });
                assert!(
                    !inside || ignore.is_some(),
                    "{file}: {name} is a fault-point test but not ignored"
                );
                assert!(
                    inside || !for_faults,
                    "{file}: {name} waits for the fault-injection build outside `mod fault_points`"
                );
                if inside {
                    names.push(name);
                }
            }
            syn::Item::Mod(m) => {
                let inside = inside || m.ident == "fault_points";
                if let Some((_, items)) = &m.content {
                    collect(file, items, inside, names);
                }
            }
            _ => {}
        }
    }
}

fn quote_of(expr: &syn::Expr) -> String {
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => s.value(),
        _ => String::new(),
    }
}

/// Say how many fault-point tests `file` has, and that a plain run leaves
/// them (the count comes from the file itself).
pub fn fault_point_tests_left_out(file: &str) {
    let names = fault_point_tests(file);
    assert!(!names.is_empty(), "{file} has no fault_points tests");
    tell(&format!(
        "{} tests of {file} need the fault-injection build (ignored unless \
         KOLLA_TEST_KOLLA names it; tools/test runs them): {}",
        names.len(),
        names.join(", ")
    ));
}

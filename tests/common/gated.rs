//! Tests that need the `fault-injection` build (they freeze kolla at a
//! fault point with KOLLA_FAULT) live in a `mod fault_points` gated on the
//! feature, so a plain build leaves them out and a fault-injection run
//! picks them alone (`-- fault_points::`). Left out is never silent: each
//! such file has a test that counts them in its own source and says how
//! many a plain build left out.

use std::path::Path;

use super::tell;

/// The tests of `file` (relative to the crate) gated on the
/// `fault-injection` feature. Fails the test if one is gated other than by
/// being in a `fault_points` module, or if the whole file is: those would
/// vanish from a plain build uncounted, or from a fault-injection run.
pub fn fault_point_tests(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect("the test file's source");
    let syntax = syn::parse_file(&text).expect("the test file parses");
    assert!(
        !syntax.attrs.iter().any(is_gate),
        "{file} is gated whole on fault-injection: put its fault tests in `mod fault_points`"
    );
    let mut names = Vec::new();
    collect(file, &syntax.items, None, &mut names);
    names
}

/// Test functions under `items`; `module` is the gated module they are in.
fn collect(file: &str, items: &[syn::Item], module: Option<&str>, names: &mut Vec<String>) {
    for item in items {
        match item {
            syn::Item::Fn(f) if f.attrs.iter().any(|a| a.path().is_ident("test")) => {
                let name = f.sig.ident.to_string();
                let gated = module.is_some() || f.attrs.iter().any(is_gate);
                assert!(
                    !gated || module == Some("fault_points"),
                    "{file}: {name} is gated on fault-injection outside `mod fault_points`"
                );
                if gated {
                    names.push(name);
                }
            }
            syn::Item::Mod(m) => {
                let name = m.ident.to_string();
                let inner = if m.attrs.iter().any(is_gate) {
                    Some(name.as_str())
                } else {
                    module
                };
                if let Some((_, items)) = &m.content {
                    collect(file, items, inner, names);
                }
            }
            _ => {}
        }
    }
}

/// `#[cfg(...)]` naming the fault-injection feature.
fn is_gate(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("cfg")
        && attr
            .meta
            .require_list()
            .is_ok_and(|list| list.tokens.to_string().contains("fault-injection"))
}

/// Say how many tests of `file` this build leaves out (none with the
/// feature); the count comes from the file itself.
pub fn fault_point_tests_left_out(file: &str) {
    let names = fault_point_tests(file);
    assert!(!names.is_empty(), "{file} has no fault_points tests");
    if !cfg!(feature = "fault-injection") {
        tell(&format!(
            "{} tests of {file} need --features fault-injection; left out: {}",
            names.len(),
            names.join(", ")
        ));
    }
}

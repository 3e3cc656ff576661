//! The names an operator may have meant: a service name no file or node
//! knows is answered with the known ones, closest first, so the one they
//! meant heads a list that can be forty long. Pure.

use std::cmp::Reverse;

/// How many names a message lists before saying how many more there are.
const SHOWN: usize = 40;

/// `known`, closest to `asked` first: names that hold what was typed, or
/// are held by it (`glance` for `glance-api`), before the rest; then by
/// edit distance, Damerau-Levenshtein (a swapped pair of letters, the
/// commonest slip, is one edit), ignoring case; then by name.
pub fn closest_first<'a>(asked: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let asked = asked.to_lowercase();
    let mut ranked: Vec<(Reverse<bool>, usize, &str)> = known
        .into_iter()
        .map(|name| {
            let lower = name.to_lowercase();
            let overlaps = lower.contains(&asked) || asked.contains(&lower);
            let distance = strsim::damerau_levenshtein(&asked, &lower);
            (Reverse(overlaps), distance, name)
        })
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.2 == b.2);
    ranked.into_iter().map(|(_, _, name)| name).collect()
}

/// The name `asked` most likely meant, if one is close enough to say so:
/// the closest, when it holds what was typed (or is held by it) or is at
/// most one edit per three letters away.
pub fn likely<'a>(asked: &str, closest: &[&'a str]) -> Option<&'a str> {
    let first = *closest.first()?;
    let (asked, name) = (asked.to_lowercase(), first.to_lowercase());
    let overlaps = !asked.is_empty() && (name.contains(&asked) || asked.contains(&name));
    let near = strsim::damerau_levenshtein(&asked, &name) <= (asked.chars().count() / 3).max(1);
    (overlaps || near).then_some(first)
}

/// `names` for a message: comma separated, at most `SHOWN` of them and
/// then how many more; `none` for no name at all.
pub fn listed(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let mut text = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &[&str] = &[
        "glance-api",
        "keystone",
        "mariadb",
        "nova-api",
        "nova-compute",
        "placement-api",
        "rabbitmq",
    ];

    #[test]
    fn a_slip_of_the_keys_puts_the_name_meant_first() {
        // A swapped pair, a missing letter, a letter too many, a capital.
        for (asked, meant) in [
            ("glnace-api", "glance-api"),
            ("kestone", "keystone"),
            ("mariadbb", "mariadb"),
            ("RabbitMQ", "rabbitmq"),
            ("nova-compte", "nova-compute"),
        ] {
            let closest = closest_first(asked, SERVICES.iter().copied());
            assert_eq!(closest[0], meant, "{asked}: {closest:?}");
            assert_eq!(likely(asked, &closest), Some(meant), "{asked}");
            assert_eq!(closest.len(), SERVICES.len(), "every name is listed");
        }
    }

    #[test]
    fn a_project_name_puts_its_services_first() {
        let closest = closest_first("nova", SERVICES.iter().copied());
        assert_eq!(&closest[..2], &["nova-api", "nova-compute"]);
        assert_eq!(likely("nova", &closest), Some("nova-api"));
        let closest = closest_first("glance", SERVICES.iter().copied());
        assert_eq!(closest[0], "glance-api");
    }

    #[test]
    fn nothing_is_guessed_when_nothing_is_close() {
        let closest = closest_first("horizon", SERVICES.iter().copied());
        assert_eq!(closest.len(), SERVICES.len());
        assert_eq!(likely("horizon", &closest), None);
        assert_eq!(likely("web", &[]), None);
        // Ties are broken by name, so the list is the same every time.
        assert_eq!(closest_first("x", ["bb", "aa"]), ["aa", "bb"]);
        // A name known twice (from a file and a node) is listed once.
        assert_eq!(closest_first("web", ["web", "api", "web"]), ["web", "api"]);
    }

    #[test]
    fn long_lists_are_cut_saying_how_many_more() {
        let many: Vec<String> = (0..45).map(|i| format!("s{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let text = listed(&many);
        assert!(text.starts_with("s00, s01, "), "{text}");
        assert!(text.ends_with("s39 and 5 more"), "{text}");
        assert_eq!(listed(&[]), "none");
        assert_eq!(listed(&["web", "api"]), "web, api");
    }
}

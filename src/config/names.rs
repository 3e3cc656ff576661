//! The engine's own rules for what kolla names and sends: container and
//! volume names, stop signals and healthcheck durations, checked when a
//! file is read so that nothing the engine would refuse gets as far as a
//! pull. Pure functions; the messages say the rule.
//!
//! The rules, from the engine's source: names match
//! `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (daemon/names, used for containers and by
//! the local volume driver, whose volume is a folder, so also at most 255
//! bytes); a stop signal is what `signal.ParseSignal` takes on Linux (a
//! number, or a name of its table with or without `SIG`, any case); a
//! healthcheck's interval, timeout and start period are 0 (the image's
//! default) or at least 1 ms.
//!
//! Which names kolla composes lives in `deploy` (labels, node_prep,
//! restore_point, volumes, privileged); `kolla_container_names` lists the
//! same shapes at their longest, and a test in `deploy` holds the two
//! together.

use std::time::Duration;

/// The engine's name rule, as it words it.
pub const NAME_RULE: &str = "[a-zA-Z0-9][a-zA-Z0-9_.-]+: two characters or more, letters, digits, '_', '.' and '-', the first a letter or digit";

/// The longest volume name the local driver can make a folder of.
pub const MAX_VOLUME_NAME: usize = 255;

/// The healthcheck durations the engine takes, other than 0.
pub const MIN_HEALTH_DURATION: Duration = Duration::from_millis(1);

/// Whether the engine accepts `name` as a container name (a leading `/`,
/// as the engine prints names, is not part of it here).
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() >= 2
        && first.is_ascii_alphanumeric()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `name` as a container name, or why the engine refuses it.
pub fn check_container_name(name: &str) -> Result<(), String> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "container name {name:?} is not one the engine accepts ({NAME_RULE})"
        ))
    }
}

/// `name` as a volume name of the local driver, or why it is refused.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if !is_valid_name(name) {
        return Err(format!(
            "volume name {name:?} is not one the engine accepts ({NAME_RULE})"
        ));
    }
    if name.len() > MAX_VOLUME_NAME {
        return Err(format!(
            "volume name {name:?} is {} bytes long; the engine keeps a volume in a folder of that name, at most {MAX_VOLUME_NAME}",
            name.len()
        ));
    }
    Ok(())
}

/// The container names kolla gives service `service` under `prefix`, each
/// kind at its longest: the live container, the candidate, a kept
/// generation, the lock, the bootstrap job, the swap helper, a restore
/// point (and its half-written form) and the node preparation jobs.
pub fn kolla_container_names(prefix: &str, service: &str) -> Vec<String> {
    let live = format!("{prefix}{service}");
    let longest_u64 = u64::MAX;
    let longest_pid = u32::MAX;
    let mut names = vec![live.clone()];
    names.extend(
        [
            ".kolla-new".to_string(),
            format!(".kolla-gen-{longest_u64}"),
            ".kolla-lock".to_string(),
            ".kolla-bootstrap".to_string(),
            ".kolla-swap".to_string(),
            format!(".kolla-restore-{longest_u64}"),
            format!(".kolla-restore-{longest_u64}.writing"),
            format!(".kolla-sysctl-{longest_pid}"),
            format!(".kolla-mounts-{longest_pid}"),
            format!(".kolla-mounts-check-{longest_pid}"),
        ]
        .iter()
        .map(|suffix| format!("{live}{suffix}")),
    );
    names
}

/// The container names kolla makes from the prefix alone: the throwaway
/// privileged probe, at its longest.
pub fn kolla_prefix_names(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}kolla-probe-privileged-{}", u32::MAX)]
}

/// The shape of the volume kolla names for an anonymous volume (or an
/// image's VOLUME) of `service`: `<prefix><service>-<12 hex digits>`.
pub fn anonymous_volume_name(prefix: &str, service: &str) -> String {
    format!("{prefix}{service}-{}", "0".repeat(12))
}

/// The first name kolla would compose for `service` under `prefix` that
/// the engine refuses, with the reason.
pub fn check_service_names(prefix: &str, service: &str) -> Result<(), String> {
    for name in kolla_container_names(prefix, service) {
        check_container_name(&name)?;
    }
    check_volume_name(&anonymous_volume_name(prefix, service))
        .map_err(|e| format!("{e} (the name kolla gives its anonymous volumes)"))
}

/// Linux signal names as the engine knows them (without `SIG`).
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// The highest real-time signal, SIGRTMAX, and the lowest, SIGRTMIN.
const RTMAX: u32 = 64;
const RTMIN: u32 = 34;

/// Whether `name` (upper case, without `SIG`) is `RTMIN`, `RTMIN+1` ..
/// `RTMIN+15`, `RTMAX-14` .. `RTMAX-1` or `RTMAX`.
fn is_realtime(name: &str) -> bool {
    let offset = |text: &str, most: u32| {
        text.parse::<u32>()
            .is_ok_and(|n| (1..=most).contains(&n) && !text.starts_with('0'))
    };
    match name {
        "RTMIN" | "RTMAX" => true,
        _ => {
            name.strip_prefix("RTMIN+").is_some_and(|n| offset(n, 15))
                || name.strip_prefix("RTMAX-").is_some_and(|n| offset(n, 14))
        }
    }
}

/// `signal` as a stop signal the engine takes: a number from 1 to
/// SIGRTMAX (64), or a Linux signal's name, `SIG` optional, in any case.
pub fn check_signal(signal: &str) -> Result<(), String> {
    if !signal.is_empty() && signal.bytes().all(|b| b.is_ascii_digit()) {
        return match signal.parse::<u32>() {
            Ok(n) if (1..=RTMAX).contains(&n) => Ok(()),
            _ => Err(format!("{signal:?} is not a signal number (1 to {RTMAX})")),
        };
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) || is_realtime(name) {
        Ok(())
    } else {
        Err(format!(
            "{signal:?} is not a signal the engine knows (SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, ..., SIGRTMIN+N, or a number from 1 to {RTMAX}; real-time names span {RTMIN} to {RTMAX})"
        ))
    }
}

/// A healthcheck duration as the engine takes it: 0 or at least 1 ms.
pub fn check_health_duration(duration: Duration) -> Result<(), String> {
    if duration.is_zero() || duration >= MIN_HEALTH_DURATION {
        Ok(())
    } else {
        Err(format!(
            "{duration:?} is shorter than the engine's least, 1ms (0 means the image's default)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_engine_pattern() {
        for good in [
            "ab", "a1", "1a", "web", "p-web", "a.b", "a_b", "A-B.c_d", "00",
        ] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "-",
            "-x",
            "..",
            ".a",
            "_a",
            "a b",
            "a/b",
            "a:b",
            "../../etc",
            "é1",
            "ab\n",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn volume_names_are_bounded_by_a_folder_name() {
        assert!(check_volume_name(&"v".repeat(255)).is_ok());
        let err = check_volume_name(&"v".repeat(256)).unwrap_err();
        assert!(err.contains("256 bytes"), "{err}");
        let err = check_volume_name("../../etc").unwrap_err();
        assert!(err.contains("\"../../etc\""), "{err}");
    }

    #[test]
    fn composed_names_depend_on_the_prefix() {
        // One letter alone is refused; behind a prefix it is fine.
        assert!(check_service_names("", "a").is_err());
        assert!(check_service_names("p-", "a").is_ok());
        // A prefix the engine refuses spoils every name.
        let err = check_service_names("-", "web").unwrap_err();
        assert!(err.contains("\"-web\""), "{err}");
        assert!(check_service_names("", "..").is_err());
        assert!(check_service_names("", "-x").is_err());
        assert!(check_service_names("p", "-x").is_ok());
        assert!(check_service_names("", "web").is_ok());
    }

    #[test]
    fn a_long_service_name_fails_on_its_volume_name() {
        let service = "s".repeat(240);
        let err = check_service_names("prefix-", &service).unwrap_err();
        assert!(err.contains("anonymous volumes"), "{err}");
        assert!(check_service_names("prefix-", &"s".repeat(200)).is_ok());
    }

    #[test]
    fn the_probe_name_needs_a_good_prefix() {
        assert!(
            kolla_prefix_names("")
                .iter()
                .all(|n| check_container_name(n).is_ok())
        );
        assert!(
            kolla_prefix_names("-")
                .iter()
                .any(|n| check_container_name(n).is_err())
        );
    }

    #[test]
    fn signals_are_the_engines() {
        for good in [
            "SIGTERM",
            "TERM",
            "sigterm",
            "Term",
            "SIGKILL",
            "SIGUSR1",
            "SIGWINCH",
            "SIGRTMIN",
            "SIGRTMIN+15",
            "SIGRTMAX-14",
            "RTMAX",
            "1",
            "9",
            "15",
            "64",
            "015",
        ] {
            assert!(check_signal(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "SIGBOGUS",
            "BOGUS",
            "SIG",
            "0",
            "65",
            "-1",
            "+9",
            "SIGRTMIN+16",
            "SIGRTMAX-15",
            "SIGRTMIN+0",
            "SIGRTMIN+01",
            "SIGSIGTERM",
            "SIG TERM",
            " 9",
            "99999999999999999999",
        ] {
            assert!(check_signal(bad).is_err(), "{bad:?}");
        }
        let err = check_signal("SIGBOGUS").unwrap_err();
        assert!(err.contains("\"SIGBOGUS\""), "{err}");
    }

    #[test]
    fn healthcheck_durations_are_zero_or_a_millisecond_at_least() {
        assert!(check_health_duration(Duration::ZERO).is_ok());
        assert!(check_health_duration(Duration::from_millis(1)).is_ok());
        assert!(check_health_duration(Duration::from_secs(30)).is_ok());
        let err = check_health_duration(Duration::from_micros(1)).unwrap_err();
        assert!(err.contains("1ms"), "{err}");
        assert!(check_health_duration(Duration::from_micros(999)).is_err());
    }
}

//! The systemd side of the `service` agent: unit names, `systemctl show` and `is-active`
//! output, and the rules a unit must follow to be run by the cluster.

use crate::resources::Report;

/// The unit suffixes systemd knows; a name without one is a `.service`.
pub(super) const UNIT_SUFFIXES: &[&str] = &[
    ".service", ".socket", ".target", ".mount", ".timer", ".path", ".scope", ".slice",
];

/// The unit systemd is asked about for `name`.
pub(super) fn unit_name(name: &str) -> String {
    if UNIT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// `systemctl show` output (`Key=value` lines) as pairs.
pub(super) fn parse_show(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub(super) fn value<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `systemctl is-active`'s word as a report.
pub(super) fn systemd_state(unit: &str, state: &str, probe: bool) -> Report {
    match state {
        "active" | "reloading" => Report::ok(format!("{unit} is {state}")),
        "inactive" | "" => Report::not_running(format!("{unit} is inactive")),
        "failed" if probe => Report::not_running(format!("{unit} is failed (not running)")),
        "failed" => Report::failed(format!("{unit} failed")),
        // Something started it (or systemd restarts it): it is here.
        other if probe => Report::ok(format!("{unit} is {other}")),
        other => Report::failed(format!("{unit} is {other}, not active")),
    }
}

/// Why a unit may not be run by the cluster, from its `show` properties.
pub(super) fn unit_problem(unit: &str, props: &[(String, String)]) -> Option<String> {
    match value(props, "LoadState") {
        Some("loaded") => {}
        Some("not-found") | None => {
            return Some(format!(
                "no unit {unit} on this node; install it or fix the name"
            ))
        }
        Some(other) => return Some(format!("unit {unit} is {other}; unmask or fix it")),
    }
    if let Some(state @ ("enabled" | "enabled-runtime" | "linked" | "alias")) =
        value(props, "UnitFileState")
    {
        return Some(format!(
            "unit {unit} is {state}: systemd would start it at boot on every node; \
             `systemctl disable {unit}` and let the cluster start it"
        ));
    }
    match value(props, "Restart") {
        Some("no") | None => None,
        Some(r) => Some(format!(
            "unit {unit} has Restart={r}: systemd would restart it behind the cluster; \
             set Restart=no (a drop-in) and let the cluster restart it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::group::Outcome;

    #[test]
    fn unit_names_get_their_suffix() {
        assert_eq!(unit_name("nginx"), "nginx.service");
        assert_eq!(unit_name("getty@tty1.service"), "getty@tty1.service");
        assert_eq!(unit_name("cups.socket"), "cups.socket");
    }

    #[test]
    fn systemd_states_are_read_as_the_field_reads_them() {
        let at = |s: &str, probe: bool| systemd_state("x.service", s, probe).outcome;
        assert_eq!(at("active", false), Outcome::Ok);
        assert_eq!(at("reloading", false), Outcome::Ok);
        assert_eq!(at("inactive", false), Outcome::NotRunning);
        assert_eq!(at("failed", false), Outcome::Failed);
        assert_eq!(at("failed", true), Outcome::NotRunning);
        assert_eq!(at("activating", false), Outcome::Failed);
        assert_eq!(at("activating", true), Outcome::Ok);
    }

    #[test]
    fn a_unit_the_cluster_cannot_own_is_refused() {
        let props = |s: &str| parse_show(s);
        assert_eq!(
            unit_problem(
                "x.service",
                &props("LoadState=loaded\nUnitFileState=disabled\nRestart=no\n")
            ),
            None
        );
        assert!(unit_problem("x.service", &props("LoadState=not-found\n"))
            .unwrap()
            .contains("no unit"));
        assert!(unit_problem("x.service", &props("LoadState=masked\n"))
            .unwrap()
            .contains("masked"));
        assert!(unit_problem(
            "x.service",
            &props("LoadState=loaded\nUnitFileState=enabled\nRestart=no\n")
        )
        .unwrap()
        .contains("systemctl disable"));
        assert!(unit_problem(
            "x.service",
            &props("LoadState=loaded\nUnitFileState=static\nRestart=on-failure\n")
        )
        .unwrap()
        .contains("Restart=no"));
    }
}

//! The LSB init-script side of the `service` agent: what each exit code of an action and of
//! `status` means (LSB 3.0, "Init Script Actions"), with the severity the group acts on.

use std::path::Path;

use super::exit;
use crate::policy::group::Outcome;
use crate::resources::captured::last_words;
use crate::resources::Report;

/// What an LSB `start` exit code means (LSB 3.0, "Init Script Actions").
pub(super) fn lsb_action_outcome(code: Option<i32>) -> Outcome {
    match code {
        Some(0) => Outcome::Ok,
        Some(2..=5) => Outcome::FailedHard,
        Some(6) => Outcome::FailedFatal,
        _ => Outcome::Failed,
    }
}

/// The LSB name of an action's exit code.
pub(super) fn lsb_action_meaning(code: Option<i32>) -> &'static str {
    match code {
        Some(1) => "generic or unspecified error",
        Some(2) => "invalid or excess arguments",
        Some(3) => "unimplemented feature",
        Some(4) => "user had insufficient privilege",
        Some(5) => "program is not installed",
        Some(6) => "program is not configured",
        Some(7) => "program is not running",
        None => "killed by a signal",
        _ => "error",
    }
}

/// An LSB `status` answer as a report.
pub(super) fn lsb_status_report(script: &Path, code: Option<i32>, out: &str) -> Report {
    let s = script.display();
    match code {
        Some(0) => Report::ok(format!("{s} status: running")),
        Some(1) => Report::not_running(format!("{s} status: dead, but its pidfile remains")),
        Some(2) => Report::not_running(format!("{s} status: dead, but its lock file remains")),
        Some(3) => Report::not_running(format!("{s} status: not running")),
        Some(4) => Report::failed(format!("{s} status: unknown{}", last_words(out))),
        other => Report::failed(format!("{s} status {}{}", exit(other), last_words(out))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsb_exit_codes_carry_their_severity() {
        assert_eq!(lsb_action_outcome(Some(0)), Outcome::Ok);
        assert_eq!(lsb_action_outcome(Some(1)), Outcome::Failed);
        assert_eq!(lsb_action_outcome(Some(5)), Outcome::FailedHard);
        assert_eq!(lsb_action_outcome(Some(4)), Outcome::FailedHard);
        assert_eq!(lsb_action_outcome(Some(6)), Outcome::FailedFatal);
        assert_eq!(lsb_action_outcome(Some(7)), Outcome::Failed);
        assert_eq!(lsb_action_outcome(None), Outcome::Failed);
        let s = Path::new("/etc/init.d/x");
        assert_eq!(lsb_status_report(s, Some(0), "").outcome, Outcome::Ok);
        for dead in 1..=3 {
            assert_eq!(
                lsb_status_report(s, Some(dead), "").outcome,
                Outcome::NotRunning
            );
        }
        assert_eq!(lsb_status_report(s, Some(4), "").outcome, Outcome::Failed);
        assert_eq!(lsb_status_report(s, Some(150), "").outcome, Outcome::Failed);
    }
}

//! A real cluster on one machine: three `eterned` processes on loopback addresses, real QUIC
//! with mutual TLS, a real application process, driven through the control socket.
//!
//! Tests assert behaviour, never timing: every wait is bounded by a generous limit that only
//! turns a hang into a failure.

mod common;

use common::{Cluster, Opts};
use eterne::control::Request;

#[test]
fn three_nodes_form_and_fail_over_on_kill_9() {
    let mut c = Cluster::new(1, &Opts::default());
    c.start_all();
    c.wait_for("the cluster forms", |c| c.formed());
    c.wait_for("demo runs on its preferred node n1", |c| {
        c.running_on("demo").as_deref() == Some("n1")
    });
    let _ = c.ask(0, Request::Status);
}

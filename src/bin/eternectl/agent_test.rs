//! `eternectl agent test TYPE KEY=VALUE…`: one agent built as the daemon builds it and run
//! through its contract ([`eterne::resources::contract`]) on this machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `eternectl agent test`: builds the agent as the daemon would and runs it through
/// [`eterne::resources::contract`]; exit 0 when it passed every step.
pub(crate) fn agent_test(kind: &str, args: &[String], ms: [u32; 3], run_dir: PathBuf) -> ExitCode {
    use eterne::policy::spec::{MonitorSpec, ResourceSpec};
    use eterne::resources::{build, contract, AgentContext};
    let [start_ms, stop_ms, monitor_ms] = ms;
    let mut params: Vec<(String, String)> = Vec::new();
    let agent_type = match kind.split(':').collect::<Vec<_>>().as_slice() {
        ["ocf", provider, agent] => {
            params.push(("provider".into(), provider.to_string()));
            params.push(("type".into(), agent.to_string()));
            "ocf".to_string()
        }
        [one] => one.to_string(),
        _ => {
            eprintln!("eternectl: {kind:?} is not a resource type; give one like \"service\" or \"ocf:heartbeat:Dummy\"");
            return ExitCode::FAILURE;
        }
    };
    for a in args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => params.push((k.to_string(), v.to_string())),
            _ => {
                eprintln!("eternectl: parameter {a:?} is not KEY=VALUE");
                return ExitCode::FAILURE;
            }
        }
    }
    let monitor = MonitorSpec {
        interval_ms: monitor_ms.saturating_add(1),
        timeout_ms: monitor_ms,
    };
    let spec = ResourceSpec {
        name: "agent-test".into(),
        agent: agent_type.clone(),
        params,
        depends_on: Vec::new(),
        monitor_quick: monitor,
        monitor_deep: Some(monitor),
        start_timeout_ms: start_ms,
        stop_timeout_ms: stop_ms,
        migration_threshold: None,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("eternectl: cannot start an async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    let bounds = contract::Bounds {
        start: ms(start_ms),
        stop: ms(stop_ms),
        monitor: ms(monitor_ms),
    };
    let outcome = runtime.block_on(async {
        let (events, mut rx) = tokio::sync::mpsc::channel(64);
        let ctx = AgentContext {
            group: 0,
            resource: 0,
            name: spec.name.clone(),
            run_dir,
            events,
        };
        let agent = build(&spec, &ctx).map_err(|e| e.to_string())?;
        let run = contract::run(&*agent, bounds).await;
        let mut reported = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            reported.push(format!("{ev:?}"));
        }
        Ok::<_, String>((run, reported))
    });
    let (run, reported) = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eternectl: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("agent test: {kind} on this node");
    for step in &run.steps {
        let got = step
            .got
            .map_or("no answer".to_string(), |o| format!("{o:?}"));
        if step.passed() {
            println!("  ok    {}: {got} ({})", step.name, step.reason);
        } else {
            println!(
                "  FAIL  {}: wanted {:?}, got {got} ({})",
                step.name, step.wanted, step.reason
            );
        }
    }
    for ev in &reported {
        println!("  note  the agent reported on its own: {ev}");
    }
    let problems = run.problems().count();
    if let Some(why) = &run.stopped_early {
        println!("stopped early: {why}");
    }
    if run.passed() {
        println!("{agent_type}: passed every step");
        ExitCode::SUCCESS
    } else {
        println!("{agent_type}: {problems} problem(s)");
        ExitCode::FAILURE
    }
}

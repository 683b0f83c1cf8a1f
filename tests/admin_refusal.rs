//! An admin command forwarded to the coordinator and refused there is answered: the asking
//! node hears why at once, instead of "not committed within 5 s". Three node cores in one
//! process on a virtual clock, every effect carried by hand (the node core's doctest, times
//! three, `tests/support/cores.rs`), with the coordinator deaf to n3's heartbeats so that it sees n3 down while n1 sees
//! it up.

mod support;

use eterne::policy::admin::AdminRequest;
use eterne::policy::message::{Event, Input};
use support::cores::{spec_of, Cores, THREE_NODES_WEB as TOML};

#[test]
fn a_move_the_coordinator_refuses_is_answered_to_the_node_that_asked() {
    let spec = spec_of(TOML);
    let mut net = Cores::new(vec![spec.clone(), spec.clone(), spec], 42);
    net.run(5_000_000);
    let leader = net.core(0).coordinator().expect("a coordinator") as usize;
    assert!((0..3).all(|i| net.core(i).coordinator() == Some(leader as u16)));
    // Two nodes that are not the coordinator: one asks, the other is the move's target.
    let asker = (0..3).find(|&i| i != leader).expect("a follower");
    let target = (0..3)
        .find(|&i| i != leader && i != asker)
        .expect("another");
    let target_name = format!("n{}", target + 1);

    // The coordinator stops hearing the target; everyone else still does.
    net.deaf = Some((target, leader));
    net.run(net.now + 2_000_000);
    let r = net
        .core(asker)
        .resolve_admin(AdminRequest::Move {
            group: "web",
            node: Some(&target_name),
        })
        .expect("the asking node sees the target up and passes the move on");
    net.events[asker].clear();
    let now = net.now;
    net.core_mut(asker).handle(Input::Admin(r.cmd.clone()), now);
    net.effects(asker);
    net.run(net.now + 50_000);
    let refused: Vec<&Event> = net.events[asker]
        .iter()
        .filter(|e| matches!(e, Event::AdminRefused { .. }))
        .collect();
    let [Event::AdminRefused { cmd, why }] = refused.as_slice() else {
        panic!("one refusal at the asking node: {:?}", net.events[asker]);
    };
    assert_eq!(cmd, &r.cmd);
    let by = format!("said the coordinator, n{}", leader + 1);
    assert!(why.contains("down") && why.contains(&by), "{why}");
}

use super::*;

const TEAM: &str = "t";
const COUNTER: &str = "tally:{t}:c:m:team";

fn usd(n: i64) -> Nanos {
    Nanos(n * 1_000_000_000)
}

fn team(limit: Nanos) -> Vec<Leased> {
    vec![Leased {
        key: COUNTER.into(),
        limit,
    }]
}

/// Grants `asks` as Redis would with `used` already on the counter.
fn grant_all(asks: &[LeaseAsk], used: Nanos) -> Vec<Granted> {
    asks.iter()
        .map(|a| Granted {
            delta: a.want,
            used: Nanos(used.0 + a.want.0),
            fresh: false,
        })
        .collect()
}

/// A book whose first call (worst case `w`, under `limit`) was granted all it asked, and
/// that call's asks.
fn granted_first_call(limit: Nanos, w: Nanos) -> (Book, Vec<LeaseAsk>) {
    let mut book = Book::new(Sizing::default());
    let Claim::Short(asks) = book.claim(TEAM, COUNTER, &team(limit), w) else {
        panic!("an empty book holds nothing")
    };
    book.granted(&asks, &grant_all(&asks, Nanos::ZERO));
    (book, asks)
}

#[test]
fn a_lease_is_a_slice_of_what_remains_capped_and_nothing_near_the_limit() {
    let s = Sizing::default();
    let call = Nanos(1_000_000);
    // 100 USD free: 1/16 of it is 6.25 USD, above the cap of 64 calls (0.064 USD).
    assert_eq!(
        s.target(Some(usd(100)), Nanos::ZERO, Nanos::ZERO, call),
        Nanos(64_000_000)
    );
    // 0.32 USD free: 1/16 is 0.02 USD = 20 calls.
    assert_eq!(
        s.target(Some(Nanos(320_000_000)), Nanos::ZERO, Nanos::ZERO, call),
        Nanos(20_000_000)
    );
    // What this replica holds counts as remaining to it (it is not another's).
    assert_eq!(
        s.target(Some(Nanos(320_000_000)), Nanos(20_000_000), Nanos(20_000_000), call),
        Nanos(20_000_000)
    );
    // 0.03 USD free: 1/16 is under two calls: no lease beyond each call's own shortfall.
    assert_eq!(
        s.target(Some(Nanos(30_000_000)), Nanos::ZERO, Nanos::ZERO, call),
        Nanos::ZERO
    );
    // Over the limit: nothing, never negative.
    assert_eq!(s.target(Some(usd(1)), usd(2), Nanos::ZERO, call), Nanos::ZERO);
    assert_eq!(s.target(None, usd(2), Nanos::ZERO, call), Nanos(64_000_000));
}

#[test]
fn calls_are_admitted_in_memory_while_the_lease_has_room_and_ask_only_their_shortfall() {
    let mut book = Book::new(Sizing::default());
    let w = Nanos(1_000_000);
    let Claim::Short(asks) = book.claim(TEAM, COUNTER, &team(usd(100)), w) else {
        panic!("an empty book holds nothing")
    };
    assert_eq!(asks[0].need, w, "the first call needs its whole worst case");
    assert_eq!(asks[0].want, Nanos(w.0 + 64_000_000), "and asks for a lease on top");
    book.granted(&asks, &grant_all(&asks, Nanos::ZERO));
    assert_eq!(book.idle(COUNTER), Nanos(64_000_000));
    for _ in 0..64 {
        assert_eq!(book.claim(TEAM, COUNTER, &team(usd(100)), w), Claim::Admitted);
    }
    assert_eq!(book.idle(COUNTER), Nanos::ZERO);
    // A second claim on credit while the first is being asked for asks only for its own.
    let Claim::Short(a) = book.claim(TEAM, COUNTER, &team(usd(100)), w) else {
        panic!()
    };
    let Claim::Short(b) = book.claim(TEAM, COUNTER, &team(usd(100)), w) else {
        panic!()
    };
    assert_eq!((a[0].need, b[0].need), (w, w));
    // Refused: both withdraw, and the in-flight sum is what it was.
    book.withdraw(&team(usd(100)), w);
    book.withdraw(&team(usd(100)), w);
    assert_eq!(book.idle(COUNTER), Nanos::ZERO);
}

#[test]
fn a_call_needs_room_on_every_counter_it_charges() {
    let mut book = Book::new(Sizing::default());
    let w = Nanos(1_000_000);
    let both = vec![
        Leased {
            key: COUNTER.into(),
            limit: usd(100),
        },
        Leased {
            key: "tally:{t}:c:m:wf:rag".into(),
            limit: usd(100),
        },
    ];
    let Claim::Short(asks) = book.claim(TEAM, COUNTER, &both, w) else {
        panic!()
    };
    // Only the team counter's lease was granted more than the call.
    let grants = [
        Granted {
            delta: Nanos(10 * w.0),
            used: Nanos(10 * w.0),
            fresh: true,
        },
        Granted {
            delta: w,
            used: w,
            fresh: true,
        },
    ];
    book.granted(&asks, &grants);
    match book.claim(TEAM, COUNTER, &both, w) {
        Claim::Short(asks) => assert_eq!((asks[0].need, asks[1].need), (Nanos::ZERO, w)),
        Claim::Admitted => panic!("admitted with no room on the workflow's lease"),
    }
}

#[test]
fn settling_moves_the_cost_out_of_the_lease_and_frees_the_rest_of_the_worst_case() {
    let w = Nanos(1_000_000);
    let (mut book, _) = granted_first_call(usd(100), w);
    let before = book.idle(COUNTER);
    book.settle([COUNTER], w, Nanos(400_000));
    // granted fell by the cost, in flight by the worst case: 600,000 more idle.
    assert_eq!(book.idle(COUNTER), Nanos(before.0 + 600_000));
    // A settlement never drives the book negative.
    book.settle([COUNTER], w, usd(1));
    assert_eq!(book.idle(COUNTER), Nanos::ZERO);
}

#[test]
fn near_the_limit_leases_shrink_to_each_calls_shortfall_and_the_rest_is_returned() {
    let mut book = Book::new(Sizing::default());
    let w = Nanos(1_000_000);
    let limit = Nanos(40_000_000);
    let Claim::Short(asks) = book.claim(TEAM, COUNTER, &team(limit), w) else {
        panic!()
    };
    // 40 calls' worth: a 16th is 2.5 calls, so the lease aims at 2.5 calls on top.
    assert_eq!(asks[0].want, Nanos(w.0 + 2_500_000));
    book.granted(&asks, &grant_all(&asks, Nanos::ZERO));
    book.settle([COUNTER], w, w);
    // Now spent and held come near the limit: 38 of 40 used, 2.5 calls idle.
    book.granted(
        &[asks[0].clone()],
        &[Granted {
            delta: Nanos::ZERO,
            used: Nanos(38_000_000),
            fresh: false,
        }],
    );
    let upkeep = book.upkeep();
    assert_eq!(upkeep.len(), 1);
    assert_eq!(upkeep[0].asks[0].want, Nanos(-2_500_000), "the idle lease is returned");
    assert_eq!(upkeep[0].asks[0].need, Nanos::ZERO);
}

#[test]
fn a_lease_upkeep_finds_expired_resets_what_the_book_believes_held() {
    let w = Nanos(1_000_000);
    let (mut book, asks) = granted_first_call(usd(100), w);
    book.settle([COUNTER], w, w);
    let gone = |delta| Granted {
        delta: Nanos(delta),
        used: Nanos::ZERO,
        fresh: true,
    };
    let upkeep = book.upkeep().remove(0);
    // A claim's grant applied between the upkeep's request and its reply may have created
    // the lease anew: the book keeps it.
    book.granted(&asks[..1], &[gone(0)]);
    book.upkept(&upkeep.asks, &[gone(0)]);
    assert_eq!(book.idle(COUNTER), Nanos(64_000_000));
    // Nothing between them: the lease expired, nothing is held.
    let upkeep = book.upkeep().remove(0);
    book.upkept(&upkeep.asks, &[gone(0)]);
    assert_eq!(book.idle(COUNTER), Nanos::ZERO);
}

#[test]
fn claim_replies_in_any_order_add_up_to_what_redis_granted() {
    let mut book = Book::new(Sizing::default());
    let w = Nanos(40_000_000);
    let claims: Vec<_> = (0..3)
        .map(|_| match book.claim(TEAM, COUNTER, &team(usd(1)), w) {
            Claim::Short(asks) => asks,
            Claim::Admitted => panic!("nothing held yet"),
        })
        .collect();
    // Redis ran them in order (the first created the lease); their replies come back reversed.
    for (i, asks) in claims.iter().enumerate().rev() {
        let grant = Granted {
            delta: asks[0].need,
            used: Nanos((i as i64 + 1) * w.0),
            fresh: i == 0,
        };
        book.granted(asks, &[grant]);
    }
    book.settle([COUNTER], w, Nanos::ZERO);
    assert_eq!(book.idle(COUNTER), w, "every grant counted");
}

#[test]
fn refills_start_below_half_the_target_once_and_returns_cover_everything() {
    let w = Nanos(1_000_000);
    let (mut book, _) = granted_first_call(usd(100), w);
    assert_eq!(book.refill(&team(usd(100))), None, "full");
    for _ in 0..40 {
        book.claim(TEAM, COUNTER, &team(usd(100)), w);
    }
    let refill = book.refill(&team(usd(100))).expect("below half the target");
    assert_eq!(refill.asks[0].want, Nanos(40 * w.0));
    assert_eq!(book.refill(&team(usd(100))), None, "one refill at a time");
    book.refilled(&refill.asks);
    assert!(book.refill(&team(usd(100))).is_some());
    let back = book.return_all();
    assert!(back[0].asks[0].want.0 < -(1 << 60), "returns whatever Redis holds");
    assert_eq!(book.idle(COUNTER), Nanos::ZERO);
}

#[test]
fn a_lease_no_call_uses_gives_its_idle_headroom_back() {
    let w = Nanos(1_000_000);
    let (mut book, _) = granted_first_call(usd(100), w);
    for _ in 0..STALE_ROUNDS {
        assert_eq!(book.upkeep()[0].asks[0].want, Nanos::ZERO, "kept alive");
    }
    // The call in flight stays covered: only the idle part goes back.
    assert_eq!(book.upkeep()[0].asks[0].want, Nanos(-64_000_000));
}

#[test]
fn headroom_on_its_way_back_cannot_admit_a_call() {
    let w = Nanos(1_000_000);
    let (mut book, _) = granted_first_call(usd(100), w);
    for _ in 0..STALE_ROUNDS {
        book.upkeep();
    }
    // The stale lease's idle 64 calls go back; before Redis has answered, a call arrives.
    let back = book.upkeep().remove(0);
    assert_eq!(back.asks[0].want, Nanos(-64_000_000));
    assert!(
        matches!(book.claim(TEAM, COUNTER, &team(usd(100)), w), Claim::Short(_)),
        "the returned headroom is not the book's any more"
    );
    // Redis's answer does not take it from the book a second time.
    book.upkept(
        &back.asks,
        &[Granted {
            delta: Nanos(-64_000_000),
            used: w,
            fresh: false,
        }],
    );
    book.settle([COUNTER], w, w);
    assert_eq!(book.idle(COUNTER), Nanos::ZERO);
}

#[test]
fn near_the_limit_a_settled_calls_unused_worst_case_goes_back_at_once() {
    let mut book = Book::new(Sizing::default());
    let w = Nanos(1_000_000);
    // A budget of 10 worst cases: a 16th is under two, so each call leases its own.
    let limit = Nanos(10 * w.0);
    let Claim::Short(asks) = book.claim(TEAM, COUNTER, &team(limit), w) else {
        panic!()
    };
    assert_eq!(asks[0].want, w, "its own worst case, nothing on top");
    book.granted(&asks, &grant_all(&asks, Nanos::ZERO));
    book.settle([COUNTER], w, Nanos(300_000));
    let back = book.give_back([COUNTER]).expect("700,000 idle near the limit");
    assert_eq!(back.asks[0].want, Nanos(-700_000));
    assert_eq!(book.idle(COUNTER), Nanos::ZERO, "taken from the book when asked");
    assert_eq!(book.give_back([COUNTER]), None, "nothing left to give");

    // Far from the limit the lease keeps its headroom for the next calls.
    let (mut roomy, _) = granted_first_call(usd(100), w);
    roomy.settle([COUNTER], w, Nanos(300_000));
    assert_eq!(roomy.give_back([COUNTER]), None);
}

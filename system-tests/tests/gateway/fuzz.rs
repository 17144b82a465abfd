//! Random and mutated requests to every method of every service, directly
//! and through the gateway over gRPC and gRPC-web (proptest generates them
//! and shrinks a failing one).
//!
//! Properties, in two phases: bytes that are not the method's message are
//! INVALID_ARGUMENT (PERMISSION_DENIED for an internal method through the
//! gateway) and write nothing; then bytes that happen to decode (about one in
//! ten) get an answer about the caller or the request (validation,
//! permission, not found, ...), never INTERNAL or UNKNOWN. After each phase
//! every service still answers valid requests. `--nocapture` shows the
//! figures each run achieved.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use proptest::{
    collection::vec,
    prelude::*,
    sample::select,
    test_runner::{Config, TestRunner},
};
use tonic::Code;

use crate::{
    bad_bytes::{assert_every_service_answers, expected_for_undecodable},
    helpers::{QuerySettings, spawn_app_with_query},
    raw::{Clients, Method, TARGETS, Target, methods},
};

/// Requests in each of the two phases; together they take about 15 s on a
/// 2-core machine with a debug build, alone.
const CASES_PER_PHASE: u32 = 3_000;

/// A request: the method (an index into the table), where it goes, the bytes.
type Case = (usize, Target, Vec<u8>);

/// Random bytes, or `valid` with bytes flipped, cut off, appended or inserted.
fn payload(valid: Bytes) -> BoxedStrategy<Vec<u8>> {
    let random = vec(any::<u8>(), 0..64);
    if valid.is_empty() {
        return random.boxed();
    }
    let len = valid.len();
    let (flip, cut, append, insert) = (valid.clone(), valid.clone(), valid.clone(), valid);
    prop_oneof![
        2 => random,
        3 => vec((0..len, 1..=u8::MAX), 1..4).prop_map(move |flips| {
            let mut bytes = flip.to_vec();
            for (at, mask) in flips {
                bytes[at] ^= mask;
            }
            bytes
        }),
        2 => (0..len).prop_map(move |end| cut[..end].to_vec()),
        2 => vec(any::<u8>(), 1..16).prop_map(move |tail| [&append[..], &tail[..]].concat()),
        1 => (0..=len, vec(any::<u8>(), 1..8)).prop_map(move |(at, extra)| {
            let mut bytes = insert.to_vec();
            bytes.splice(at..at, extra);
            bytes
        }),
    ]
    .boxed()
}

fn cases(methods: Arc<Vec<Method>>) -> impl Strategy<Value = Case> {
    (0..methods.len(), select(TARGETS.to_vec())).prop_flat_map(move |(index, target)| {
        (Just(index), Just(target), payload(methods[index].valid.clone()))
    })
}

/// What a phase sent and heard.
#[derive(Default)]
struct Tally {
    sent: BTreeMap<String, u32>,
    codes: BTreeMap<i32, u32>,
}

impl Tally {
    fn record(&mut self, target: Target, code: Code) {
        *self.sent.entry(format!("{target:?}")).or_default() += 1;
        *self.codes.entry(code as i32).or_default() += 1;
    }

    fn report(&self, phase: &str, took: Duration) {
        let total: u32 = self.sent.values().sum();
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|(code, n)| format!("{:?} {n}", Code::from_i32(*code)))
            .collect();
        println!(
            "fuzz {phase}: {total} messages in {took:.1?}, by target {:?}; codes: {}",
            self.sent,
            codes.join(", ")
        );
    }
}

/// Sends [`CASES_PER_PHASE`] requests drawn from `cases` whose payload
/// decodes, or does not, as `decodable` says, and checks each answer.
fn run(clients: &Clients<'_>, methods: &Arc<Vec<Method>>, decodable: bool) {
    let phase = if decodable { "decodable" } else { "undecodable" };
    let table = methods.clone();
    let strategy = cases(methods.clone()).prop_filter(phase, move |(index, _, payload)| {
        (table[*index].decodes)(payload) == decodable
    });
    let runtime = tokio::runtime::Handle::current();
    let tally = RefCell::new(Tally::default());
    let started = Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: CASES_PER_PHASE,
        // Nine in ten payloads do not decode: room to filter them out.
        max_local_rejects: 20 * CASES_PER_PHASE,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&strategy, |(index, target, payload)| {
        let method = &methods[index];
        let status = runtime.block_on(clients.send(method, target, payload.into()));
        tally.borrow_mut().record(target, status.code());
        if decodable {
            prop_assert!(
                !matches!(status.code(), Code::Internal | Code::Unknown),
                "{} via {target:?}: {status:?}",
                method.path
            );
        } else {
            prop_assert_eq!(
                status.code(),
                expected_for_undecodable(method, target),
                "{} via {:?}: {:?}",
                method.path,
                target,
                status
            );
        }
        Ok(())
    });
    tally.borrow().report(phase, started.elapsed());
    if let Err(failure) = outcome {
        panic!("{phase}: {failure}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_requests_are_the_callers_fault_write_nothing_and_leave_every_service_answering() {
    // Arrange: a read of a call query-svc does not know (a mutated call id)
    // waits for it to appear only briefly.
    let query = QuerySettings {
        read_your_writes_timeout_ms: 50,
        ..QuerySettings::default()
    };
    let app = spawn_app_with_query(query, |_| {}).await;
    let clients = Clients::new(&app);
    let methods = Arc::new(methods());
    let before = app.stored().await;

    // Act / Assert: first only bytes that decode as no request of theirs.
    tokio::task::block_in_place(|| run(&clients, &methods, false));
    assert_eq!(app.stored().await, before, "undecodable requests write nothing");
    assert_every_service_answers(&clients).await;

    // Then only bytes that decode; some make valid requests, which may write.
    tokio::task::block_in_place(|| run(&clients, &methods, true));
    assert_every_service_answers(&clients).await;
}

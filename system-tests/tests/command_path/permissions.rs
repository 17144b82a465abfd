//! Ownership: customers act on their own calls, only drivers accept, only the
//! assigned driver moves the trip.

use svc_kit::identity::Caller;
use taxi_proto::call::v1::{
    AcceptCallRequest, CallStatus, CancelCallRequest, CompleteTripRequest, GetCallRequest,
    SettleBalanceRequest, StartTripRequest,
};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::helpers::*;

/// A refusal with the asked-for id masked, so that the answers about two
/// different ids can be compared word for word.
fn answer(result: Result<tonic::Response<impl std::fmt::Debug>, Status>, call_id: &str) -> (Code, String) {
    let status = result.expect_err("refused");
    (status.code(), status.message().replace(call_id, "<id>"))
}

/// What every call-svc method answers a stranger (another customer, a driver
/// who is not on the call) about `call_id`.
async fn strangers_answers(system: &TestSystem, call_id: &str) -> Vec<(Code, String)> {
    let client = system.call_client();
    let (customer, driver) = (Uuid::new_v4(), system.online_driver().await);
    let id = || call_id.to_owned();
    vec![
        answer(
            client
                .clone()
                .get_call(as_customer(customer, GetCallRequest { call_id: id() }))
                .await,
            call_id,
        ),
        answer(
            client
                .clone()
                .get_call(as_driver(driver, GetCallRequest { call_id: id() }))
                .await,
            call_id,
        ),
        answer(
            client
                .clone()
                .cancel_call(as_customer(
                    customer,
                    CancelCallRequest {
                        call_id: id(),
                        expected_version: 0,
                    },
                ))
                .await,
            call_id,
        ),
        answer(
            client
                .clone()
                .accept_call(as_driver(driver, AcceptCallRequest { call_id: id() }))
                .await,
            call_id,
        ),
        answer(
            client
                .clone()
                .start_trip(as_driver(driver, StartTripRequest { call_id: id() }))
                .await,
            call_id,
        ),
        answer(
            client
                .clone()
                .settle_balance(as_customer(
                    customer,
                    SettleBalanceRequest {
                        call_id: id(),
                        payment_method: "tok_visa".into(),
                    },
                ))
                .await,
            call_id,
        ),
        answer(
            client
                .clone()
                .complete_trip(as_driver(
                    driver,
                    CompleteTripRequest {
                        call_id: id(),
                        distance_m: 1_000,
                    },
                ))
                .await,
            call_id,
        ),
    ]
}

#[tokio::test]
async fn someone_elses_call_answers_every_method_exactly_like_a_call_that_does_not_exist() {
    // Arrange: a call in trip, which only its customer and its driver may see.
    let system = spawn_system().await;
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;
    start(&system.call_client(), driver, &call.call_id)
        .await
        .expect("the assigned driver starts");

    // Act
    let theirs = strangers_answers(&system, &call.call_id).await;
    let nobodys = strangers_answers(&system, &Uuid::new_v4().to_string()).await;

    // Assert: the same code and words, and nothing changed.
    assert_eq!(theirs, nobodys);
    assert!(
        theirs
            .iter()
            .all(|answer| *answer == (Code::NotFound, "call <id> not found".to_owned())),
        "{theirs:?}"
    );
    assert_eq!(system.get_call(&call.call_id).await.status(), CallStatus::InTrip);
    assert_eq!(system.ledger(&call.call_id).await.entries.len(), 1, "no refund");
}

#[tokio::test]
async fn another_driver_can_neither_start_nor_complete_the_trip() {
    // Arrange
    let system = spawn_system().await;
    let (call, driver) = system.accepted_call(Uuid::new_v4()).await;
    let intruder = system.online_driver().await;
    let client = system.call_client();

    // Act
    let start = StartTripRequest {
        call_id: call.call_id.clone(),
    };
    let started = client
        .clone()
        .start_trip(as_driver(intruder, start.clone()))
        .await
        .expect_err("not assigned");
    client
        .clone()
        .start_trip(as_driver(driver, start))
        .await
        .expect("the assigned driver starts");
    let complete = CompleteTripRequest {
        call_id: call.call_id.clone(),
        distance_m: 1_000,
    };
    let completed = client
        .clone()
        .complete_trip(as_driver(intruder, complete))
        .await
        .expect_err("not assigned");

    // Assert: to the intruder, the call does not exist.
    assert_eq!(started.code(), Code::NotFound);
    assert_eq!(completed.code(), Code::NotFound);
    assert_eq!(system.get_call(&call.call_id).await.status(), CallStatus::InTrip);
}

#[tokio::test]
async fn roles_are_enforced_and_identity_is_required() {
    // Arrange
    let system = spawn_system().await;
    system.online_driver().await;
    let customer = Uuid::new_v4();
    let call = system.request_call(customer).await;
    let client = system.call_client();

    // Act
    let customer_accepts = accept_as(&system, Caller::Customer(customer), &call.call_id).await;
    let driver_requests = client
        .clone()
        .request_call(as_driver(Uuid::new_v4(), call_request("tok_visa")))
        .await
        .expect_err("drivers do not call taxis");
    let anonymous = client
        .clone()
        .request_call(tonic::Request::new(call_request("tok_visa")))
        .await
        .expect_err("no identity");
    let analyst_reads = client
        .clone()
        .get_call(with_identity(
            Caller::Analyst(Uuid::new_v4()),
            GetCallRequest {
                call_id: call.call_id.clone(),
            },
        ))
        .await;

    // Assert
    assert_eq!(customer_accepts, Code::PermissionDenied);
    assert_eq!(driver_requests.code(), Code::PermissionDenied);
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert!(analyst_reads.is_ok(), "analysts read any call");
    assert_eq!(system.count("SELECT count(*) FROM call.calls").await, 1);
}

async fn accept_as(system: &TestSystem, caller: Caller, call_id: &str) -> Code {
    let request = taxi_proto::call::v1::AcceptCallRequest {
        call_id: call_id.into(),
    };
    system
        .call_client()
        .accept_call(with_identity(caller, request))
        .await
        .expect_err("refused")
        .code()
}

#[tokio::test]
async fn a_peer_that_only_states_an_identity_can_neither_cancel_a_call_nor_request_one() {
    // Arrange: the owner's id in plain metadata, as any process that reaches
    // call-svc's port could send it, with no token the gateway signed.
    let system = spawn_system().await;
    let owner = Uuid::new_v4();
    let (call, _driver) = system.accepted_call(owner).await;
    fn stated<T>(owner: Uuid, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("x-taxi-role", "customer".parse().expect("ascii"));
        metadata.insert("x-taxi-subject", owner.to_string().parse().expect("ascii"));
        request
    }
    let cancel = CancelCallRequest {
        call_id: call.call_id.clone(),
        expected_version: 0,
    };

    // Act
    let canceled = system
        .call_client()
        .cancel_call(stated(owner, cancel))
        .await
        .expect_err("not authenticated");
    let requested = system
        .call_client()
        .request_call(stated(owner, call_request("tok_visa")))
        .await
        .expect_err("not authenticated");

    // Assert: refused, the call untouched and no second call made.
    assert_eq!(canceled.code(), Code::Unauthenticated);
    assert_eq!(requested.code(), Code::Unauthenticated);
    assert_eq!(
        system.get_call(&call.call_id).await.status(),
        CallStatus::Accepted
    );
    assert_eq!(system.ledger(&call.call_id).await.entries.len(), 1, "no refund");
}

//! Who may do what: commands are for internal services; a call's ledger is
//! for services, analysts and the customer who paid.

use svc_kit::identity::Caller;
use taxi_proto::payment::v1::ListPaymentsRequest;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::helpers::{CARD, advance, as_caller, refund, settle, spawn_app};

fn list(call_id: Uuid) -> ListPaymentsRequest {
    ListPaymentsRequest {
        call_id: call_id.to_string(),
    }
}

#[tokio::test]
async fn commands_without_an_identity_are_unauthenticated() {
    // Arrange
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let call_id = Uuid::new_v4();

    // Act
    let advance = client
        .charge_advance(Request::new(advance(call_id, Uuid::new_v4(), 1_000, CARD, "k1")))
        .await
        .expect_err("anonymous");
    let listed = client
        .list_payments(Request::new(list(call_id)))
        .await
        .expect_err("anonymous");

    // Assert
    assert_eq!(advance.code(), Code::Unauthenticated);
    assert_eq!(listed.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn commands_from_anyone_but_a_service_are_permission_denied_and_write_nothing() {
    // Arrange
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let call_id = Uuid::new_v4();
    let callers = [
        Caller::Customer(Uuid::new_v4()),
        Caller::Driver(Uuid::new_v4()),
        Caller::Analyst(Uuid::new_v4()),
    ];

    for caller in &callers {
        // Act
        let charged = client
            .charge_advance(as_caller(
                caller,
                advance(call_id, Uuid::new_v4(), 1_000, CARD, "k1"),
            ))
            .await
            .expect_err("not a service");
        let settled = client
            .settle_final(as_caller(caller, settle(call_id, 0, "k2")))
            .await
            .expect_err("not a service");
        let refunded = client
            .refund(as_caller(caller, refund(call_id, 1, "k3")))
            .await
            .expect_err("not a service");

        // Assert
        assert_eq!(charged.code(), Code::PermissionDenied, "{caller:?}");
        assert_eq!(settled.code(), Code::PermissionDenied, "{caller:?}");
        assert_eq!(refunded.code(), Code::PermissionDenied, "{caller:?}");
    }
    assert_eq!(app.rows_written().await, 0);
}

#[tokio::test]
async fn a_customer_lists_the_ledger_of_a_call_they_paid_for() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    app.settle_final(settle(paid.call_id, 12_000, "settle-1"))
        .await
        .expect("settled");

    // Act
    let listed = app
        .client
        .clone()
        .list_payments(as_caller(&Caller::Customer(paid.customer_id), list(paid.call_id)))
        .await
        .expect("own ledger")
        .into_inner();

    // Assert
    assert_eq!(listed.net_paid_krw, 12_000);
    assert_eq!(listed.entries.len(), 2);
    assert_eq!(listed.entries[0], paid.advance, "oldest first");
    assert_eq!(listed.entries[1].amount_krw, 2_000);
}

#[tokio::test]
async fn another_customer_sees_an_empty_ledger_exactly_as_for_a_call_that_does_not_exist() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;
    let stranger = Caller::Customer(Uuid::new_v4());

    // Act
    let theirs = app
        .client
        .clone()
        .list_payments(as_caller(&stranger, list(paid.call_id)))
        .await
        .expect("answered")
        .into_inner();
    let nobodys = app
        .client
        .clone()
        .list_payments(as_caller(&stranger, list(Uuid::new_v4())))
        .await
        .expect("answered")
        .into_inner();

    // Assert
    assert_eq!(theirs, nobodys);
    assert!(
        theirs.entries.is_empty() && theirs.net_paid_krw == 0,
        "{theirs:?}"
    );
}

#[tokio::test]
async fn a_driver_is_denied_the_ledger() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let status = app
        .client
        .clone()
        .list_payments(as_caller(&Caller::Driver(Uuid::new_v4()), list(paid.call_id)))
        .await
        .expect_err("drivers do not read payments");

    // Assert
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_analyst_lists_any_ledger() {
    // Arrange
    let app = spawn_app().await;
    let paid = app.paid_call(10_000).await;

    // Act
    let listed = app
        .client
        .clone()
        .list_payments(as_caller(&Caller::Analyst(Uuid::new_v4()), list(paid.call_id)))
        .await
        .expect("analysts read every ledger")
        .into_inner();

    // Assert
    assert_eq!(listed.net_paid_krw, 10_000);
}

#[tokio::test]
async fn a_call_without_payments_lists_nothing() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let listed = app
        .client
        .clone()
        .list_payments(as_caller(&Caller::Customer(Uuid::new_v4()), list(Uuid::new_v4())))
        .await
        .expect("empty")
        .into_inner();

    // Assert
    assert!(listed.entries.is_empty());
    assert_eq!(listed.net_paid_krw, 0);
}

/// A request that states its identity in plain metadata, as any process that
/// reaches the port could, with no signed token.
fn stated<T>(role: &str, subject: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-taxi-role", role.parse().expect("ascii"));
    request
        .metadata_mut()
        .insert("x-taxi-subject", subject.parse().expect("ascii"));
    request
}

#[tokio::test]
async fn a_charge_from_a_peer_that_only_states_the_service_role_is_refused_and_charges_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (call_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    let charge = || advance(call_id, customer_id, 990_000, CARD, "forged");
    let gateway =
        svc_kit::identity::Signer::from_config("gateway-grpc-web", &svc_kit::testing::gateway_signer())
            .expect("the fixture key");
    let service_claimed_by_the_gateway = gateway.request(&Caller::Service("call-svc".into()), charge());
    let bogus_token = {
        let mut request = Request::new(charge());
        request.metadata_mut().insert(
            "x-taxi-identity",
            "eyJhbGciOiJub25lIn0.e30.".parse().expect("ascii"),
        );
        request
    };

    // Act
    let outcomes = [
        app.client
            .clone()
            .charge_advance(stated("service", "call-svc", charge()))
            .await,
        app.client
            .clone()
            .charge_advance(service_claimed_by_the_gateway)
            .await,
        app.client.clone().charge_advance(bogus_token).await,
    ];

    // Assert: refused, and nothing reached the ledger or its outbox.
    for outcome in outcomes {
        let status = outcome.expect_err("not an authenticated service");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    assert_eq!(app.rows_written().await, 0);
}

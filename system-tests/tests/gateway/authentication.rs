//! Bearer tokens: only a token the gateway's key signed, for this audience and
//! issuer, within its validity, for a user role, lets a request through.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use taxi_proto::{call::v1::RequestCallResponse, query::v1::ListMyCallsRequest};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_request_without_a_token_is_unauthenticated_over_grpc_and_grpc_web() {
    // Arrange
    let app = spawn_app().await;
    app.online_driver().await;

    // Act
    let over_grpc = app
        .call_client()
        .request_call(tonic::Request::new(call_request()))
        .await
        .expect_err("no token");
    let over_grpc_web = app
        .grpc_web()
        .unary::<RequestCallResponse>("/taxi.call.v1.CallService/RequestCall", None, &call_request())
        .await
        .expect_err("no token");

    // Assert
    assert_eq!(over_grpc.code(), Code::Unauthenticated, "{over_grpc:?}");
    assert_eq!(over_grpc_web.code(), Code::Unauthenticated, "{over_grpc_web:?}");
    assert_eq!(app.calls_stored().await, 0, "no call was created");
}

#[tokio::test]
async fn expired_forged_unsigned_and_misaddressed_tokens_are_unauthenticated_and_create_nothing() {
    // Arrange: one spoiled token per way a token can be wrong.
    let app = spawn_app().await;
    app.online_driver().await;
    let secret = app.config.auth.hs256_secret.expose().to_owned();
    let now = now_secs();
    let customer = app.claims("customer");
    let valid = sign(&customer, &secret);
    let expired = {
        let mut claims = customer.clone();
        (claims.exp, claims.nbf, claims.iat) = (now - 3_600, now - 7_200, now - 7_200);
        sign(&claims, &secret)
    };
    let not_yet_valid = {
        let mut claims = customer.clone();
        claims.nbf = now + 3_600;
        sign(&claims, &secret)
    };
    let other_secret = sign(&customer, "another-secret-entirely");
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&customer).expect("claims as JSON"));
        format!("{header}.{claims}.")
    };
    let other_algorithm = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &customer,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign with HS512");
    let wrong_audience = {
        let mut claims = customer.clone();
        claims.aud = "another-api".into();
        sign(&claims, &secret)
    };
    let wrong_issuer = {
        let mut claims = customer.clone();
        claims.iss = "someone-else".into();
        sign(&claims, &secret)
    };
    let service_role = {
        let mut claims = customer.clone();
        claims.role = "service".into();
        sign(&claims, &secret)
    };
    let subject_not_a_uuid = {
        let mut claims = customer.clone();
        claims.sub = "call-svc".into();
        sign(&claims, &secret)
    };
    let tampered = {
        // A valid signature over other claims: the role was raised to analyst.
        let mut claims = customer.clone();
        claims.role = "analyst".into();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims as JSON"));
        let parts: Vec<&str> = valid.split('.').collect();
        format!("{}.{body}.{}", parts[0], parts[2])
    };
    let cases = [
        ("expired", expired),
        ("not valid yet", not_yet_valid),
        ("signed with another secret", other_secret),
        ("alg none, no signature", unsigned),
        ("HS512 instead of HS256", other_algorithm),
        ("for another audience", wrong_audience),
        ("from another issuer", wrong_issuer),
        ("claiming the service role", service_role),
        ("with a subject that is not a UUID", subject_not_a_uuid),
        ("with tampered claims", tampered),
        ("not a JWT at all", "garbage".to_owned()),
    ];

    // Act
    let mut refused = Vec::new();
    for (case, token) in &cases {
        let outcome = app
            .call_client()
            .request_call(with_token(token, call_request()))
            .await;
        refused.push((*case, outcome.map(|_| ()).map_err(|status| status.code())));
    }
    let stored = app.calls_stored().await;
    let accepted = app
        .query_client()
        .list_my_calls(with_token(&valid, ListMyCallsRequest::default()))
        .await;

    // Assert
    let expected: Vec<_> = cases
        .iter()
        .map(|(case, _)| (*case, Err(Code::Unauthenticated)))
        .collect();
    assert_eq!(refused, expected);
    assert_eq!(stored, 0, "no call was created");
    assert!(accepted.is_ok(), "the unspoiled token is accepted: {accepted:?}");
}

/// A key pair made for these tests only.
const RS256_PRIVATE_KEY: &[u8] = include_bytes!("fixtures/rs256-test-private.pem");
const RS256_PUBLIC_KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/gateway/fixtures/rs256-test-public.pem"
);

#[tokio::test]
async fn with_an_rs256_key_its_signatures_pass_and_the_public_key_is_no_hs256_secret() {
    // Arrange
    let app = spawn_app_with(|config| config.auth.rs256_public_key_file = RS256_PUBLIC_KEY_FILE.into()).await;
    let customer = app.claims("customer");
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &customer,
        &EncodingKey::from_rsa_pem(RS256_PRIVATE_KEY).expect("the test private key"),
    )
    .expect("sign with RS256");
    let public_key = std::fs::read(RS256_PUBLIC_KEY_FILE).expect("the test public key");
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &customer,
        &EncodingKey::from_secret(&public_key),
    )
    .expect("sign with HS256");
    let old_secret = sign(&customer, app.config.auth.hs256_secret.expose());

    // Act
    let list = |token: String| {
        let mut client = app.query_client();
        async move {
            client
                .list_my_calls(with_token(&token, ListMyCallsRequest::default()))
                .await
        }
    };
    let signed = list(rs256).await;
    let confused = list(confused).await.expect_err("the public key is not a secret");
    let old_secret = list(old_secret).await.expect_err("only the RS256 key is used");

    // Assert
    assert!(signed.is_ok(), "{signed:?}");
    assert_eq!(confused.code(), Code::Unauthenticated, "{confused:?}");
    assert_eq!(old_secret.code(), Code::Unauthenticated, "{old_secret:?}");
}

//! The streams are configured once, by intent: a service creates what is
//! missing and leaves what an operator set alone, unless told to update it.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use eventbus::{NatsConfig, stream as streams, testing};

async fn settings_of(js: &jetstream::Context, name: &str) -> stream::Config {
    let mut stream = js.get_stream(name).await.expect("the stream exists");
    stream.info().await.expect("stream info").config.clone()
}

async fn connect(config: &NatsConfig) -> jetstream::Context {
    streams::connect(config, "streams-test").await.expect("connect")
}

#[tokio::test]
async fn a_missing_stream_is_created_with_the_configured_retention() {
    // Arrange
    let config = NatsConfig {
        max_age_hours: 48,
        max_bytes: 64 * 1024 * 1024,
        ..testing::isolated()
    };
    let js = connect(&config).await;

    // Act
    streams::ensure_streams(&js, &config).await.expect("ensure");

    // Assert
    let events = settings_of(&js, &config.subjects().stream()).await;
    assert_eq!(events.max_age, Duration::from_secs(48 * 3_600));
    assert_eq!(events.max_bytes, 64 * 1024 * 1024);
    assert_eq!(events.num_replicas, 1);
    let dead_letters = settings_of(&js, &config.subjects().dead_letter_stream()).await;
    assert_eq!(dead_letters.max_bytes, 64 * 1024 * 1024);
}

#[tokio::test]
async fn a_service_at_its_defaults_leaves_an_operators_retention_alone_unless_told_to_update() {
    // Arrange: the operator keeps a week of events.
    let operator = NatsConfig {
        max_age_hours: 7 * 24,
        ..testing::isolated()
    };
    let js = connect(&operator).await;
    streams::ensure_streams(&js, &operator)
        .await
        .expect("the operator's streams");
    let name = operator.subjects().stream();
    let service_at_defaults = NatsConfig {
        max_age_hours: 0,
        ..operator.clone()
    };

    // Act: a service with other settings starts, twice.
    streams::ensure_streams(&js, &service_at_defaults)
        .await
        .expect("ensure");
    streams::ensure_streams(&js, &service_at_defaults)
        .await
        .expect("ensure again");

    // Assert
    assert_eq!(
        settings_of(&js, &name).await.max_age,
        Duration::from_secs(7 * 24 * 3_600),
        "the operator's retention stays"
    );

    // Act: one told to update the streams.
    let updating = NatsConfig {
        update_streams: true,
        ..service_at_defaults
    };
    streams::ensure_streams(&js, &updating).await.expect("update");

    // Assert
    assert_eq!(settings_of(&js, &name).await.max_age, Duration::ZERO);
}

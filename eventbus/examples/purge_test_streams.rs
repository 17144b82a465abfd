//! Deletes the streams tests left on a NATS server (names starting `TEST_`).
//! The test script runs it before the suite: `cargo run -p eventbus --example purge_test_streams`.

use futures::TryStreamExt as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let js = async_nats::jetstream::new(async_nats::connect(&url).await?);
    let names: Vec<String> = js.stream_names().try_collect().await?;
    let mut purged = 0;
    for name in names.iter().filter(|name| name.starts_with("TEST_")) {
        js.delete_stream(name).await?;
        purged += 1;
    }
    println!("purged {purged} test streams from {url}");
    Ok(())
}

//! A native client of the socket layer on several server URLs, for the
//! failover tests.

use std::sync::{Arc, Mutex};

use heartline::core::{BackoffConfig, Config, Jitter};
use heartline::native::{Client, ClientOptions, SubscriptionGuard};
use heartline_protocol::ClientMessage;

/// `(epoch, seq, id)` of every chat message a native client's handler got.
pub type Deliveries = Arc<Mutex<Vec<(u64, u64, String)>>>;

/// The socket layer's native client on `urls`, keeping the token of its
/// first `welcome` (its identity on every process), with `lobby` as a
/// standing subscription (resumed with `since`) and its deliveries
/// recorded while the guards live.
pub fn failover_client(urls: [&str; 2]) -> (Client, Deliveries, [SubscriptionGuard; 2]) {
    native_client(&urls, fast_retries())
}

/// Retries every 100-400 ms, forever.
pub fn fast_retries() -> Config {
    Config {
        backoff: BackoffConfig {
            base: 100,
            factor: 2.0,
            cap: 400,
            jitter: Jitter::None,
        },
        max_retries: None,
        ..Config::default()
    }
}

/// [`failover_client`] on any URLs with any policy.
pub fn native_client(
    urls: &[&str],
    config: Config,
) -> (Client, Deliveries, [SubscriptionGuard; 2]) {
    let token: Arc<Mutex<Option<String>>> = Arc::default();
    let greeting_token = Arc::clone(&token);
    let options = ClientOptions::new().config(config).greeting(move || {
        let token = greeting_token.lock().ok()?.clone();
        serde_json::to_value(ClientMessage::Hello {
            name: "ada".into(),
            token,
        })
        .ok()
    });
    let urls: Vec<String> = urls.iter().map(|url| (*url).to_owned()).collect();
    let client = Client::spawn(urls, options).expect("client");
    let welcome = client.on("welcome", move |welcome| {
        if let (Some(t), Ok(mut token)) = (welcome.value["token"].as_str(), token.lock()) {
            token.get_or_insert_with(|| t.to_owned());
        }
    });
    let deliveries: Deliveries = Arc::default();
    let sink = Arc::clone(&deliveries);
    let chat = client.on("chat.message", move |message| {
        let v = &message.value;
        if let Ok(mut sink) = sink.lock() {
            sink.push((
                v["epoch"].as_u64().unwrap_or(0),
                v["seq"].as_u64().unwrap_or(0),
                v["id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    });
    (client, deliveries, [welcome, chat])
}

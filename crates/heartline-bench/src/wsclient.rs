//! Plain native WebSocket clients of the demo server (tokio-tungstenite,
//! no socket layer): `hello` and its `welcome`, and bounded reads.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use heartline_e2e::{Error, Result};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One client connection.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `ws://<server>/ws`, says `hello` as `name` (with `token`, to
/// keep an identity) and waits for `welcome`; answers the socket and the
/// session token.
pub async fn connect_hello(
    server: SocketAddr,
    name: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(Socket, String)> {
    let url = format!("ws://{server}/ws");
    let (mut socket, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(&url))
        .await
        .map_err(|_| Error::timeout(format!("connecting to {url}"), timeout))?
        .map_err(|e| Error::Other(format!("connecting to {url}: {e}")))?;
    let mut hello = json!({ "socketType": "hello", "name": name });
    if let Some(token) = token {
        hello["token"] = json!(token);
    }
    send_json(&mut socket, &hello).await?;
    let welcome = next_of_type(&mut socket, "welcome", timeout).await?;
    let token = welcome["token"]
        .as_str()
        .ok_or_else(|| Error::Other(format!("a welcome without a token: {welcome}")))?
        .to_owned();
    Ok((socket, token))
}

/// Sends `value` as one text frame.
pub async fn send_json(socket: &mut Socket, value: &Value) -> Result<()> {
    socket
        .send(Message::text(value.to_string()))
        .await
        .map_err(|e| Error::Other(format!("sending {value}: {e}")))
}

/// Reads frames until one of `socket_type` arrives (answered) or an
/// `error` (an error); other frames are skipped.
pub async fn next_of_type(
    socket: &mut Socket,
    socket_type: &str,
    timeout: Duration,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let value = next_json(socket, deadline).await?;
        match value["socketType"].as_str() {
            Some(t) if t == socket_type => return Ok(value),
            Some("error") => {
                return Err(Error::Other(format!(
                    "the server refused, waiting for {socket_type}: {value}"
                )));
            }
            _ => {}
        }
    }
}

/// The next text frame as JSON, before `deadline`.
pub async fn next_json(socket: &mut Socket, deadline: tokio::time::Instant) -> Result<Value> {
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .map_err(|_| Error::Other("timed out reading from the server".to_owned()))?
            .ok_or_else(|| Error::Other("the server closed the connection".to_owned()))?
            .map_err(|e| Error::Other(format!("reading from the server: {e}")))?;
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text)
                .map_err(|e| Error::Other(format!("a frame that is not JSON ({e}): {text}")));
        }
    }
}

/// Sends a close frame and waits (bounded) for the server's close.
pub async fn close(mut socket: Socket, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        if socket.close(None).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

//! A minimal terminal chat with one other user, built on the SDK.
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run --release -p chinwag-client --example chat -- http://127.0.0.1:8080 alice 'alice password' bob
//! ```
//!
//! Signs up (or logs in) as the given user, prints every message of every
//! channel, and sends each line typed on standard input to the peer. Kill
//! and restart the server meanwhile: the client reconnects, resends what was
//! not acknowledged and shows what it missed, each message once.

use chinwag_client::{Api, Client, ClientConfig, ClientError, Event, Target};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, username, password, peer] = args.as_slice() else {
        return Err(ClientError::Protocol("usage: chat BASE_URL USERNAME PASSWORD PEER_USERNAME".into()));
    };
    let api = Api::new(base);
    match api.signup(username, password).await {
        // Already signed up is fine; any other refusal (a weak password, a
        // bad username) is worth telling.
        Ok(_) => {}
        Err(ClientError::Server(e)) if e.code == chinwag_proto::ErrorCode::UsernameTaken => {}
        Err(e) => return Err(e),
    }
    let session = api.login(username, password).await?;
    let peer = api.user_by_name(&session.token, peer).await?;
    let mut client = Client::connect(ClientConfig::new(base, &session.token)).await?;
    println!("connected as {}; type a line to send it to {}", session.user.username, peer.username);

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = client.next_event() => match event {
                Some(Event::Message(m)) => println!("[{}#{}] user {}: {}", m.channel_id, m.message_id, m.sender_id, m.text),
                Some(Event::MessageUpdated(m)) if m.deleted => println!("[{}#{}] (deleted)", m.channel_id, m.message_id),
                Some(Event::MessageUpdated(m)) => println!("[{}#{}] (edited) {}", m.channel_id, m.message_id, m.text),
                Some(Event::Disconnected { reason }) => println!("(disconnected: {reason}; reconnecting)"),
                Some(Event::Ready { .. }) => println!("(ready)"),
                Some(Event::Server(_)) => {}
                None => break,
            },
            line = lines.next_line() => match line {
                Ok(Some(text)) if !text.is_empty() => {
                    let ack = client.send(Target::User(peer.id), &text).await?;
                    println!("(stored as #{})", ack.message_id);
                }
                Ok(Some(_)) => {}
                _ => break,
            },
        }
    }
    client.close().await;
    Ok(())
}

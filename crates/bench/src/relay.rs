//! The bare relay: the floor to compare the real server against. It speaks
//! the same frames (auth → ready, send → ack + message) and routes them to
//! the channel's connections, but checks nothing and stores nothing. Its
//! tokens name the user and channels: `relay:<user>:<ch>.<ch>...`.

use anyhow::Result;
use chinwag_proto::{
    Channel, ChannelId, ChannelKind, ClientFrame, DeviceId, Message, MessageId, ServerFrame, User, UserId,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

type Outbox = mpsc::Sender<Ws>;

#[derive(Default)]
struct Routes {
    members: HashMap<ChannelId, Vec<Outbox>>,
    next_id: HashMap<ChannelId, i64>,
}

/// Starts the relay on a free loopback port; returns its base URL.
pub async fn start() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let routes = Arc::new(Mutex::new(Routes::default()));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let routes = routes.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                    serve(ws, routes).await;
                }
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// A channel as the relay's `ready` lists it (members are not tracked).
fn relay_channel(id: ChannelId, user: UserId) -> Channel {
    Channel {
        id,
        kind: ChannelKind::Direct,
        name: None,
        member_ids: vec![user],
        created_by: user,
        last_message_id: MessageId(0),
        read_up_to: MessageId(0),
        created_at: 0,
        last_change_seq: 0,
    }
}

fn text(frame: &ServerFrame) -> Ws {
    Ws::text(frame.to_json())
}

async fn serve(ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, routes: Arc<Mutex<Routes>>) {
    let (mut sink, mut stream) = ws.split();
    let (outbox, mut queue) = mpsc::channel::<Ws>(4096);
    let writer = tokio::spawn(async move {
        while let Some(first) = queue.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(more) = queue.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut user = UserId(0);
    while let Some(Ok(msg)) = stream.next().await {
        let Ws::Text(raw) = msg else { continue };
        let Ok((frame, _)) = ClientFrame::decode(&raw) else { continue };
        match frame {
            ClientFrame::Auth { token } => {
                let mut parts = token.split(':').skip(1);
                user = UserId(parts.next().and_then(|u| u.parse().ok()).unwrap_or(0));
                let channels: Vec<ChannelId> =
                    parts.next().unwrap_or("").split('.').filter_map(|c| c.parse().ok().map(ChannelId)).collect();
                {
                    let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
                    for &c in &channels {
                        routes.members.entry(c).or_default().push(outbox.clone());
                    }
                }
                let ready = ServerFrame::Ready {
                    user: User {
                        id: user,
                        username: format!("u{}", user.0),
                        display_name: String::new(),
                        created_at: 0,
                    },
                    device_id: DeviceId(user.0),
                    heartbeat_interval_ms: 5000,
                    channels: channels.iter().map(|&id| relay_channel(id, user)).collect(),
                };
                let _ = outbox.send(text(&ready)).await;
            }
            ClientFrame::Send { client_msg_id, channel_id: Some(channel_id), text: body, .. } => {
                let created_at = chinwag_proto::now_ms();
                let frame_targets = {
                    let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
                    let id = routes.next_id.entry(channel_id).or_default();
                    *id += 1;
                    let message = Message {
                        channel_id,
                        message_id: MessageId(*id),
                        sender_id: user,
                        client_msg_id: client_msg_id.clone(),
                        text: body,
                        created_at,
                        mentioned: false,
                        attachments: Vec::new(),
                        ..Default::default()
                    };
                    let targets = routes.members.get(&channel_id).cloned().unwrap_or_default();
                    let message_id = message.message_id;
                    (Ws::text(ServerFrame::Message(message).to_json()), targets, message_id)
                };
                let (frame, targets, message_id) = frame_targets;
                for t in targets {
                    let _ = t.try_send(frame.clone());
                }
                let ack = ServerFrame::Ack { client_msg_id, channel_id, message_id, created_at };
                let _ = outbox.send(text(&ack)).await;
            }
            ClientFrame::Ping => {
                let _ = outbox.send(text(&ServerFrame::Pong)).await;
            }
            _ => {}
        }
    }
    writer.abort();
}

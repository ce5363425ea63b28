//! Channel lifecycle: direct channels, groups, members, each change told to
//! the affected users' connections as `channel` / `channel_removed` events.

use crate::chat::Chat;
use crate::error::{store_error, user_store_error};
use chinwag_bus::{Event, NodeEvent};
use chinwag_proto::{validate, Channel, ChannelId, ChannelKind, ErrorCode, Invitation, UserId, WireError};
use chinwag_store::{ChannelState, MemberAdded, NewGroup};

/// What adding someone to a group did.
pub enum Added {
    /// They are a member (now or already): the channel as the actor sees it.
    Member(Channel),
    /// They had left the group; they were invited back instead.
    Invited(Invitation),
}

impl Chat {
    /// Refuses to put users who are in `max_channels_per_user` channels
    /// already into one more (so nobody can be buried in channels).
    async fn check_channel_room(&self, users: &[UserId]) -> Result<(), WireError> {
        let full =
            self.store.users_at_channel_limit(users, self.config.max_channels_per_user).await.map_err(store_error)?;
        if full.is_empty() {
            Ok(())
        } else {
            Err(WireError::new(ErrorCode::Forbidden, "a user is in too many channels to join another"))
        }
    }

    /// The one direct channel of the pair; `true` when it was just created.
    pub async fn open_direct(&self, me: UserId, other: UserId) -> Result<(Channel, bool), WireError> {
        if let Err(full) = self.check_channel_room(&[me, other]).await {
            // At the cap only a channel that exists already may be opened
            // (rare, so the costlier lookup is fine here).
            let mine = self.store.channels_of(me).await.map_err(store_error)?;
            let pair = |c: &Channel| c.kind == ChannelKind::Direct && c.member_ids.contains(&other);
            return mine
                .into_iter()
                .find(|c| pair(c) && (other != me || c.member_ids.len() == 1))
                .map(|c| (c, false))
                .ok_or(full);
        }
        let (channel, created) =
            self.store.direct_channel(me, other, chinwag_proto::now_ms()).await.map_err(user_store_error)?;
        self.remember_direct(me, other, channel.id);
        if created {
            self.announce(channel.id, &channel.member_ids).await;
        }
        Ok((channel, created))
    }

    /// A new group with `creator` and `member_ids` (at most 100 in all).
    pub async fn create_group(
        &self,
        creator: UserId,
        name: String,
        member_ids: Vec<UserId>,
    ) -> Result<Channel, WireError> {
        let name = validate::group_name(&name)?;
        if member_ids.len() > 10 * validate::GROUP_MAX_MEMBERS {
            return Err(ErrorCode::GroupTooLarge.into());
        }
        let mut everyone = member_ids.clone();
        everyone.push(creator);
        self.check_channel_room(&everyone).await?;
        let channel = self
            .store
            .create_group(NewGroup { creator, name, member_ids, created_at: chinwag_proto::now_ms() })
            .await
            .map_err(user_store_error)?;
        self.announce(channel.id, &channel.member_ids).await;
        Ok(channel)
    }

    /// The channel as `viewer` sees it; `not_found` for non-members.
    pub async fn channel_for(&self, viewer: UserId, id: ChannelId) -> Result<Channel, WireError> {
        self.store.channel(id, viewer).await.map_err(store_error)?.ok_or_else(|| WireError::not_found("channel"))
    }

    /// Any member may add a user to a group, except someone who left it:
    /// they are invited back and join only by accepting.
    pub async fn add_member(&self, actor: UserId, id: ChannelId, user: UserId) -> Result<Added, WireError> {
        let channel = self.channel_for(actor, id).await?;
        if channel.kind != ChannelKind::Group {
            return Err(WireError::new(ErrorCode::Forbidden, "direct channels have fixed members"));
        }
        if !channel.member_ids.contains(&user) {
            self.check_channel_room(&[user]).await?;
        }
        let now = chinwag_proto::now_ms();
        let added = self.store.add_member(id, user, actor, now).await.map_err(user_store_error)?;
        match added {
            MemberAdded::Added => {
                self.members_changed(id);
                let state = self.channel_state(id).await?;
                self.announce_state(&state, &state.channel.member_ids);
                Ok(Added::Member(state.for_member(actor)))
            }
            MemberAdded::AlreadyMember => Ok(Added::Member(channel)),
            MemberAdded::Invited => {
                let invitation = Invitation { channel_id: id, name: channel.name, invited_by: actor, created_at: now };
                self.bus.publish(&[user], Event::Invitation { invitation: invitation.clone() });
                Ok(Added::Invited(invitation))
            }
        }
    }

    /// Joins a group one was invited back to.
    pub async fn accept_invitation(&self, user: UserId, id: ChannelId) -> Result<Channel, WireError> {
        self.check_channel_room(&[user]).await?;
        self.store.accept_invitation(id, user, chinwag_proto::now_ms()).await.map_err(|e| match e {
            chinwag_store::StoreError::NotFound => WireError::not_found("invitation"),
            e => store_error(e),
        })?;
        self.members_changed(id);
        let state = self.channel_state(id).await?;
        self.announce_state(&state, &state.channel.member_ids);
        Ok(state.for_member(user))
    }

    /// Members leave groups; only the creator removes others.
    pub async fn remove_member(&self, actor: UserId, id: ChannelId, user: UserId) -> Result<(), WireError> {
        let channel = self.channel_for(actor, id).await?;
        if channel.kind != ChannelKind::Group {
            return Err(WireError::new(ErrorCode::Forbidden, "direct channels have fixed members"));
        }
        if actor != user && actor != channel.created_by {
            return Err(WireError::new(ErrorCode::Forbidden, "only the creator removes other members"));
        }
        if !self.store.remove_member(id, user, actor, chinwag_proto::now_ms()).await.map_err(store_error)? {
            return Err(WireError::not_found("member"));
        }
        self.members_changed(id);
        self.bus.publish(&[user], Event::ChannelRemoved { channel_id: id });
        let state = self.channel_state(id).await?;
        self.announce_state(&state, &state.channel.member_ids);
        Ok(())
    }

    /// A channel's members changed: this node's cache forgets them now,
    /// every other node's when the broadcast reaches it.
    fn members_changed(&self, id: ChannelId) {
        self.members.invalidate(id);
        self.bus.broadcast(NodeEvent::MembersChanged { channel_id: id });
    }

    async fn channel_state(&self, id: ChannelId) -> Result<ChannelState, WireError> {
        self.store.channel_state(id).await.map_err(store_error)?.ok_or_else(|| WireError::not_found("channel"))
    }

    /// Tells `users` about a channel (as each of them sees it).
    async fn announce(&self, id: ChannelId, users: &[UserId]) {
        match self.channel_state(id).await {
            Ok(state) => self.announce_state(&state, users),
            Err(e) => tracing::error!(error = %e, channel = id.0, "channel announcement failed"),
        }
    }

    fn announce_state(&self, state: &ChannelState, users: &[UserId]) {
        for &user in users {
            self.bus.publish(&[user], Event::Channel { channel: state.for_member(user) });
        }
    }
}

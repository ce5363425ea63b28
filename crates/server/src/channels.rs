//! Channel lifecycle: direct channels, groups, members, each change told to
//! the affected users' connections as `channel` / `channel_removed` events.

use crate::error::{store_error, user_store_error};
use crate::App;
use chinwag_bus::Event;
use chinwag_proto::{validate, Channel, ChannelId, ChannelKind, ErrorCode, UserId, WireError};
use chinwag_store::{ChannelState, NewGroup};

impl App {
    /// The one direct channel of the pair; `true` when it was just created.
    pub async fn open_direct(&self, me: UserId, other: UserId) -> Result<(Channel, bool), WireError> {
        let (channel, created) = self
            .store
            .direct_channel(me, other, chinwag_proto::now_ms())
            .await
            .map_err(user_store_error)?;
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
        self.store
            .channel(id, viewer)
            .await
            .map_err(store_error)?
            .ok_or_else(|| WireError::not_found("channel"))
    }

    /// Any member may add a user to a group.
    pub async fn add_member(&self, actor: UserId, id: ChannelId, user: UserId) -> Result<Channel, WireError> {
        let channel = self.channel_for(actor, id).await?;
        if channel.kind != ChannelKind::Group {
            return Err(WireError::new(ErrorCode::Forbidden, "direct channels have fixed members"));
        }
        let added = self
            .store
            .add_member(id, user, chinwag_proto::now_ms())
            .await
            .map_err(user_store_error)?;
        if added {
            self.members.invalidate(id);
            let state = self.channel_state(id).await?;
            self.announce_state(&state, &state.channel.member_ids);
            return Ok(state.for_member(actor));
        }
        Ok(channel)
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
        if !self.store.remove_member(id, user).await.map_err(store_error)? {
            return Err(WireError::not_found("member"));
        }
        self.members.invalidate(id);
        self.bus.publish(&[user], Event::ChannelRemoved { channel_id: id });
        let state = self.channel_state(id).await?;
        self.announce_state(&state, &state.channel.member_ids);
        Ok(())
    }

    async fn channel_state(&self, id: ChannelId) -> Result<ChannelState, WireError> {
        self.store
            .channel_state(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| WireError::not_found("channel"))
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

//! Teams bot conversation references: where a bot can write to a person,
//! and the teams it is installed in.
//!
//! A bot can send a person a message only in a conversation Teams told it
//! about: when the person installs the bot (`installationUpdate`, or the
//! `conversationUpdate` that adds the bot to their personal scope) or
//! writes to it, the activity names the service URL, the tenant and the
//! 1:1 conversation. [`TeamsConversation`] keeps that, with the email and
//! user principal name the Bot Connector's member lookup gave, which is how
//! a personal notification for a Confluence user finds its Teams user.
//!
//! A bot added to a team ([`TeamsTeam`]) can post to the channel it was
//! added in, and can read the team's members to start a 1:1 chat with one
//! who never wrote to it (Teams lets a bot write to the members of a team
//! it is installed in).
//!
//! Stored with the same SQL on both backends. What it must never do: keep
//! a reference after the person uninstalled the bot (Teams refuses the
//! conversation then, and the row would only hide that), or match a person
//! by anything but an exact (case-insensitive) email or principal name.

use serde::Serialize;

use super::sql::{FromRow, Row};
use super::{Store, StoreResult};

/// A Teams user's 1:1 conversation with one bot connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TeamsConversation {
    /// The Teams bot connection.
    pub connection: String,
    /// The Bot Framework's id for the user (`29:...`).
    pub user_id: String,
    /// Their Microsoft Entra object id, when Teams sent it.
    pub aad_object_id: Option<String>,
    /// Their tenant.
    pub tenant_id: String,
    /// Where the Bot Connector for this conversation is (from Teams).
    pub service_url: String,
    /// The 1:1 conversation's id.
    pub conversation_id: String,
    /// The name Teams shows.
    pub name: Option<String>,
    /// Their email, lowercased, when the member lookup gave one.
    pub email: Option<String>,
    /// Their user principal name, lowercased, when known.
    pub upn: Option<String>,
    /// When Teams last told the host about it (ms since the epoch).
    pub updated_at: i64,
}

impl FromRow for TeamsConversation {
    const COLUMNS: &'static str = "connection, user_id, aad_object_id, tenant_id, service_url, \
         conversation_id, name, email, upn, updated_at";

    fn from_row(r: &dyn Row) -> StoreResult<TeamsConversation> {
        Ok(TeamsConversation {
            connection: r.get("connection")?,
            user_id: r.get("user_id")?,
            aad_object_id: r.get("aad_object_id")?,
            tenant_id: r.get("tenant_id")?,
            service_url: r.get("service_url")?,
            conversation_id: r.get("conversation_id")?,
            name: r.get("name")?,
            email: r.get("email")?,
            upn: r.get("upn")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

impl Store {
    /// Records (or refreshes) a conversation reference. An email or
    /// principal name already known is kept when this one has none.
    pub async fn save_teams_conversation(&self, c: &TeamsConversation) -> StoreResult<()> {
        let lower = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_lowercase());
        self.execute(
            &format!(
                "INSERT INTO teams_conversations ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (connection, user_id) DO UPDATE SET
                   aad_object_id = COALESCE(excluded.aad_object_id, teams_conversations.aad_object_id),
                   tenant_id = excluded.tenant_id, service_url = excluded.service_url,
                   conversation_id = excluded.conversation_id,
                   name = COALESCE(excluded.name, teams_conversations.name),
                   email = COALESCE(excluded.email, teams_conversations.email),
                   upn = COALESCE(excluded.upn, teams_conversations.upn),
                   updated_at = excluded.updated_at",
                TeamsConversation::COLUMNS
            ),
            vec![
                (&c.connection).into(),
                (&c.user_id).into(),
                (&c.aad_object_id).into(),
                (&c.tenant_id).into(),
                (&c.service_url).into(),
                (&c.conversation_id).into(),
                (&c.name).into(),
                lower(&c.email).into(),
                lower(&c.upn).into(),
                c.updated_at.into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// The conversation of Teams user `user_id` with bot `connection`.
    pub async fn teams_conversation(
        &self,
        connection: &str,
        user_id: &str,
    ) -> StoreResult<Option<TeamsConversation>> {
        self.select_opt(
            "FROM teams_conversations WHERE connection = ?1 AND user_id = ?2",
            vec![connection.into(), user_id.into()],
        )
        .await
    }

    /// The conversation of the person whose email or user principal name is
    /// `email` (case-insensitive), with bot `connection`; the most recently
    /// told one if several match.
    pub async fn teams_conversation_for_email(
        &self,
        connection: &str,
        email: &str,
    ) -> StoreResult<Option<TeamsConversation>> {
        self.select_opt(
            "FROM teams_conversations WHERE connection = ?1 AND (email = ?2 OR upn = ?2)
             ORDER BY updated_at DESC, user_id LIMIT 1",
            vec![connection.into(), email.trim().to_lowercase().into()],
        )
        .await
    }

    /// Every conversation of bot `connection`, by user.
    pub async fn teams_conversations(
        &self,
        connection: &str,
    ) -> StoreResult<Vec<TeamsConversation>> {
        self.select(
            "FROM teams_conversations WHERE connection = ?1 ORDER BY user_id",
            vec![connection.into()],
        )
        .await
    }

    /// Forgets a conversation (the person uninstalled the bot); true if it
    /// was known.
    pub async fn remove_teams_conversation(
        &self,
        connection: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM teams_conversations WHERE connection = ?1 AND user_id = ?2",
                vec![connection.into(), user_id.into()],
            )
            .await?;
        Ok(n > 0)
    }

    /// Records (or refreshes) a team the bot is installed in. A name
    /// already known is kept when this activity carries none.
    pub async fn save_teams_team(&self, t: &TeamsTeam) -> StoreResult<()> {
        self.execute(
            &format!(
                "INSERT INTO teams_bot_teams ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (connection, team_id) DO UPDATE SET
                   team_name = COALESCE(excluded.team_name, teams_bot_teams.team_name),
                   conversation_id = excluded.conversation_id,
                   tenant_id = excluded.tenant_id, service_url = excluded.service_url,
                   updated_at = excluded.updated_at",
                TeamsTeam::COLUMNS
            ),
            vec![
                (&t.connection).into(),
                (&t.team_id).into(),
                (&t.team_name).into(),
                (&t.conversation_id).into(),
                (&t.tenant_id).into(),
                (&t.service_url).into(),
                t.updated_at.into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// The teams bot `connection` is installed in, by name then id.
    pub async fn teams_teams(&self, connection: &str) -> StoreResult<Vec<TeamsTeam>> {
        self.select(
            "FROM teams_bot_teams WHERE connection = ?1 ORDER BY team_name, team_id",
            vec![connection.into()],
        )
        .await
    }

    /// The team of bot `connection` whose id is `team`, or else whose name
    /// is `team` (case-insensitive; the most recently told one).
    pub async fn teams_team(&self, connection: &str, team: &str) -> StoreResult<Option<TeamsTeam>> {
        self.select_opt(
            "FROM teams_bot_teams WHERE connection = ?1 AND (team_id = ?2 OR lower(team_name) = ?3)
             ORDER BY team_id = ?2 DESC, updated_at DESC LIMIT 1",
            vec![
                connection.into(),
                team.into(),
                team.trim().to_lowercase().into(),
            ],
        )
        .await
    }

    /// Forgets a team (the bot was removed from it); true if it was known.
    pub async fn remove_teams_team(&self, connection: &str, team_id: &str) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM teams_bot_teams WHERE connection = ?1 AND team_id = ?2",
                vec![connection.into(), team_id.into()],
            )
            .await?;
        Ok(n > 0)
    }
}

/// A team a Teams bot is installed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TeamsTeam {
    /// The Teams bot connection.
    pub connection: String,
    /// The team's id (`19:...@thread.tacv2`, its General channel's id).
    pub team_id: String,
    /// The team's name, when Teams sent it.
    pub team_name: Option<String>,
    /// The channel the bot was added in: where it posts to the team.
    pub conversation_id: String,
    /// The team's tenant.
    pub tenant_id: String,
    /// Where the Bot Connector for this team is (from Teams).
    pub service_url: String,
    /// When Teams last told the host about it (ms since the epoch).
    pub updated_at: i64,
}

impl TeamsTeam {
    /// The team as people name it: its name, else its id.
    pub fn label(&self) -> &str {
        self.team_name.as_deref().unwrap_or(&self.team_id)
    }
}

impl FromRow for TeamsTeam {
    const COLUMNS: &'static str =
        "connection, team_id, team_name, conversation_id, tenant_id, service_url, updated_at";

    fn from_row(r: &dyn Row) -> StoreResult<TeamsTeam> {
        Ok(TeamsTeam {
            connection: r.get("connection")?,
            team_id: r.get("team_id")?,
            team_name: r.get("team_name")?,
            conversation_id: r.get("conversation_id")?,
            tenant_id: r.get("tenant_id")?,
            service_url: r.get("service_url")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

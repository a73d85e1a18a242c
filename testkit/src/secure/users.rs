//! Users in a nats-server configuration: nkey and password users with
//! their permissions, a single token, and the random secrets they use.

use super::Permissions;

/// A user in a nats-server configuration's `authorization { users }`.
#[derive(Debug, Clone)]
pub enum ConfigUser {
    Nkey {
        public_key: String,
        permissions: Permissions,
    },
    Password {
        user: String,
        password: String,
        permissions: Permissions,
    },
}

impl ConfigUser {
    fn entry(&self) -> String {
        let (who, permissions) = match self {
            Self::Nkey {
                public_key,
                permissions,
            } => (format!("nkey: {public_key:?}"), permissions),
            Self::Password {
                user,
                password,
                permissions,
            } => (
                format!("user: {user:?}, password: {password:?}"),
                permissions,
            ),
        };
        match permissions.is_everything() {
            true => format!("{{ {who} }}"),
            false => format!("{{ {who}, {} }}", permissions.config_block()),
        }
    }
}

/// An `authorization` block with these users.
pub fn users_config(users: &[ConfigUser]) -> String {
    let entries: Vec<String> = users.iter().map(ConfigUser::entry).collect();
    format!(
        "authorization {{\n  users = [\n    {}\n  ]\n}}\n",
        entries.join("\n    ")
    )
}

/// An `authorization` block that asks every client for one token.
pub fn token_config(token: &str) -> String {
    format!("authorization {{ token: {token:?} }}\n")
}

/// A random secret: 32 hexadecimal characters.
pub fn random_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

//! The two signing keys: from the settings when configured, otherwise
//! generated once and kept in the database so that every process using the
//! file agrees on them.

use crate::db::Conn;

use crate::meta;
use crate::settings::Settings;

/// The keys in force. Never logged or printed.
#[derive(Clone)]
pub struct Secrets {
    pub secret_key: String,
    pub jwt_secret_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

/// Takes each key from the settings, or from the database (generating it
/// the first time).
pub fn resolve(conn: &Conn, settings: &Settings) -> crate::db::Result<Secrets> {
    let secret_key = match &settings.secret_key {
        Some(key) => key.clone(),
        None => {
            meta::get_or_insert_with(conn, "generated_secret_key", crate::random::secret_hex::<32>)?
        }
    };
    let jwt_secret_key = match &settings.jwt_secret_key {
        Some(key) => key.clone(),
        None => meta::get_or_insert_with(
            conn,
            "generated_jwt_secret_key",
            crate::random::secret_hex::<32>,
        )?,
    };
    Ok(Secrets { secret_key, jwt_secret_key })
}

//! Client roles: what a client certificate allows its holder to ask of a node (least
//! privilege). The role is written into the certificate by the CA ([`crate::wire::certs`]) and read
//! back by a node from the certificate a client presented ([`crate::wire::tls::peer`]).

use std::fmt;
use std::str::FromStr;

/// What a client certificate may ask of a node. Roles are ordered: a role may do everything
/// the roles before it may (`App < Admin`). Node certificates have no role: nodes may send
/// every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// An application: reads and writes (`get`, `put`, `delete`), `status` and `ring`.
    App,
    /// An operator: everything an application may do, plus repair and the membership and
    /// maintenance requests. Certificates made before roles existed read as this role, so
    /// that they keep doing what they did.
    Admin,
}

impl Role {
    /// Every role, from the least to the most allowed.
    pub const ALL: [Role; 2] = [Role::App, Role::Admin];

    /// The role's name, as `kvctl cert client --role` takes it and certificates carry it.
    pub fn name(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::Admin => "admin",
        }
    }

    /// Whether a holder of this role may send a request that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {name:?}; the roles are app and admin")]
pub struct UnknownRole {
    pub name: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == s)
            .ok_or_else(|| UnknownRole { name: s.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every role reads back from its name, and an unknown name is an error that names it.
    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.name());
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("\"root\""), "{err}");
    }

    /// An admin may do what an app may, not the other way round.
    #[test]
    fn admin_allows_more_than_app() {
        assert!(Role::Admin.allows(Role::App));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::App.allows(Role::App));
        assert!(!Role::App.allows(Role::Admin));
    }
}

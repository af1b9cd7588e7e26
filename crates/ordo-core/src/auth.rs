//! Who may do what. Roles are per shop; the platform admin acts across shops.
//! Authorisation is a pure function of (principal, action) so it is table-tested.

use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, ShopId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the shop, including keys and payment secrets.
    Owner,
    /// Day-to-day order, catalogue, stock and refund work.
    Operator,
    /// Stock and shipping; sees addresses but not buyer contact details.
    Warehouse,
    /// Read-only with personal data masked (analysts, dashboards).
    Viewer,
    /// A storefront or integration: places orders and reads them back.
    Integration,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Operator,
        Role::Warehouse,
        Role::Viewer,
        Role::Integration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Operator => "operator",
            Role::Warehouse => "warehouse",
            Role::Viewer => "viewer",
            Role::Integration => "integration",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The caller of a use case, already authenticated by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    PlatformAdmin,
    ShopKey { shop: ShopId, key: ApiKeyId, role: Role },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ManageShops,
    ManageKeys,
    ManageSettings,
    ReadCatalog,
    WriteCatalog,
    ReadStock,
    WriteStock,
    ReadOrders,
    PlaceOrders,
    ManageOrders,
    ShipOrders,
    Refund,
    ReadEvents,
}

impl Principal {
    pub fn shop(&self) -> Option<ShopId> {
        match self {
            Principal::PlatformAdmin => None,
            Principal::ShopKey { shop, .. } => Some(*shop),
        }
    }

    /// Whether this principal may perform `action` within its shop (the shop scope
    /// itself is enforced by every query taking the caller's shop).
    pub fn may(&self, action: Action) -> bool {
        use Action::*;
        let role = match self {
            Principal::PlatformAdmin => return true,
            Principal::ShopKey { role, .. } => *role,
        };
        match role {
            Role::Owner => action != ManageShops,
            Role::Operator => !matches!(action, ManageShops | ManageKeys | ManageSettings),
            Role::Warehouse => matches!(action, ReadCatalog | ReadStock | WriteStock | ReadOrders | ShipOrders),
            Role::Viewer => matches!(action, ReadCatalog | ReadStock | ReadOrders | ReadEvents),
            Role::Integration => matches!(action, ReadCatalog | ReadStock | ReadOrders | PlaceOrders | ReadEvents),
        }
    }

    /// Whether buyer contact details (name, phone, e-mail) are shown unmasked.
    pub fn sees_buyer_contact(&self) -> bool {
        match self {
            Principal::PlatformAdmin => true,
            Principal::ShopKey { role, .. } => {
                matches!(role, Role::Owner | Role::Operator | Role::Integration)
            }
        }
    }

    /// Whether the street-level shipping address is shown unmasked.
    pub fn sees_address(&self) -> bool {
        match self {
            Principal::PlatformAdmin => true,
            Principal::ShopKey { role, .. } => !matches!(role, Role::Viewer),
        }
    }
}

/// Who caused a change, as recorded in the event log and the stock ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(pub String);

impl Actor {
    pub fn system(worker: &str) -> Actor {
        Actor(format!("system:{worker}"))
    }
    pub fn gateway(name: &str) -> Actor {
        Actor(format!("gateway:{name}"))
    }
    pub fn channel(name: &str) -> Actor {
        Actor(format!("channel:{name}"))
    }
    pub fn of(principal: &Principal) -> Actor {
        match principal {
            Principal::PlatformAdmin => Actor("admin".into()),
            Principal::ShopKey { key, .. } => Actor(key.to_string()),
        }
    }
}

/// Masks all but the last `keep` characters, e.g. a phone number `*******5678`.
pub fn mask_tail(value: &str, keep: usize) -> String {
    let n = value.chars().count();
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep < n { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role) -> Principal {
        Principal::ShopKey {
            shop: ShopId(1),
            key: ApiKeyId(2),
            role,
        }
    }

    #[test]
    fn only_the_platform_admin_manages_shops() {
        assert!(Principal::PlatformAdmin.may(Action::ManageShops));
        for role in Role::ALL {
            assert!(!key(role).may(Action::ManageShops), "{role:?}");
        }
    }

    #[test]
    fn roles_are_limited_to_their_work() {
        let table = [
            (Role::Owner, Action::ManageKeys, true),
            (Role::Operator, Action::ManageKeys, false),
            (Role::Operator, Action::Refund, true),
            (Role::Warehouse, Action::ShipOrders, true),
            (Role::Warehouse, Action::Refund, false),
            (Role::Warehouse, Action::PlaceOrders, false),
            (Role::Viewer, Action::ReadOrders, true),
            (Role::Viewer, Action::WriteStock, false),
            (Role::Integration, Action::PlaceOrders, true),
            (Role::Integration, Action::ManageOrders, false),
        ];
        for (role, action, expected) in table {
            assert_eq!(key(role).may(action), expected, "{role:?} {action:?}");
        }
    }

    #[test]
    fn masking_keeps_only_the_tail() {
        assert_eq!(mask_tail("13812345678", 4), "*******5678");
        assert_eq!(mask_tail("张三", 1), "*三");
        assert_eq!(mask_tail("ab", 4), "ab");
    }
}

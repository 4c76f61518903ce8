//! Identity resolution: which contact an event belongs to.
//!
//! Rules, in order (each keeps "one contact per person" without ever joining two known users):
//! 1. An identity (kind, value) belongs to at most one contact; the store enforces it with a unique key.
//! 2. A user id is the strongest identifier: two contacts with different user ids are never merged, and an
//!    identity already owned by one of them stays where it is.
//! 3. The event goes to the contact with its user id; failing that, to the oldest matching contact that has a
//!    user id (a known user wins over an anonymous visitor); failing that, to the oldest matching contact; with no
//!    match, to a new contact.
//! 4. Every other matching contact that does not carry a different user id is merged into that one (the anonymous
//!    cart that is later identified by email). A merge moves identities and history and is recorded, not lossy.
//! 5. The event's identities that nobody owns yet are attached to the chosen contact.

use crate::identity::{Identity, IdentityKind};
use crate::ids::ContactId;

/// A contact that owns at least one of the event's identities, with all the identities it owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub id: ContactId,
    pub identities: Vec<Identity>,
}

impl Known {
    fn user_id(&self) -> Option<&str> {
        self.identities
            .iter()
            .find(|i| i.kind == IdentityKind::UserId)
            .map(|i| i.value.as_str())
    }
}

/// What to do with an event's identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The contact the event belongs to; `None`: create one.
    pub contact: Option<ContactId>,
    /// Contacts to merge into `contact`.
    pub merge: Vec<ContactId>,
    /// Identities to attach to `contact` (none of them is owned yet).
    pub attach: Vec<Identity>,
}

/// Decides per the module rules. `known` must hold every live contact owning one of `incoming`; contact ids are
/// UUID v7, so their order is their age.
pub fn resolve(incoming: &[Identity], known: &[Known]) -> Resolution {
    let incoming_user = incoming
        .iter()
        .find(|i| i.kind == IdentityKind::UserId)
        .map(|i| i.value.as_str());
    let mut by_age: Vec<&Known> = known.iter().collect();
    by_age.sort_by_key(|k| k.id);

    let primary = match incoming_user {
        Some(u) => by_age
            .iter()
            .find(|k| k.user_id() == Some(u))
            .or_else(|| by_age.iter().find(|k| k.user_id().is_none())),
        None => by_age
            .iter()
            .find(|k| k.user_id().is_some())
            .or_else(|| by_age.first()),
    }
    .copied();

    let target_user = primary.and_then(Known::user_id).or(incoming_user);
    let merge: Vec<ContactId> = by_age
        .iter()
        .filter(|k| Some(k.id) != primary.map(|p| p.id))
        .filter(|k| k.user_id().is_none() || k.user_id() == target_user)
        .filter(|_| primary.is_some())
        .map(|k| k.id)
        .collect();

    let owned = |i: &Identity| known.iter().any(|k| k.identities.contains(i));
    let mut attach: Vec<Identity> = Vec::new();
    for i in incoming {
        let conflicting_user = i.kind == IdentityKind::UserId
            && (primary.and_then(Known::user_id).is_some()
                || attach.iter().any(|a| a.kind == IdentityKind::UserId));
        if !owned(i) && !conflicting_user && !attach.contains(i) {
            attach.push(i.clone());
        }
    }
    Resolution {
        contact: primary.map(|p| p.id),
        merge,
        attach,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id(n: u128) -> ContactId {
        ContactId(Uuid::from_u128(n))
    }
    fn u(v: &str) -> Identity {
        Identity::user_id(v)
    }
    fn a(v: &str) -> Identity {
        Identity::anonymous_id(v)
    }
    fn e(v: &str) -> Identity {
        Identity {
            kind: IdentityKind::Email,
            value: v.into(),
        }
    }
    fn k(n: u128, ids: &[Identity]) -> Known {
        Known {
            id: id(n),
            identities: ids.to_vec(),
        }
    }

    #[test]
    fn resolution_follows_the_module_rules() {
        struct Case {
            name: &'static str,
            incoming: Vec<Identity>,
            known: Vec<Known>,
            want: Resolution,
        }
        let cases = vec![
            Case {
                name: "a stranger becomes a new contact with all identities",
                incoming: vec![a("a1"), e("x@y.io")],
                known: vec![],
                want: Resolution {
                    contact: None,
                    merge: vec![],
                    attach: vec![a("a1"), e("x@y.io")],
                },
            },
            Case {
                name: "a returning visitor is found and learns a new email",
                incoming: vec![a("a1"), e("x@y.io")],
                known: vec![k(1, &[a("a1")])],
                want: Resolution {
                    contact: Some(id(1)),
                    merge: vec![],
                    attach: vec![e("x@y.io")],
                },
            },
            Case {
                name: "an anonymous cart identified by email merges into the known customer",
                incoming: vec![a("a1"), e("x@y.io")],
                known: vec![k(1, &[a("a1")]), k(2, &[u("U"), e("x@y.io")])],
                want: Resolution {
                    contact: Some(id(2)),
                    merge: vec![id(1)],
                    attach: vec![],
                },
            },
            Case {
                name: "two anonymous contacts merge into the older",
                incoming: vec![a("a2"), e("x@y.io")],
                known: vec![k(5, &[a("a2")]), k(3, &[e("x@y.io")])],
                want: Resolution {
                    contact: Some(id(3)),
                    merge: vec![id(5)],
                    attach: vec![],
                },
            },
            Case {
                name: "a different user id is never merged and its email stays with it",
                incoming: vec![u("B"), e("x@y.io")],
                known: vec![k(1, &[u("A"), e("x@y.io")])],
                want: Resolution {
                    contact: None,
                    merge: vec![],
                    attach: vec![u("B")],
                },
            },
            Case {
                name:
                    "the user's own contact wins and absorbs an anonymous one but not another user",
                incoming: vec![u("B"), a("a9"), e("x@y.io")],
                known: vec![
                    k(1, &[u("A"), e("x@y.io")]),
                    k(2, &[a("a9")]),
                    k(3, &[u("B")]),
                ],
                want: Resolution {
                    contact: Some(id(3)),
                    merge: vec![id(2)],
                    attach: vec![],
                },
            },
            Case {
                name: "a user id is attached to an anonymous contact",
                incoming: vec![u("B"), a("a9")],
                known: vec![k(2, &[a("a9")])],
                want: Resolution {
                    contact: Some(id(2)),
                    merge: vec![],
                    attach: vec![u("B")],
                },
            },
            Case {
                name: "an event with no identities creates a contact with none",
                incoming: vec![],
                known: vec![],
                want: Resolution {
                    contact: None,
                    merge: vec![],
                    attach: vec![],
                },
            },
        ];
        for c in cases {
            assert_eq!(resolve(&c.incoming, &c.known), c.want, "{}", c.name);
        }
    }

    proptest::proptest! {
        #[test]
        fn no_resolution_ever_merges_two_user_ids_or_reattaches_an_owned_identity(
            owners in proptest::collection::vec((0u8..3, 0u8..4), 0..8),
            incoming in proptest::collection::vec((0u8..3, 0u8..4), 0..4),
        ) {
            let ident = |(kind, v): (u8, u8)| match kind {
                0 => u(&format!("u{v}")),
                1 => a(&format!("a{v}")),
                _ => e(&format!("e{v}@x.io")),
            };
            // Build contacts where each identity has one owner and each contact at most one user id.
            let mut known: Vec<Known> = Vec::new();
            for (n, pair) in owners.iter().enumerate() {
                let i = ident(*pair);
                if known.iter().any(|k| k.identities.contains(&i)) { continue; }
                let slot = (n % 3) as u128 + 1;
                let pos = known.iter().position(|k| k.id == id(slot));
                let has_user = pos.map(|p| known[p].user_id().is_some()).unwrap_or(false);
                if i.kind == IdentityKind::UserId && has_user { continue; }
                match pos {
                    Some(p) => known[p].identities.push(i),
                    None => known.push(k(slot, &[i])),
                }
            }
            let incoming: Vec<Identity> = incoming.into_iter().map(ident).collect();
            let r = resolve(&incoming, &known);
            let mut users: Vec<&str> = r.merge.iter().chain(r.contact.iter())
                .filter_map(|c| known.iter().find(|k| k.id == *c))
                .filter_map(Known::user_id).collect();
            users.extend(r.attach.iter().filter(|i| i.kind == IdentityKind::UserId).map(|i| i.value.as_str()));
            users.sort();
            users.dedup();
            proptest::prop_assert!(users.len() <= 1, "merged users {users:?}");
            for i in &r.attach {
                proptest::prop_assert!(!known.iter().any(|k| k.identities.contains(i)));
            }
        }
    }
}

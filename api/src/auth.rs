//! Bearer tokens and roles: who calls, and whether they may.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::config::Role;
use crate::error::Error;
use crate::state::AppState;
pub(crate) use crate::tokens::Caller;

/// What an endpoint needs, as a type: `Authorized<Submit>` in a handler's arguments.
pub(crate) trait Access {
    /// The roles allowed, for messages.
    const NEEDED: &'static str;
    fn allows(role: Role) -> bool;
}

/// Reads: every role.
#[derive(Debug)]
pub(crate) struct Read;
/// User actions: submitters and admins (and distributors, which submit their ticks).
#[derive(Debug)]
pub(crate) struct Submit;
/// Executor writes: executors and admins.
#[derive(Debug)]
pub(crate) struct Execute;
/// Admin only.
#[derive(Debug)]
pub(crate) struct Admin;
/// The reconciler: distributors and admins.
#[derive(Debug)]
pub(crate) struct Reconcile;
/// Deleting old finished jobs (`cleanup_jobs`, run by executors): executors and admins.
#[derive(Debug)]
pub(crate) struct Cleanup;
/// Submitting (or retrying) a built-in maintenance action such as `cleanup_jobs`:
/// admins, and distributors, which schedule it. Checked on the body, after [`Submit`].
#[derive(Debug)]
pub(crate) struct Maintain;

impl Access for Read {
    const NEEDED: &'static str = "any role";
    fn allows(_: Role) -> bool {
        true
    }
}

impl Access for Submit {
    const NEEDED: &'static str = "role submitter or admin (or distributor)";
    fn allows(role: Role) -> bool {
        matches!(role, Role::Submitter | Role::Distributor | Role::Admin)
    }
}

impl Access for Execute {
    const NEEDED: &'static str = "role executor or admin";
    fn allows(role: Role) -> bool {
        matches!(role, Role::Executor | Role::Admin)
    }
}

impl Access for Reconcile {
    const NEEDED: &'static str = "role distributor or admin";
    fn allows(role: Role) -> bool {
        matches!(role, Role::Distributor | Role::Admin)
    }
}

impl Access for Cleanup {
    const NEEDED: &'static str = "role executor or admin";
    fn allows(role: Role) -> bool {
        matches!(role, Role::Executor | Role::Admin)
    }
}

impl Access for Maintain {
    const NEEDED: &'static str = "role admin or distributor";
    fn allows(role: Role) -> bool {
        matches!(role, Role::Admin | Role::Distributor)
    }
}

impl Access for Admin {
    const NEEDED: &'static str = "role admin";
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
}

/// An authenticated caller allowed by `A`; rejects with 401 or 403 before the body is read.
#[derive(Debug)]
pub(crate) struct Authorized<A> {
    pub(crate) caller: Caller,
    _access: PhantomData<A>,
}

impl<A: Access> FromRequestParts<AppState> for Authorized<A> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or(""));
        let caller = state.tokens.authenticate(header)?;
        if !A::allows(caller.role) {
            return Err(Error::Forbidden {
                caller: caller.name.to_string(),
                role: caller.role.as_str(),
                needed: A::NEEDED,
            });
        }
        Ok(Authorized {
            caller,
            _access: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiToken;
    use crate::tokens::Tokens;

    fn tokens() -> Tokens {
        Tokens::new(&[ApiToken {
            name: "ci".into(),
            token: "secret-123".into(),
            role: Role::Submitter,
            level: None,
        }])
    }

    #[test]
    fn bearer_tokens_authenticate() {
        let caller = tokens().authenticate(Some("Bearer secret-123")).unwrap();
        assert_eq!(&*caller.name, "ci");
        for bad in [None, Some("secret-123"), Some("Bearer nope")] {
            let err = tokens().authenticate(bad).unwrap_err();
            assert!(matches!(err, Error::Unauthenticated(_)), "{err}");
        }
    }

    #[test]
    fn roles_grant_what_the_contract_says() {
        assert!(Submit::allows(Role::Admin) && Submit::allows(Role::Submitter));
        assert!(!Submit::allows(Role::Executor));
        assert!(Execute::allows(Role::Executor) && !Execute::allows(Role::Submitter));
        assert!(Admin::allows(Role::Admin) && !Admin::allows(Role::Submitter));
        assert!(Read::allows(Role::Executor));
        assert!(Submit::allows(Role::Distributor) && !Execute::allows(Role::Distributor));
        assert!(Reconcile::allows(Role::Distributor) && !Reconcile::allows(Role::Executor));
        assert!(Cleanup::allows(Role::Executor) && !Cleanup::allows(Role::Distributor));
        assert!(!Admin::allows(Role::Distributor));
        assert!(Maintain::allows(Role::Admin) && Maintain::allows(Role::Distributor));
        assert!(!Maintain::allows(Role::Submitter) && !Maintain::allows(Role::Executor));
    }

    #[test]
    fn no_tokens_means_open() {
        let open = Tokens::new(&[]);
        assert_eq!(open.authenticate(None).unwrap().role, Role::Admin);
    }
}

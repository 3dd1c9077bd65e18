//! Property tests: arbitrary sequences of authorizations, redemptions, refreshes,
//! revocations and clock steps never yield a live token from a revoked grant or an expired
//! code, and a code never yields tokens twice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use common::*;
use http::StatusCode;
use mcpauth_token_engine::UnixTime;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Authorize,
    Redeem(usize),
    RedeemWithWrongVerifier(usize),
    Refresh(usize),
    RevokeRefresh(usize),
    RevokeAccess(usize),
    Introspect(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Authorize),
        3 => (0..8usize).prop_map(Op::Redeem),
        1 => (0..8usize).prop_map(Op::RedeemWithWrongVerifier),
        4 => (0..16usize).prop_map(Op::Refresh),
        1 => (0..16usize).prop_map(Op::RevokeRefresh),
        1 => (0..16usize).prop_map(Op::RevokeAccess),
        2 => (0..16usize).prop_map(Op::Introspect),
        2 => prop_oneof![Just(1u64), Just(4), Just(30), Just(61), Just(4000)].prop_map(Op::Wait),
    ]
}

struct Code {
    code: String,
    grant: usize,
    issued: UnixTime,
    redeemed: bool,
}

struct Refresh {
    token: String,
    grant: usize,
    rotated_at: Option<UnixTime>,
    /// The entry that replaced it.
    successor: Option<usize>,
}

struct Access {
    token: String,
    grant: usize,
}

#[derive(Default)]
struct World {
    codes: Vec<Code>,
    refresh: Vec<Refresh>,
    access: Vec<Access>,
    revoked: Vec<bool>,
}

const GRACE: u64 = 5;

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    futures::executor::block_on(async {
        let h = harness_with(|c| {
            c.refresh_reuse_grace(GRACE);
        })
        .await;
        let (rs_id, rs_secret) = h.resource_server().await;
        let mut now = NOW;
        let mut w = World::default();
        for op in ops {
            match op {
                Op::Authorize => {
                    let mcpauth_token_engine::AuthorizeOutcome::NeedsConsent(pending) =
                        h.authorize(&h.authorize_query(REDIRECT)).await
                    else {
                        return Err(TestCaseError::fail("a valid request must need consent"));
                    };
                    let redirect = h.engine.approve(pending, "alice", now).await.unwrap();
                    let code = code_of(&redirect.location);
                    w.revoked.push(false);
                    w.codes.push(Code {
                        code,
                        grant: w.revoked.len() - 1,
                        issued: now,
                        redeemed: false,
                    });
                }
                Op::Redeem(i) | Op::RedeemWithWrongVerifier(i) => {
                    let index = i % w.codes.len().max(1);
                    let Some(code) = w.codes.get_mut(index) else {
                        continue;
                    };
                    let wrong = matches!(op, Op::RedeemWithWrongVerifier(_));
                    let verifier = if wrong {
                        "w".repeat(43)
                    } else {
                        VERIFIER.to_owned()
                    };
                    let (status, body, _) = h
                        .post(
                            Endpoint::Token,
                            &[
                                ("grant_type", "authorization_code"),
                                ("code", &code.code),
                                ("redirect_uri", REDIRECT),
                                ("code_verifier", &verifier),
                                ("client_id", &h.client_id),
                            ],
                            None,
                            now,
                        )
                        .await;
                    let expired = now.seconds_since(code.issued) >= 60;
                    if status == StatusCode::OK {
                        prop_assert!(!wrong, "a wrong verifier redeemed a code");
                        prop_assert!(!code.redeemed, "a code yielded tokens twice");
                        prop_assert!(!expired, "an expired code yielded tokens");
                        prop_assert!(
                            !w.revoked[code.grant],
                            "a revoked grant yielded tokens from its code"
                        );
                        code.redeemed = true;
                        let grant = code.grant;
                        w.refresh.push(Refresh {
                            token: body["refresh_token"].as_str().unwrap().to_owned(),
                            grant,
                            rotated_at: None,
                            successor: None,
                        });
                        w.access.push(Access {
                            token: body["access_token"].as_str().unwrap().to_owned(),
                            grant,
                        });
                    } else if code.redeemed && !wrong && !expired {
                        // RFC 6749 §4.1.2: a second redemption revokes the grant.
                        w.revoked[code.grant] = true;
                    }
                }
                Op::Refresh(i) => {
                    let index = i % w.refresh.len().max(1);
                    let Some(entry) = w.refresh.get(index) else {
                        continue;
                    };
                    let (status, body) = h.refresh_at(&entry.token.clone(), now).await;
                    let grant = entry.grant;
                    if status == StatusCode::OK {
                        prop_assert!(
                            !w.revoked[grant],
                            "a refresh token of a revoked grant worked"
                        );
                        let returned = body["refresh_token"].as_str().unwrap().to_owned();
                        match (entry.rotated_at, entry.successor) {
                            (Some(rotated_at), Some(successor)) => {
                                // DESIGN §3b: a retry inside the window gets the same successor.
                                prop_assert!(
                                    now.seconds_since(rotated_at) <= GRACE,
                                    "a rotated refresh token worked after the grace window"
                                );
                                prop_assert!(
                                    w.refresh[successor].rotated_at.is_none(),
                                    "a replay worked after its successor was rotated"
                                );
                                prop_assert_eq!(
                                    &returned,
                                    &w.refresh[successor].token,
                                    "a retry got another successor"
                                );
                            }
                            _ => {
                                w.refresh[index].rotated_at = Some(now);
                                w.refresh[index].successor = Some(w.refresh.len());
                                w.refresh.push(Refresh {
                                    token: returned,
                                    grant,
                                    rotated_at: None,
                                    successor: None,
                                });
                            }
                        }
                        w.access.push(Access {
                            token: body["access_token"].as_str().unwrap().to_owned(),
                            grant,
                        });
                    } else if entry.rotated_at.is_some() {
                        // RFC 9700 §4.14.2: a replay not taken for a retry revokes the family.
                        w.revoked[grant] = true;
                    }
                }
                Op::RevokeRefresh(i) | Op::RevokeAccess(i) => {
                    let picked = if matches!(op, Op::RevokeRefresh(_)) {
                        w.refresh
                            .get(i % w.refresh.len().max(1))
                            .map(|e| (e.token.clone(), e.grant))
                    } else {
                        w.access
                            .get(i % w.access.len().max(1))
                            .map(|e| (e.token.clone(), e.grant))
                    };
                    let Some((token, grant)) = picked else {
                        continue;
                    };
                    let (status, _, _) = h
                        .post(
                            Endpoint::Revoke,
                            &[("token", &token), ("client_id", &h.client_id)],
                            None,
                            now,
                        )
                        .await;
                    prop_assert_eq!(status, StatusCode::OK);
                    w.revoked[grant] = true;
                }
                Op::Introspect(i) => {
                    let Some(entry) = w.access.get(i % w.access.len().max(1)) else {
                        continue;
                    };
                    let (_, body, _) = h
                        .post(
                            Endpoint::Introspect,
                            &[("token", &entry.token)],
                            Some((&rs_id, &rs_secret)),
                            now,
                        )
                        .await;
                    if body["active"] == true {
                        prop_assert!(
                            !w.revoked[entry.grant],
                            "introspection called a token of a revoked grant active"
                        );
                    }
                }
                Op::Wait(seconds) => now = now.plus(seconds),
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_yields_a_live_token_from_a_revoked_grant_or_an_expired_code(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

//! The store's contract: one suite that every [`UserStore`] must pass, on an empty store. The
//! in-memory store runs it in `cargo test`; D1 runs it end to end (cargo feature `contract`,
//! `tests/e2e/store_contract.test.mjs`), so the fake the native tests rely on cannot drift from
//! the real database.

use super::{
    AdminAction, Applied, Change, Delivery, HandOff, Prune, Pruned, RiscChange, RiscEffect, SignIn,
    SignInOutcome, SiteSession, StoreError, User, UserStore,
};
use crate::time::UnixTime;

pub mod coverage;

/// The time the suite pretends it is.
const T0: i64 = 1_800_000_000;
/// `SESSION_MAX_AGE` of the suite's sessions.
const MAX_AGE: i64 = 30 * 86_400;

/// One check of the contract.
type Check = Result<(), String>;

#[expect(clippy::needless_pass_by_value, reason = "handed over by `map_err`")]
fn store(e: StoreError) -> String {
    format!("store error: {}", e.0)
}

fn expect(ok: bool, what: &str) -> Check {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

/// A sign-in of Google account `sub` with `email` at `T0 + at`, session `sid`.
fn sign_in(sub: &str, email: &str, sid: &str, at: i64) -> SignIn {
    SignIn {
        provider: "google",
        subject: sub.into(),
        email: email.into(),
        name: Some(format!("Name of {sub}")),
        image: None,
        make_admin: false,
        new_user_id: format!("user-{sub}"),
        session_id: sid.into(),
        now: UnixTime(T0 + at),
        expires_at: UnixTime(T0 + at + MAX_AGE),
        user_agent: Some("contract".into()),
        site: "https://site.test".into(),
    }
}

async fn signed_in<S: UserStore>(s: &S, sign: &SignIn) -> Result<User, String> {
    match s.sign_in(sign).await.map_err(store)? {
        SignInOutcome::SignedIn { user, .. } => Ok(user),
        other => Err(format!("sign-in of {}: {other:?}", sign.subject)),
    }
}

async fn sign_in_creates_finds_and_refuses<S: UserStore>(s: &S) -> Check {
    let ada = signed_in(s, &sign_in("a1", "ada@example.com", "s-a1", 0)).await?;
    expect(
        ada.id == "user-a1" && ada.role == "user",
        "a first sign-in creates the user, role user",
    )?;
    let again = signed_in(s, &sign_in("a1", "ada@example.com", "s-a2", 10)).await?;
    expect(
        again.id == ada.id,
        "the same Google account is the same user",
    )?;
    let other = s
        .sign_in(&sign_in("x9", "ADA@example.com", "s-x9", 20))
        .await
        .map_err(store)?;
    expect(
        other == SignInOutcome::NotLinked,
        "a new account with a taken email (any case) is not linked",
    )?;
    expect(
        s.session("s-x9").await.map_err(store)?.is_none(),
        "a refused sign-in writes no session",
    )?;
    let mut admin = sign_in("b1", "boss@example.com", "s-b1", 30);
    admin.make_admin = true;
    let boss = signed_in(s, &admin).await?;
    expect(boss.role == "admin", "ADMIN_EMAILS makes the role admin")
}

async fn sessions_are_read_renewed_and_revoked<S: UserStore>(s: &S) -> Check {
    let user = signed_in(s, &sign_in("c1", "cy@example.com", "s-c1", 0)).await?;
    signed_in(s, &sign_in("c1", "cy@example.com", "s-c2", 5)).await?;
    let record = s
        .session("s-c1")
        .await
        .map_err(store)?
        .ok_or("the session is found")?;
    expect(
        record.user.id == user.id && record.expires_at == T0 + MAX_AGE,
        "the session row holds its user and end",
    )?;
    expect(record.is_live(UnixTime(T0 + 1)), "a new session is live")?;
    expect(
        s.session("no-such-session").await.map_err(store)?.is_none(),
        "an unknown session is None",
    )?;
    let ids = ["s-c1".to_owned(), "s-c2".to_owned(), "no-such".to_owned()];
    s.seen(&ids, UnixTime(T0 + 300)).await.map_err(store)?;
    s.seen(&ids[..1], UnixTime(T0 + 200)).await.map_err(store)?;
    let seen = s.user_sessions(&user.id).await.map_err(store)?;
    let c1 = seen
        .iter()
        .find(|i| i.id == "s-c1")
        .ok_or("user_sessions lists the session")?;
    expect(
        c1.last_seen_at == T0 + 300 && seen.iter().all(|i| i.last_seen_at == T0 + 300),
        "seen sets last_seen_at of every session of the batch, never back in time",
    )?;
    expect(
        seen.first().map(|i| i.id.as_str()) == Some("s-c2"),
        "user_sessions lists the newest first",
    )?;
    s.revoke_session("s-c1", UnixTime(T0 + 400))
        .await
        .map_err(store)?;
    let c1 = s
        .session("s-c1")
        .await
        .map_err(store)?
        .ok_or("still found")?;
    expect(
        c1.revoked_at == Some(T0 + 400) && !c1.is_live(UnixTime(T0 + 401)),
        "revoke_session ends one session",
    )?;
    let c2 = s.session("s-c2").await.map_err(store)?.ok_or("found")?;
    expect(c2.is_live(UnixTime(T0 + 401)), "and only that one")?;
    s.revoke_user_sessions(&user.id, UnixTime(T0 + 500))
        .await
        .map_err(store)?;
    let c2 = s.session("s-c2").await.map_err(store)?.ok_or("found")?;
    expect(
        !c2.is_live(UnixTime(T0 + 501)),
        "revoke_user_sessions ends every session of the user",
    )
}

async fn the_email_follows_the_google_account<S: UserStore>(s: &S) -> Check {
    signed_in(s, &sign_in("d1", "dee@example.com", "s-d1", 0)).await?;
    signed_in(s, &sign_in("e1", "eve@example.com", "s-e1", 0)).await?;
    let moved = signed_in(s, &sign_in("d1", "dee@new.example", "s-d2", 10)).await?;
    expect(
        moved.email == "dee@new.example",
        "a new email of the same account is stored",
    )?;
    match s
        .sign_in(&sign_in("d1", "EVE@example.com", "s-d3", 20))
        .await
        .map_err(store)?
    {
        SignInOutcome::SignedIn { user, email_kept } => expect(
            email_kept && user.email == "dee@new.example",
            "another user's email is not taken",
        ),
        other => Err(format!("{other:?}")),
    }
}

async fn admin_lists_search_and_pages<S: UserStore>(s: &S) -> Check {
    for (i, email) in [
        "fa@list.test",
        "fb@list.test",
        "FC@list.test",
        "g@other.test",
    ]
    .iter()
    .enumerate()
    {
        signed_in(
            s,
            &sign_in(
                &format!("l{i}"),
                email,
                &format!("s-l{i}"),
                i64::try_from(i).unwrap_or_default(),
            ),
        )
        .await?;
    }
    let now = UnixTime(T0 + 100);
    let page = s.list_users(Some("f"), None, 2, now).await.map_err(store)?;
    let emails: Vec<&str> = page.iter().map(|u| u.user.email.as_str()).collect();
    expect(
        emails == ["fa@list.test", "fb@list.test"],
        &format!("search by prefix, ordered, limited: {emails:?}"),
    )?;
    let next = s
        .list_users(Some("F"), Some("fb@list.test"), 2, now)
        .await
        .map_err(store)?;
    let emails: Vec<&str> = next.iter().map(|u| u.user.email.as_str()).collect();
    expect(
        emails == ["FC@list.test"],
        &format!("keyset pages, search case-insensitive: {emails:?}"),
    )?;
    // Without a search, pages from the first one: every user once, in email order (any case).
    let whole: Vec<String> = s
        .list_users(None, None, 10_000, now)
        .await
        .map_err(store)?
        .into_iter()
        .map(|u| u.user.email)
        .collect();
    let mut paged: Vec<String> = Vec::new();
    for _ in 0..=whole.len() {
        let page = s
            .list_users(None, paged.last().map(String::as_str), 2, now)
            .await
            .map_err(store)?;
        let full = page.len() == 2;
        paged.extend(page.into_iter().map(|u| u.user.email));
        if !full {
            break;
        }
    }
    let lower: Vec<String> = whole.iter().map(|e| e.to_lowercase()).collect();
    expect(
        paged == whole
            && lower.windows(2).all(|w| w[0] < w[1])
            && lower.iter().filter(|e| e.ends_with("@list.test")).count() == 3,
        &format!("pages without a search walk every user once, in order: {paged:?} {whole:?}"),
    )?;
    let one = s
        .user("user-l0", now)
        .await
        .map_err(store)?
        .ok_or("user() finds the user")?;
    expect(
        one.active_sessions == 1 && one.created_at == T0 && one.last_seen_at == Some(T0),
        "a user's summary counts live sessions",
    )?;
    expect(
        s.user("no-such-user", now).await.map_err(store)?.is_none(),
        "an unknown user is None",
    )
}

async fn admin_actions_apply_once_and_are_audited<S: UserStore>(s: &S) -> Check {
    let boss = signed_in(s, &sign_in("h0", "h0@example.com", "s-h0", 0)).await?;
    let user = signed_in(s, &sign_in("h1", "h1@example.com", "s-h1", 0)).await?;
    let other = signed_in(s, &sign_in("h2", "h2@example.com", "s-h2", 0)).await?;
    let now = UnixTime(T0 + 50);
    let role = AdminAction::SetRole {
        user_id: user.id.clone(),
        role: "finance".into(),
    };
    expect(
        apply(s, &boss.id, &role, now).await? == Applied::Done,
        "set-role applies",
    )?;
    let record = s.session("s-h1").await.map_err(store)?.ok_or("found")?;
    expect(
        record.user.role == "finance",
        "the new role is what renewal reads",
    )?;
    let theirs = AdminAction::RevokeSession {
        user_id: user.id.clone(),
        session_id: "s-h2".into(),
    };
    expect(
        apply(s, &boss.id, &theirs, now).await? == Applied::NoMatch,
        "a session of another user matches nothing",
    )?;
    expect(
        s.session("s-h2")
            .await
            .map_err(store)?
            .ok_or("found")?
            .is_live(now),
        "and is left alone",
    )?;
    let unknown = AdminAction::Disable {
        user_id: "no-such-user".into(),
    };
    expect(
        apply(s, &boss.id, &unknown, now).await? == Applied::NoMatch,
        "an unknown user matches nothing",
    )?;
    let disable = AdminAction::Disable {
        user_id: user.id.clone(),
    };
    expect(
        apply(s, &boss.id, &disable, now).await? == Applied::Done,
        "disable applies",
    )?;
    let record = s.session("s-h1").await.map_err(store)?.ok_or("found")?;
    expect(
        record.user.disabled_at.is_some() && !record.is_live(now),
        "a disabled user's sessions end",
    )?;
    let refused = s
        .sign_in(&sign_in("h1", "h1@example.com", "s-h1b", 60))
        .await
        .map_err(store)?;
    expect(
        refused == SignInOutcome::Disabled,
        "a disabled user cannot sign in",
    )?;
    let none_left = AdminAction::RevokeAll {
        user_id: user.id.clone(),
    };
    expect(
        apply(s, &boss.id, &none_left, now).await? == Applied::NoMatch,
        "revoke-all without live sessions matches nothing",
    )?;
    let enable = AdminAction::Enable {
        user_id: user.id.clone(),
    };
    expect(
        apply(s, &boss.id, &enable, now).await? == Applied::Done,
        "enable applies",
    )?;
    signed_in(s, &sign_in("h1", "h1@example.com", "s-h1c", 70)).await?;
    let all = AdminAction::RevokeAll {
        user_id: other.id.clone(),
    };
    expect(
        apply(s, &boss.id, &all, now).await? == Applied::Done,
        "revoke-all applies",
    )?;
    let log = s.audit_log(10).await.map_err(store)?;
    let actions: Vec<&str> = log.iter().map(|a| a.action.as_str()).collect();
    expect(
        actions == ["revoke-all", "enable", "disable", "set-role"],
        &format!("only what was done is audited, newest first: {actions:?}"),
    )?;
    expect(
        log[0].actor.as_deref() == Some("h0@example.com"),
        "the audit names the actor by email",
    )?;
    expect(
        s.audit_log(1).await.map_err(store)?.len() == 1,
        "audit_log is limited",
    )
}

async fn apply<S: UserStore>(
    s: &S,
    actor: &str,
    a: &AdminAction,
    now: UnixTime,
) -> Result<Applied, String> {
    s.apply(actor, a, now).await.map_err(store)
}

async fn security_events_apply_once_by_google_account<S: UserStore>(s: &S) -> Check {
    let audited = s.audit_log(1000).await.map_err(store)?.len();
    let hal = signed_in(s, &sign_in("r1", "hal@example.com", "s-r1", 0)).await?;
    signed_in(s, &sign_in("r2", "ida@example.com", "s-r2", 0)).await?;
    let now = UnixTime(T0 + 100);
    let forget = UnixTime(T0 - 1000);
    let disable = [
        RiscChange {
            subject: "r1",
            effect: RiscEffect::Disable,
            action: "risc:account-disabled",
            detail: Some("reason=hijacking"),
        },
        RiscChange {
            subject: "no-such-account",
            effect: RiscEffect::RevokeSessions,
            action: "risc:sessions-revoked",
            detail: None,
        },
    ];
    let first = s
        .security_event("jti-1", &disable, now, forget)
        .await
        .map_err(store)?;
    expect(
        first == Delivery::Applied { matched: 1 },
        &format!("a new jti is applied, one account matched: {first:?}"),
    )?;
    let r1 = s.session("s-r1").await.map_err(store)?.ok_or("found")?;
    expect(
        r1.user.disabled_at == Some(now.secs()) && r1.revoked_at == Some(now.secs()),
        "account-disabled disables the user and revokes the session",
    )?;
    let r2 = s.session("s-r2").await.map_err(store)?.ok_or("found")?;
    expect(r2.revoked_at.is_none(), "other users are untouched")?;
    let audit = s.audit_log(1000).await.map_err(store)?;
    expect(
        audit.len() == audited + 1
            && audit[0].actor.is_none()
            && audit[0].action == "risc:account-disabled"
            && audit[0].target.as_deref() == Some(&format!("{} reason=hijacking", hal.id)),
        &format!("one audit row, no actor, user id and reason: {audit:?}"),
    )?;
    let revoke_r2 = [RiscChange {
        subject: "r2",
        effect: RiscEffect::RevokeSessions,
        action: "risc:sessions-revoked",
        detail: None,
    }];
    let replay = s
        .security_event("jti-1", &revoke_r2, UnixTime(T0 + 200), forget)
        .await
        .map_err(store)?;
    expect(
        replay == Delivery::Replayed,
        "a jti already seen is a replay",
    )?;
    let r2 = s.session("s-r2").await.map_err(store)?.ok_or("found")?;
    expect(
        r2.revoked_at.is_none() && s.audit_log(1000).await.map_err(store)?.len() == audited + 1,
        "a replay changes nothing",
    )?;
    // Past the retention the id is forgotten (a SET that old is refused on its `iat` anyway).
    let later = s
        .security_event("jti-1", &revoke_r2, UnixTime(T0 + 300), UnixTime(T0 + 250))
        .await
        .map_err(store)?;
    expect(
        later == Delivery::Applied { matched: 1 },
        &format!("ids received before forget_before are forgotten: {later:?}"),
    )?;
    let r2 = s.session("s-r2").await.map_err(store)?.ok_or("found")?;
    expect(
        r2.revoked_at == Some(T0 + 300) && r2.user.disabled_at.is_none(),
        "sessions-revoked revokes without disabling",
    )?;
    let audited = s.audit_log(1000).await.map_err(store)?.len();
    let enabled = [RiscChange {
        subject: "r1",
        effect: RiscEffect::Record,
        action: "risc:account-enabled",
        detail: None,
    }];
    let noted = s
        .security_event("jti-2", &enabled, UnixTime(T0 + 400), forget)
        .await
        .map_err(store)?;
    let r1 = s.session("s-r1").await.map_err(store)?.ok_or("found")?;
    let audit = s.audit_log(1000).await.map_err(store)?;
    expect(
        noted == Delivery::Applied { matched: 1 }
            && r1.user.disabled_at == Some(now.secs())
            && audit.len() == audited + 1
            && audit[0].action == "risc:account-enabled",
        &format!("a recorded event only writes its audit row: {noted:?} {audit:?}"),
    )
}

/// The ids the change feed names (from the beginning of time), sessions and users apart.
async fn named<S: UserStore>(s: &S) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut sessions, mut users) = (Vec::new(), Vec::new());
    for change in s
        .changes_since(UnixTime(0), 10_000)
        .await
        .map_err(store)?
        .changes
    {
        match change {
            Change::Session(id, _) => sessions.push(id),
            Change::User(id, _) => users.push(id),
        }
    }
    Ok((sessions, users))
}

/// The feed's times are the writer's clock (D1's `unixepoch()` on D1, the given time in
/// memory), so this check compares ids, and only says of times that a read from far in the
/// future finds nothing.
async fn the_change_feed_names_what_changed<S: UserStore>(s: &S) -> Check {
    let (before_s, before_u) = named(s).await?;
    let fay = signed_in(s, &sign_in("f1", "fay@example.com", "s-f1", 0)).await?;
    signed_in(s, &sign_in("f1", "fay@example.com", "s-f2", 5)).await?;
    signed_in(s, &sign_in("f1", "fay@example.com", "s-f3", 6)).await?;
    s.seen(&["s-f1".to_owned()], UnixTime(T0 + 100))
        .await
        .map_err(store)?;
    let (sessions, users) = named(s).await?;
    expect(
        sessions.len() == before_s.len() && users.len() == before_u.len(),
        "sign-ins that change no profile, and last-seen writes, feed nothing",
    )?;
    let mut renamed = sign_in("f1", "fay@example.com", "s-f4", 10);
    renamed.name = Some("Fay Renamed".into());
    signed_in(s, &renamed).await?;
    s.revoke_session("s-f1", UnixTime(T0 + 20))
        .await
        .map_err(store)?;
    s.revoke_session("s-f1", UnixTime(T0 + 21))
        .await
        .map_err(store)?;
    let (sessions, users) = named(s).await?;
    let new = |all: &[String], before: &[String]| all[before.len().min(all.len())..].to_vec();
    expect(
        new(&users, &before_u) == [fay.id.clone()],
        &format!(
            "a changed name names the user: {:?}",
            new(&users, &before_u)
        ),
    )?;
    expect(
        new(&sessions, &before_s) == ["s-f1"],
        &format!(
            "a revocation names the session, once: {:?}",
            new(&sessions, &before_s)
        ),
    )?;
    let pulled = s.changes_since(UnixTime(0), 10_000).await.map_err(store)?;
    let bookmark = pulled
        .bookmark
        .ok_or("a pull of the feed gives a bookmark")?;
    let row = s
        .session_after("s-f1", &bookmark)
        .await
        .map_err(store)?
        .ok_or("session_after finds the session")?;
    expect(
        row.revoked_at.is_some(),
        "a read after the pull's bookmark sees what the pull saw",
    )?;
    let role = AdminAction::SetRole {
        user_id: fay.id.clone(),
        role: "editor".into(),
    };
    s.apply(&fay.id, &role, UnixTime(T0 + 30))
        .await
        .map_err(store)?;
    s.apply(
        &fay.id,
        &AdminAction::Disable {
            user_id: fay.id.clone(),
        },
        UnixTime(T0 + 40),
    )
    .await
    .map_err(store)?;
    let (sessions, users) = named(s).await?;
    let mut revoked = new(&sessions, &before_s);
    revoked.sort();
    expect(
        new(&users, &before_u).len() == 3 && revoked == ["s-f1", "s-f2", "s-f3", "s-f4"],
        &format!(
            "a role change and disabling name the user; disabling names each live session: {:?} {revoked:?}",
            new(&users, &before_u)
        ),
    )?;
    expect(
        s.changes_since(UnixTime(i64::from(u32::MAX)), 10)
            .await
            .map_err(store)?
            .changes
            .is_empty(),
        "nothing changed after a time far in the future",
    )
}

const DAY: i64 = 86_400;

/// `tenths` tenths of a day before `T0`.
fn days_before(tenths: i64) -> i64 {
    T0 - tenths * DAY / 10
}

/// A sign-in of `sub` that starts `tenths`/10 days before `T0` (and ends `MAX_AGE` later).
fn signed_days_before(sub: &str, sid: &str, tenths: i64) -> SignIn {
    sign_in(
        sub,
        &format!("{sub}@prune.test"),
        sid,
        days_before(tenths) - T0,
    )
}

/// The rows of the pruning check, all before `T0`; returns users P, Q and R.
async fn rows_to_prune<S: UserStore>(s: &S) -> Result<[User; 3], String> {
    // P: two sessions long past their end (the later one seen 100 days before T0).
    let p = signed_in(s, &signed_days_before("pr-p", "pr-p0", 1200)).await?;
    signed_in(s, &signed_days_before("pr-p", "pr-p1", 1000)).await?;
    // Q: one past its end, one live, one revoked 57 days before T0 (seen a day before that).
    let q = signed_in(s, &signed_days_before("pr-q", "pr-q1", 1000)).await?;
    signed_in(s, &signed_days_before("pr-q", "pr-q2", 600)).await?;
    signed_in(s, &signed_days_before("pr-q", "pr-q3", 580)).await?;
    s.revoke_session("pr-q3", UnixTime(days_before(570)))
        .await
        .map_err(store)?;
    // R: revoked half a day ago, and past its end half a day ago: both within the grace.
    let r = signed_in(s, &signed_days_before("pr-r", "pr-r1", 530)).await?;
    signed_in(s, &signed_days_before("pr-r", "pr-r2", 805)).await?;
    s.revoke_session("pr-r1", UnixTime(days_before(505)))
        .await
        .map_err(store)?;
    // Audit rows 300 and 55 days before T0; security event ids received then too.
    for (tenths, role) in [(3000, "old"), (550, "user")] {
        let set = AdminAction::SetRole {
            user_id: r.id.clone(),
            role: role.into(),
        };
        apply(s, &p.id, &set, UnixTime(days_before(tenths))).await?;
    }
    for (tenths, jti) in [(3000, "jti-old"), (550, "jti-new")] {
        s.security_event(jti, &[], UnixTime(days_before(tenths)), UnixTime(0))
            .await
            .map_err(store)?;
    }
    Ok([p, q, r])
}

/// Pruning at "now" = 50 days before `T0`, with a day of grace: every row the other checks
/// wrote lies after that (they start at `T0`), so this check sees only its own rows go.
async fn pruning_deletes_old_rows_only_and_keeps_last_seen<S: UserStore>(s: &S) -> Check {
    let now = UnixTime(days_before(500));
    let users = rows_to_prune(s).await?;
    let plan = Prune {
        expired_before: now.plus(-DAY),
        revoked_before: now.plus(-DAY),
        audit_before: UnixTime(days_before(1000)),
        risc_before: UnixTime(days_before(1000)),
        // The change feed's rows carry D1's own clock, not the suite's: none is touched here.
        changes_before: UnixTime(0),
        chunk: 2,
        max_chunks: 1,
    };
    let first = s.prune(&plan).await.map_err(store)?;
    expect(
        first
            == Pruned {
                expired_sessions: 2,
                revoked_sessions: 1,
                audit_entries: 1,
                risc_events: 1,
                changes: 0,
                more: true,
            },
        &format!("one chunk of each, the budget spent on expired sessions: {first:?}"),
    )?;
    let second = s.prune(&plan).await.map_err(store)?;
    expect(
        second
            == Pruned {
                expired_sessions: 1,
                ..Pruned::default()
            },
        &format!("the next run takes the rest: {second:?}"),
    )?;
    let third = s.prune(&plan).await.map_err(store)?;
    expect(
        third == Pruned::default(),
        &format!("then nothing is left: {third:?}"),
    )?;
    for sid in ["pr-p0", "pr-p1", "pr-q1", "pr-q3"] {
        expect(
            s.session(sid).await.map_err(store)?.is_none(),
            &format!("{sid} (past its end or revoked over a day ago) is gone"),
        )?;
    }
    for sid in ["pr-q2", "pr-r1", "pr-r2"] {
        expect(
            s.session(sid).await.map_err(store)?.is_some(),
            &format!("{sid} (live, or ended within the grace) is kept"),
        )?;
    }
    what_pruning_keeps(s, users, now).await
}

/// After the pruning check's runs: last seen and active sessions of P, Q and R, audit rows
/// and security event ids.
async fn what_pruning_keeps<S: UserStore>(s: &S, [p, q, r]: [User; 3], now: UnixTime) -> Check {
    let summary = |id: String| async move {
        s.user(&id, now)
            .await
            .map_err(store)?
            .ok_or(format!("user {id} is kept"))
    };
    let (sp, sq, sr) = (
        summary(p.id.clone()).await?,
        summary(q.id).await?,
        summary(r.id).await?,
    );
    expect(
        sp.last_seen_at == Some(days_before(1000)) && sp.active_sessions == 0,
        &format!("a user whose sessions are all gone keeps their last seen: {sp:?}"),
    )?;
    expect(
        s.user_sessions(&p.id).await.map_err(store)?.is_empty(),
        "and lists no session",
    )?;
    expect(
        sq.last_seen_at == Some(days_before(580)) && sq.active_sessions == 1,
        &format!("last seen is the later of the pruned and the kept sessions': {sq:?}"),
    )?;
    expect(
        sr.last_seen_at == Some(days_before(530)) && sr.active_sessions == 0,
        &format!("recent ends are kept and still not active: {sr:?}"),
    )?;
    let listed = s
        .list_users(Some("pr-"), None, 10, now)
        .await
        .map_err(store)?;
    expect(
        listed == [sp, sq, sr],
        &format!("the list says what user() says: {listed:?}"),
    )?;
    let audit: Vec<i64> = s
        .audit_log(1000)
        .await
        .map_err(store)?
        .iter()
        .map(|a| a.created_at)
        .filter(|t| *t < T0)
        .collect();
    expect(
        audit == [days_before(550)],
        &format!("audit rows past the retention go, the others stay: {audit:?}"),
    )?;
    let new = s
        .security_event("jti-new", &[], now, UnixTime(0))
        .await
        .map_err(store)?;
    let old = s
        .security_event("jti-old", &[], now, UnixTime(0))
        .await
        .map_err(store)?;
    expect(
        new == Delivery::Replayed && old == Delivery::Applied { matched: 0 },
        &format!("only security event ids past the retention are forgotten: {new:?} {old:?}"),
    )
}

/// Site B of the hand-off checks.
const SITE_B: &str = "https://wiki.example.com";

fn hand_off(code: &str, session: &str, user: &str, expires_at: i64) -> HandOff {
    HandOff {
        code_hash: format!("hash-{code}"),
        user_id: user.into(),
        session_id: session.into(),
        site: SITE_B.into(),
        state_hash: format!("state-{code}"),
        expires_at,
    }
}

fn site_session(id: &str, parent: &str, at: i64) -> SiteSession {
    SiteSession {
        id: id.into(),
        parent_id: parent.into(),
        site: SITE_B.into(),
        now: UnixTime(T0 + at),
        user_agent: Some("contract".into()),
    }
}

async fn live<S: UserStore>(s: &S, id: &str, at: i64) -> Result<bool, String> {
    Ok(s.session(id)
        .await
        .map_err(store)?
        .is_some_and(|r| r.is_live(UnixTime(T0 + at))))
}

async fn a_code_is_redeemed_once<S: UserStore>(s: &S) -> Check {
    let user = signed_in(s, &sign_in("j1", "jo@example.com", "s-j1", 0)).await?;
    let code = hand_off("c1", "s-j1", &user.id, T0 + 60);
    s.create_hand_off(&code, UnixTime(T0))
        .await
        .map_err(store)?;
    let first = s
        .redeem_hand_off("hash-c1", UnixTime(T0 + 1))
        .await
        .map_err(store)?;
    expect(
        first.as_ref() == Some(&code),
        "the first redeem gets the code as made",
    )?;
    expect(
        s.redeem_hand_off("hash-c1", UnixTime(T0 + 2))
            .await
            .map_err(store)?
            .is_none(),
        "a code is used once",
    )?;
    s.create_hand_off(&hand_off("c2", "s-j1", &user.id, T0 + 10), UnixTime(T0))
        .await
        .map_err(store)?;
    s.create_hand_off(
        &hand_off("c3", "s-j1", &user.id, T0 + 80),
        UnixTime(T0 + 20),
    )
    .await
    .map_err(store)?;
    expect(
        s.redeem_hand_off("hash-c2", UnixTime(T0 + 21))
            .await
            .map_err(store)?
            .is_none(),
        "codes past their end are deleted when a code is made",
    )?;
    Ok(())
}

async fn a_sign_in_ends_with_its_sites<S: UserStore>(s: &S) -> Check {
    let user = signed_in(s, &sign_in("k1", "kai@example.com", "s-k1", 0)).await?;
    signed_in(s, &sign_in("k1", "kai@example.com", "s-k2", 0)).await?;
    expect(
        s.hand_off_session(&site_session("s-k1b", "s-k1", 2))
            .await
            .map_err(store)?,
        "a live sign-in hands off a site session",
    )?;
    let child = s.session("s-k1b").await.map_err(store)?.ok_or("found")?;
    expect(
        child.user.id == user.id && child.expires_at == T0 + MAX_AGE,
        "the site session is the sign-in's user's, and ends with it",
    )?;
    let sites: Vec<_> = s
        .user_sessions(&user.id)
        .await
        .map_err(store)?
        .into_iter()
        .map(|i| (i.id, i.site))
        .collect();
    expect(
        sites.contains(&("s-k1b".into(), Some(SITE_B.into())))
            && sites.contains(&("s-k1".into(), Some("https://site.test".into()))),
        "user_sessions says which site each session is for",
    )?;
    expect(
        !s.hand_off_session(&site_session("s-x", "no-such", 2))
            .await
            .map_err(store)?,
        "no site session without a sign-in",
    )?;
    s.hand_off_session(&site_session("s-k1c", "s-k1", 3))
        .await
        .map_err(store)?;
    s.hand_off_session(&site_session("s-k2b", "s-k2", 3))
        .await
        .map_err(store)?;
    // Signing out on one site ends the sign-in and each of its sites, nothing else.
    s.revoke_session("s-k1b", UnixTime(T0 + 10))
        .await
        .map_err(store)?;
    for id in ["s-k1", "s-k1b", "s-k1c"] {
        if live(s, id, 11).await? {
            return Err(format!(
                "a sign-out on a site ends the whole sign-in: {id} is live"
            ));
        }
    }
    expect(
        live(s, "s-k2", 11).await? && live(s, "s-k2b", 11).await?,
        "another sign-in of the same user stays",
    )?;
    let feed = s.changes_since(UnixTime(0), 10_000).await.map_err(store)?;
    expect(
        feed.changes
            .iter()
            .any(|c| matches!(c, Change::Session(id, _) if id == "s-k1c")),
        "the change feed names each site session ended",
    )?;
    expect(
        !s.hand_off_session(&site_session("s-k1d", "s-k1", 12))
            .await
            .map_err(store)?,
        "an ended sign-in hands off nothing",
    )?;
    s.revoke_session("s-k2", UnixTime(T0 + 20))
        .await
        .map_err(store)?;
    expect(
        !live(s, "s-k2b", 21).await?,
        "a sign-out at the auth origin ends its sites' sessions",
    )
}

/// An admin ending a sign-in at the auth origin ends its sites' sessions too; ending a site's
/// session ends that one alone.
async fn an_admin_ends_a_sign_in_or_one_site<S: UserStore>(s: &S) -> Check {
    let user = signed_in(s, &sign_in("k1", "kai@example.com", "s-k3", 30)).await?;
    for (id, at) in [("s-k3b", 31), ("s-k3c", 31)] {
        s.hand_off_session(&site_session(id, "s-k3", at))
            .await
            .map_err(store)?;
    }
    let end = |session_id: &str| AdminAction::RevokeSession {
        user_id: user.id.clone(),
        session_id: session_id.into(),
    };
    expect(
        apply(s, "boss", &end("s-k3b"), UnixTime(T0 + 40)).await? == Applied::Done,
        "a site's session ends",
    )?;
    expect(
        live(s, "s-k3", 41).await? && live(s, "s-k3c", 41).await?,
        "alone",
    )?;
    expect(
        apply(s, "boss", &end("s-k3"), UnixTime(T0 + 42)).await? == Applied::Done,
        "a sign-in ends",
    )?;
    expect(
        !live(s, "s-k3", 43).await? && !live(s, "s-k3c", 43).await?,
        "with its sites' sessions",
    )
}

/// Runs every check on an empty store; returns each check's name and result, in order.
pub async fn run<S: UserStore>(s: &S) -> Vec<(&'static str, Check)> {
    vec![
        (
            "sign_in_creates_finds_and_refuses",
            sign_in_creates_finds_and_refuses(s).await,
        ),
        (
            "sessions_are_read_renewed_and_revoked",
            sessions_are_read_renewed_and_revoked(s).await,
        ),
        (
            "the_email_follows_the_google_account",
            the_email_follows_the_google_account(s).await,
        ),
        (
            "admin_lists_search_and_pages",
            admin_lists_search_and_pages(s).await,
        ),
        (
            "admin_actions_apply_once_and_are_audited",
            admin_actions_apply_once_and_are_audited(s).await,
        ),
        (
            "security_events_apply_once_by_google_account",
            security_events_apply_once_by_google_account(s).await,
        ),
        (
            "the_change_feed_names_what_changed",
            the_change_feed_names_what_changed(s).await,
        ),
        (
            "pruning_deletes_old_rows_only_and_keeps_last_seen",
            pruning_deletes_old_rows_only_and_keeps_last_seen(s).await,
        ),
        ("a_code_is_redeemed_once", a_code_is_redeemed_once(s).await),
        (
            "a_sign_in_ends_with_its_sites",
            a_sign_in_ends_with_its_sites(s).await,
        ),
        (
            "an_admin_ends_a_sign_in_or_one_site",
            an_admin_ends_a_sign_in_or_one_site(s).await,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::store::memory::MemoryStore;

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the memory store never waits"),
        }
    }

    #[test]
    fn the_memory_store_passes_the_contract() {
        let results = block_on(run(&MemoryStore::default()));
        assert_eq!(results.len(), 11);
        let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(failed.is_empty(), "{failed:?}");
    }

    /// What the query plan check on D1 relies on (`tests/e2e/store_contract.test.mjs` checks it
    /// again there): the suite makes every call shape the D1 store has SQL for.
    #[test]
    fn the_contract_reaches_every_statement_shape() {
        let memory = MemoryStore::default();
        let store = coverage::Coverage::new(&memory);
        let results = block_on(run(&store));
        assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
        assert_eq!(store.missing(), Vec::<&str>::new(), "shapes never reached");
        assert_eq!(
            store.unlisted(),
            Vec::<String>::new(),
            "shapes not in SHAPES"
        );
    }
}

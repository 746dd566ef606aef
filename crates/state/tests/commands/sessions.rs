//! RevokeSession: a signed-out web UI session is refused until its own expiry, survives a
//! snapshot, and is forgotten once it has expired (by Expire or the next revocation), so the
//! set stays as small as the sessions still alive.

use berth_model::Millis;
use berth_model::command::RevokeSession;
use berth_state::State;

use crate::common::*;

fn revoke(id: char, expires: Millis) -> RevokeSession {
    RevokeSession {
        session: id.to_string().repeat(32),
        expires,
    }
}

fn revoked(w: &World, id: char) -> bool {
    w.state.session_revoked(&id.to_string().repeat(32))
}

#[test]
fn a_revoked_session_stays_revoked_until_it_expires_and_no_longer() {
    let mut w = World::default();
    let soon = Millis(w.now.0 + 5_500);
    w.ok(revoke('a', soon));
    w.ok(revoke('b', Millis(w.now.0 + 60_000)));
    assert!(revoked(&w, 'a') && revoked(&w, 'b'));
    assert!(!revoked(&w, 'c'), "other sessions are untouched");
    w.ok(revoke('a', soon));
    // One that has expired already is not worth remembering.
    w.ok(revoke('c', w.now));
    assert!(!revoked(&w, 'c'));

    let restored = State::restore(w.state.persist(), Default::default());
    assert!(restored.session_revoked(&"a".repeat(32)));
    assert_eq!(restored.persist(), w.state.persist());

    w.ok(w.expire_everything());
    assert!(revoked(&w, 'a'), "not expired yet");
    while w.now < soon {
        w.ok(revoke('d', Millis(w.now.0 + 60_000)));
    }
    assert!(!revoked(&w, 'a'), "a revocation forgets the expired ones");
    assert!(revoked(&w, 'b') && revoked(&w, 'd'));
    w.now = Millis(w.now.0 + 60_000);
    w.ok(w.expire_everything());
    assert!(
        !revoked(&w, 'b') && !revoked(&w, 'd'),
        "Expire forgets them too"
    );
}

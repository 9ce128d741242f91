"""The edge's revocation list (api_edge/revocations.py): what it refuses, what it forgets, its bound."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from api_edge.revocations import RevocationList, ident_of
from contracts.identity import (
    ACCESS_TOKEN_TTL_S,
    REVOCATION_MARGIN_S,
    REVOCATION_WINDOW_S,
    AccessRevoked,
    RevocationReason,
    RevocationScope,
)

USER, SESSION, KEY = RevocationScope.user, RevocationScope.session, RevocationScope.api_key
T = 1_750_000_000.0  # identity's clock at the revocation
M = REVOCATION_MARGIN_S


def test_a_revoked_users_tokens_issued_before_are_refused_and_later_ones_pass() -> None:
    revoked = RevocationList()
    assert revoked.add(USER, "alice", T, now=T)
    assert revoked.token_refusal("alice", T - 600) is not None  # issued before: refused
    assert revoked.token_refusal("alice", T) is not None  # at: refused
    assert revoked.token_refusal("alice", T + M) is not None  # within the margin: refused
    assert revoked.token_refusal("alice", T + M + 1) is None  # re-enabled, logged in again: good
    assert revoked.token_refusal("bob", T - 600) is None  # another user: untouched


def test_a_later_revocation_of_the_same_user_moves_the_line_and_an_older_one_does_not() -> None:
    revoked = RevocationList()
    revoked.add(USER, "alice", T, now=T)
    assert revoked.add(USER, "alice", T + 100, now=T + 100)  # disabled again after a re-enable
    assert revoked.token_refusal("alice", T + 50) is not None
    assert not revoked.add(USER, "alice", T, now=T + 100)  # the older one, read back late: nothing new
    assert not revoked.add(USER, "alice", T + 100, now=T + 100)  # a repeat (at-least-once): nothing new
    assert revoked.token_refusal("alice", T + 50) is not None and len(revoked) == 1


def test_a_session_or_an_api_key_is_refused_whenever_its_token_was_issued() -> None:
    revoked = RevocationList()
    revoked.add(SESSION, "s1", T, now=T)
    revoked.add(KEY, "k1", T, now=T)
    # A revoked login or key never gets another token, so its tokens' iat does not matter.
    assert revoked.token_refusal("alice", T + 60, sid="s1") is not None
    assert revoked.token_refusal("alice", T + 60, sid="s2") is None  # the user's other login still works
    assert revoked.token_refusal("carol", T + 60, api_key_id="k1") is not None
    assert revoked.token_refusal("carol", T + 60, api_key_id="k2") is None
    assert revoked.api_key_revoked("k1") and not revoked.api_key_revoked("k2")
    assert revoked.token_refusal("alice", T - 10) is None  # a session revocation is not the user's


def test_what_covers_only_expired_tokens_is_forgotten() -> None:
    revoked = RevocationList()
    revoked.add(USER, "alice", T, now=T)
    revoked.add(SESSION, "s1", T + 600, now=T + 600)
    assert revoked.prune(now=T + REVOCATION_WINDOW_S - 1) == 0
    assert revoked.prune(now=T + REVOCATION_WINDOW_S + 1) == 1 and len(revoked) == 1
    # Kept past the longest token's life whatever the margin: no token it covered is still valid.
    assert REVOCATION_WINDOW_S - M > ACCESS_TOKEN_TTL_S
    assert not revoked.add(USER, "bob", T, now=T + REVOCATION_WINDOW_S + 1)  # too old to matter: not kept


def test_the_list_is_bounded_and_what_it_drops_still_refuses_through_the_floor() -> None:
    revoked = RevocationList(max_entries=3)
    for n in range(5):
        revoked.add(SESSION, f"s{n}", T + n, now=T + n)
    assert len(revoked) == 3
    assert revoked.floor == T + 1  # s0 and s1 were dropped for space
    # Their tokens were issued at or before their revocation: the floor refuses them (and any
    # other token that old: its holder refreshes), never lets one through.
    assert revoked.token_refusal("alice", T + 1, sid="s1") is not None
    assert revoked.token_refusal("alice", T + 1 + M + 1, sid="s9") is None
    assert revoked.token_refusal("alice", T + 100, sid="s4") is not None  # still held one by one


def test_a_full_list_first_drops_what_has_expired() -> None:
    revoked = RevocationList(max_entries=2)
    revoked.add(SESSION, "old", T, now=T)
    revoked.add(SESSION, "recent", T + REVOCATION_WINDOW_S, now=T + REVOCATION_WINDOW_S)
    revoked.add(SESSION, "new", T + REVOCATION_WINDOW_S + 5, now=T + REVOCATION_WINDOW_S + 5)
    assert len(revoked) == 2 and revoked.floor == float("-inf")  # expiry made room: no floor needed


def test_learned_since_tells_an_api_key_check_that_raced_a_revocation() -> None:
    revoked = RevocationList()
    seq = revoked.seq
    revoked.add(SESSION, "s1", T, now=T)
    assert not revoked.learned_since(seq, "alice", "k1")  # someone else's logout
    revoked.add(USER, "alice", T, now=T)
    assert revoked.learned_since(seq, "alice", "k1")
    seq = revoked.seq
    revoked.add(KEY, "k1", T, now=T)
    assert revoked.learned_since(seq, "bob", "k1") and not revoked.learned_since(revoked.seq, "alice", "k1")


def test_ident_of_names_what_the_scope_revokes() -> None:
    user, session, key = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)

    def fact(scope: RevocationScope, **ids: uuid.UUID) -> AccessRevoked:
        return AccessRevoked(revocation_id=uuid.uuid4(), scope=scope, user_id=user, reason=RevocationReason.logout,
                             revoked_at=now, **ids)  # fmt: skip

    assert ident_of(fact(USER)) == str(user)
    assert ident_of(fact(SESSION, session_id=session)) == str(session)
    assert ident_of(fact(KEY, key_id=key)) == str(key)
    assert ident_of(fact(SESSION)) is None  # malformed: names no session

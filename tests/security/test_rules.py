"""The rule book, tokens and principals, without a daemon."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from syncd.config import AuthConfig, TokenConfig, load_config
from syncd.errors import ConfigError, PermissionDeniedError, UnauthenticatedError
from syncd.security import RULES, Action, Guard, Role, hash_token, new_token, required_role

VIEWER, OPERATOR = new_token(), new_token()


def tokens_config(**more: object) -> AuthConfig:
    return AuthConfig(
        tokens=(
            TokenConfig(name="watcher", role="viewer", sha256=hash_token(VIEWER)),
            TokenConfig(name="ci", role="operator", sha256=hash_token(OPERATOR)),
        ),
        **more,  # type: ignore[arg-type]
    )


class TestRuleBook:
    def test_every_action_has_exactly_one_role_and_roles_nest(self) -> None:
        """The table covers every action; viewer < operator < admin."""
        assert set(RULES) == set(Action)
        assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
        assert required_role(Action.READ) is Role.VIEWER
        assert {a for a in Action if required_role(a) is Role.OPERATOR} == {
            Action.RUN,
            Action.CANCEL,
            Action.PAUSE,
            Action.RESUME,
            Action.NOTE,
        }
        assert {a for a in Action if required_role(a) is Role.ADMIN} == {
            Action.RELOAD,
            Action.LOGIN_LINK,
            Action.REPLICATION,
            Action.CLUSTER,
            Action.OTHER,  # what no edge classifies: closed by default
        }

    def test_a_viewer_may_read_but_not_run_cancel_pause_or_reload(self) -> None:
        """Too little role is PermissionDenied, naming role and need, never the token."""
        guard = Guard(tokens_config())
        viewer = guard.from_token(VIEWER, "ipv4:10.0.0.1:5", "tcp")
        assert viewer.actor == "token watcher" and viewer.role is Role.VIEWER
        Guard.authorize(viewer, Action.READ)
        for action in (Action.RUN, Action.CANCEL, Action.PAUSE, Action.RESUME, Action.RELOAD):
            with pytest.raises(PermissionDeniedError) as refused:
                Guard.authorize(viewer, action)
            assert "viewer" in str(refused.value) and VIEWER not in str(refused.value)
        operator = guard.from_token(OPERATOR, "x", "tcp")
        Guard.authorize(operator, Action.RUN)
        with pytest.raises(PermissionDeniedError):
            Guard.authorize(operator, Action.RELOAD)


class TestTokens:
    def test_tokens_are_random_and_stored_as_sha256(self) -> None:
        """Two tokens differ; the stored form is sha256:<64 hex> and not the token."""
        assert new_token() != new_token()
        digest = hash_token(OPERATOR)
        assert digest.startswith("sha256:") and len(digest) == 71 and OPERATOR not in digest

    def test_an_unknown_or_malformed_credential_is_unauthenticated_without_echo(self) -> None:
        """The message never quotes what was sent."""
        guard = Guard(tokens_config())
        for header in (f"Bearer {OPERATOR}x", "Basic abc", "Bearer ", "Bearer " + "y" * 5000):
            with pytest.raises(UnauthenticatedError) as refused:
                guard.from_authorization(header, "a", "tcp")
            assert header.split(" ", 1)[-1][:20] not in str(refused.value) or not header[7:]

    def test_a_token_file_adds_tokens_and_a_bad_line_is_named_not_quoted(
        self, tmp_path: Path
    ) -> None:
        """Lines "name role sha256:…"; a pasted plain token is refused by line number."""
        extra = new_token()
        good = tmp_path / "tokens"
        good.write_text(f"# ops\nbackup operator {hash_token(extra)}\n")
        guard = Guard(tokens_config(token_file=str(good)))
        assert guard.from_token(extra, "a", "tcp").actor == "token backup"
        bad = tmp_path / "bad"
        bad.write_text(f"backup operator {extra}\n")
        with pytest.raises(ConfigError) as refused:
            Guard(tokens_config(token_file=str(bad)))
        assert "line 1" in str(refused.value) and extra not in str(refused.value)

    def test_config_refuses_a_plain_token_or_unknown_role(self, tmp_path: Path) -> None:
        """[[auth.tokens]] holds hashes only; roles are viewer, operator or admin."""
        path = tmp_path / "c.toml"
        path.write_text(f'[[auth.tokens]]\nname = "ci"\nrole = "operator"\nsha256 = "{OPERATOR}"\n')
        with pytest.raises(ConfigError, match=r"auth\.tokens.*sha256") as refused:
            load_config(path, env={})
        assert OPERATOR not in str(refused.value)
        path.write_text('[auth.unix_roles]\nalice = "root"\n')
        with pytest.raises(ConfigError, match=r"auth\.unix_roles\.alice"):
            load_config(path, env={})


class TestUnixPeers:
    def test_the_owner_and_root_are_admin_others_get_their_rule_or_nothing(self) -> None:
        """uid of the daemon's user → admin; a granted user or group → its role; else none."""
        nobody = pwd.getpwnam("nobody") if _has("nobody") else None
        guard = Guard(AuthConfig(), owner_uid=os.getuid())
        assert guard.from_unix_peer(os.getuid(), os.getgid(), 1).role is Role.ADMIN
        assert guard.from_unix_peer(0, 0, 1).role is Role.ADMIN
        if nobody is None:
            pytest.skip("no user 'nobody' on this machine")
        stranger = guard.from_unix_peer(nobody.pw_uid, nobody.pw_gid, 7)
        assert stranger.role is Role.NONE and stranger.actor == f"uid {nobody.pw_uid} (nobody)"
        with pytest.raises(PermissionDeniedError):
            Guard.authorize(stranger, Action.READ)
        granted = Guard(AuthConfig(unix_roles={"nobody": "viewer"}), owner_uid=os.getuid())
        assert granted.from_unix_peer(nobody.pw_uid, nobody.pw_gid, 7).role is Role.VIEWER
        group = grp.getgrgid(nobody.pw_gid).gr_name
        by_group = Guard(AuthConfig(unix_roles={f"group:{group}": "operator"}), owner_uid=0)
        assert by_group.from_unix_peer(nobody.pw_uid, nobody.pw_gid, 7).role is Role.OPERATOR


def _has(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True

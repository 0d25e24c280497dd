"""Where syncctl (and a daemon calling another) takes its credentials: `syncd_api.channel`."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd_api.channel import CredentialError, TlsFiles, read_token, token_metadata


def test_the_flag_wins_then_the_file_then_the_environment(tmp_path: Path) -> None:
    """--token, else --token-file, else $SYNCD_TOKEN, else $SYNCD_TOKEN_FILE; none is None."""
    flag_file, env_file = tmp_path / "a", tmp_path / "b"
    flag_file.write_text("from-file\n")
    env_file.write_text("from-env-file\n")
    env = {"SYNCD_TOKEN": "from-env", "SYNCD_TOKEN_FILE": str(env_file)}
    assert read_token("from-flag", str(flag_file), env) == "from-flag"
    assert read_token(None, str(flag_file), env) == "from-file"
    assert read_token(None, None, {"SYNCD_TOKEN": "from-env"}) == "from-env"
    assert read_token(None, None, {"SYNCD_TOKEN_FILE": str(env_file)}) == "from-env-file"
    assert read_token(None, None, {}) is None
    assert token_metadata(None) == ()
    assert token_metadata("t") == (("authorization", "Bearer t"),)


def test_a_bad_token_file_is_named_and_its_content_never_quoted(tmp_path: Path) -> None:
    """A missing file names the file; a file of two words is refused without echoing them."""
    with pytest.raises(CredentialError, match="cannot read the token file"):
        read_token(None, str(tmp_path / "missing"), {})
    two = tmp_path / "two"
    two.write_text("secret-one secret-two\n")
    with pytest.raises(CredentialError) as refused:
        read_token(None, str(two), {})
    assert "secret" not in str(refused.value) and str(two) in str(refused.value)


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(CredentialError, match="--cert and --key"):
        TlsFiles(cert="c.pem")
    assert TlsFiles(ca="ca.pem").cert == ""

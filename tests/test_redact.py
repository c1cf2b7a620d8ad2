"""The redactor's held-back prefix, against the obvious definition.

``pending_prefix`` runs on every streamed line, so it is indexed rather than
trying every prefix of every secret; these tests hold it to the plain
definition on random secrets and texts.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from installer.redact import MIN_SECRET_LEN, Redactor


def reference(secrets: frozenset[str], text: str) -> int:
    """The longest end of ``text`` that starts some secret but is not all of it."""
    best = 0
    for s in secrets:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


# A small alphabet, so that texts often end in the start of a secret.
ALPHABET = "ab-\n="
secret = st.text(ALPHABET, min_size=MIN_SECRET_LEN, max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.lists(secret, min_size=0, max_size=6), st.text(ALPHABET, max_size=80), st.data())
def test_pending_prefix_matches_the_definition(
    secrets: list[str], text: str, data: st.DataObject
) -> None:
    r = Redactor(secrets)
    if r.secrets and data.draw(st.booleans()):
        # End the text with the start of one secret, of a random length.
        s = data.draw(st.sampled_from(sorted(r.secrets)))
        text += s[: data.draw(st.integers(0, len(s)))]
    assert r.pending_prefix(text) == reference(r.secrets, text)


def test_pending_prefix_on_a_pem_key() -> None:
    key = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(["QUJD" * 16] * 20) + "\n"
    r = Redactor([key, "Vrrp1234"])
    line = "kubeadm: uploading " + "-----BEGIN PRIV"
    assert r.pending_prefix(line) == len("-----BEGIN PRIV")
    assert r.pending_prefix("ready: " + "QUJDQUJD") == len("QUJDQUJD")
    assert r.pending_prefix("the password is Vrr") == 3
    assert r.pending_prefix("nothing secret here") == 0
    assert r.pending_prefix("whole Vrrp1234") == 0  # a whole secret is masked, not held

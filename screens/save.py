"""Write the wizard's answers as an answers.yaml that replays headless (no secrets, mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from installer.answers import Answers


def answers_text(answers: Answers) -> str:
    data = answers.to_yaml_data()
    ordered = {
        k: data[k]
        for k in ("version", "cluster", "profile", "ssh", "hosts", "network", "storage", "versions")
        if k in data
    }
    envs = [v for v in (answers.ssh.password_env, answers.ssh.sudo_password_env) if v]
    head = [
        "# fmp-install answers, saved by the wizard.",
        "# Replay with: fmp-install --answers <this file> --yes",
    ]
    if envs:
        head.append("# Secrets are not in this file: export " + " and ".join(envs) + " first.")
    body = yaml.safe_dump(ordered, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(head) + "\n" + body


def save_answers(answers: Answers, path: str | Path) -> Path:
    """Write atomically with mode 0600; returns the absolute path."""
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(answers_text(answers))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target

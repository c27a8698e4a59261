"""The docs keep up with the code: every setting has its row, the README stays short.

Links between the pages of docs/ are checked by ``make docs`` (mkdocs build --strict); the
README is outside the site, so its links are checked here.
"""

import re
from pathlib import Path

from pydantic import AliasChoices

from agentq.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Read by the CLI and the Python client, not by the settings object.
CLIENT_VARIABLES = {"AGENTQ_URL", "AGENTQ_API_KEY"}


def _setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= (
            {str(a) for a in alias.choices} if isinstance(alias, AliasChoices) else {f"AGENTQ_{name.upper()}"}
        )
    return names


def test_configuration_page_documents_every_setting() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(AGENTQ_[A-Z0-9_]+|FLOWER_PORT)`", text))
    names = _setting_names()
    assert not names - documented, f"missing from docs/configuration.md: {sorted(names - documented)}"
    stale = {n for n in documented if n.startswith("AGENTQ_")} - names - CLIENT_VARIABLES
    assert not stale, f"docs/configuration.md documents unknown settings: {sorted(stale)}"


def test_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move the detail into docs/"


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local, "the README links into docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"

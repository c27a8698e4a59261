"""``agentq migrate``: ``alembic upgrade`` in-process, independent of the current directory."""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from agentq import migrations
from agentq.core.settings import settings


def alembic_config() -> Config:
    """Alembic's configuration without alembic.ini: the scripts come from the installed package.

    The database URL is not set here; ``agentq/migrations/env.py`` reads it from agentq's settings.
    """
    # __path__ rather than __file__: an editable install made before migrations/ had an
    # __init__.py still imports it as a namespace package, which has no __file__.
    scripts = next(path for path in map(Path, migrations.__path__) if (path / "env.py").is_file())
    config = Config()
    config.set_main_option("script_location", str(scripts))
    return config


def upgrade(revision: str = "head") -> None:
    """Bring the database schema up to ``revision``."""
    # alembic.ini's logging section is not read here; show the same "Running upgrade" lines.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)-5.5s [%(name)s] %(message)s")
    logging.getLogger("alembic").setLevel(logging.INFO)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # SQLite creates the file but not its directory (AGENTQ_DATA_DIR on a fresh checkout).
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(), revision)

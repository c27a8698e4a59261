"""Points every agentq module this test process imports at the test services.

Runs before any test module imports ``agentq.core.settings``. CI sets the URLs; locally they
default to the services on 127.0.0.1, with our own database and Redis db number.
"""

import os

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DATABASE_URL = os.environ.get("AGENTQ_TEST_DATABASE_URL", "mysql+pymysql://root@127.0.0.1:3306/agentq_test")
REDIS_URL = os.environ.get("AGENTQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
# When the URLs are given, a service that cannot be reached fails the run instead of skipping.
SERVICES_REQUIRED = CI or "AGENTQ_TEST_DATABASE_URL" in os.environ

os.environ.update(
    AGENTQ_DATABASE_URL=DATABASE_URL,
    AGENTQ_BROKER_URL=REDIS_URL,
    AGENTQ_REDIS_URL=REDIS_URL,
    AGENTQ_OUTBOUND_ALLOW_PRIVATE="1",
)

"""The test session's settings: the project's own, imported with the development profile's env.

The settings default to the production profile (DEBUG off). The test session keeps the import-time values
every test, and every process a test starts, was written for (no HTTPS redirect, plain cookies, static
files from the source tree, a generated key under var/); pytest-django still runs each test with
``settings.DEBUG`` False. The settings' own default is tested in a subprocess started without ``DEBUG``
(tests/security/test_production_profile.py).
"""

import os

os.environ.setdefault("DEBUG", "1")

from text2grad_web.settings import *  # noqa: F403

# Webhook tests run their receiver on this machine (the SSRF guard refuses loopback otherwise), and a
# failing receiver is tried again after 1 s, then 2 s (the session worker reads these settings too).
T2G_WEBHOOK_ALLOW_PRIVATE = True
T2G_WEBHOOK_BACKOFF_S = 1

# Passwords hash in one PBKDF2 round (tests/hashers.py): the named users cost no CPU to create or log in.
PASSWORD_HASHERS = ["tests.hashers.OneRoundPBKDF2PasswordHasher"]

# Tables are emptied by DELETE, not TRUNCATE, after each transactional test (tests/postgresql/base.py).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.postgresql"  # noqa: F405

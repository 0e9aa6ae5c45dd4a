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

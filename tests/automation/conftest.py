"""The API tests' fixtures (``api``, ``feedback``) serve the automation tests too."""

from tests.api.conftest import _isolated, api, feedback  # noqa: F401
